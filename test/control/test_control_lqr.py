"""LQR equals the Riccati / least-squares optimum; iLQR matches LQR and solves a pendulum."""

from __future__ import annotations

import numpy as np
import scipy.linalg
from control_systems import LinearSystem, Pendulum

from mbrl.control.ilqr import ILQRConfig, ILQRPlanner
from mbrl.control.lqr import NotPositiveDefinite, backward_pass, lqr
from mbrl.costs.quadratic import QuadraticCost

A = np.array([[1.0, 0.1], [-0.05, 0.98]])
B = np.array([[0.0], [0.1]])
Q, R, Qf = np.diag([1.0, 0.5]), np.array([[0.1]]), np.diag([5.0, 2.0])


def _batch_qp(T, x0):
    """Optimal open-loop actions and cost by stacking the dynamics: x = Phi x0 + Gamma u."""
    dx, du = B.shape
    Phi = np.zeros(((T + 1) * dx, dx))
    Gam = np.zeros(((T + 1) * dx, T * du))
    for t in range(T + 1):
        Phi[t * dx : (t + 1) * dx] = np.linalg.matrix_power(A, t)
        for s in range(t):
            Gam[t * dx : (t + 1) * dx, s * du : (s + 1) * du] = (
                np.linalg.matrix_power(A, t - s - 1) @ B
            )
    Qbar = scipy.linalg.block_diag(*([Q] * T + [Qf]))
    Rbar = scipy.linalg.block_diag(*([R] * T))
    H = Gam.T @ Qbar @ Gam + Rbar
    u = -np.linalg.solve(H, Gam.T @ Qbar @ Phi @ x0)
    x = Phi @ x0 + Gam @ u
    return u.reshape(T, du), 0.5 * (x @ Qbar @ x + u @ Rbar @ u)


def test_lqr_matches_batch_least_squares_optimum():
    T, x0 = 15, np.array([1.0, -0.5])
    sol = lqr(np.repeat(A[None], T, 0), np.repeat(B[None], T, 0), Q, R, Qf)
    u_qp, J_qp = _batch_qp(T, x0)
    x, us = x0, []
    for t in range(T):
        us.append(sol.K[t] @ x + sol.k[t])
        x = A @ x + B @ us[-1]
    np.testing.assert_allclose(np.array(us), u_qp, atol=1e-10)
    np.testing.assert_allclose(0.5 * x0 @ sol.Vxx[0] @ x0, J_qp, rtol=1e-10)


def test_long_horizon_lqr_gain_is_the_dare_gain():
    T = 400
    sol = lqr(np.repeat(A[None], T, 0), np.repeat(B[None], T, 0), Q, R, Qf)
    P = scipy.linalg.solve_discrete_are(A, B, Q, R)
    K_inf = -np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    np.testing.assert_allclose(sol.K[0], K_inf, atol=1e-9)
    np.testing.assert_allclose(sol.Vxx[0], P, atol=1e-8)


def test_backward_pass_reports_indefinite_quu():
    T = 5
    try:
        backward_pass(
            np.repeat(A[None], T, 0),
            np.repeat(B[None], T, 0),
            np.zeros((T + 1, 2)),
            np.zeros((T, 1)),
            np.repeat(Q[None], T + 1, 0),
            -np.ones((T, 1, 1)),  # negative action cost: Quu < 0 at the last step
            np.zeros((T, 1, 2)),
        )
    except NotPositiveDefinite as exc:
        assert exc.t == T - 1
    else:
        raise AssertionError("indefinite Quu was not reported")


def test_ilqr_on_linear_system_converges_to_lqr_in_one_iteration():
    T, x0 = 20, np.array([1.0, -0.5])
    system = LinearSystem(A, B)
    planner = ILQRPlanner(
        system, QuadraticCost(Q, R, Qf), du=1, config=ILQRConfig(horizon=T, iterations=1)
    )
    plan = planner.plan(x0)
    u_qp, J_qp = _batch_qp(T, x0)
    assert plan.iterations == 1
    np.testing.assert_allclose(plan.actions, u_qp, atol=1e-9)
    np.testing.assert_allclose(plan.cost, J_qp, rtol=1e-9)
    # A second call (warm-started) cannot improve on the optimum.
    planner.reset()
    again = ILQRPlanner(system, QuadraticCost(Q, R, Qf), du=1, config=ILQRConfig(horizon=T))
    np.testing.assert_allclose(again.plan(x0).cost, J_qp, rtol=1e-9)


def test_ilqr_swings_up_a_pendulum():
    T = 80
    system = Pendulum()
    goal = np.array([np.pi, 0.0])
    cost = QuadraticCost(np.diag([0.1, 0.01]), np.array([[1e-3]]), np.diag([100.0, 10.0]), goal)
    planner = ILQRPlanner(system, cost, du=1, config=ILQRConfig(horizon=T, iterations=100))
    x0 = np.zeros(2)
    J0 = planner.total_cost(*planner.rollout(x0, np.zeros((T, 1))))
    plan = planner.plan(x0)
    assert plan.cost < 0.05 * J0, (plan.cost, J0)
    assert abs(plan.states[-1, 0] - np.pi) < 0.05
    # The returned states are the model's rollout of the returned actions.
    x, _ = planner.rollout(x0, plan.actions)
    np.testing.assert_allclose(x, plan.states, atol=1e-9)


def test_ilqr_respects_action_bounds():
    T = 80
    cost = QuadraticCost(
        np.diag([0.1, 0.01]), np.array([[1e-3]]), np.diag([100.0, 10.0]), [np.pi, 0]
    )
    cfg = ILQRConfig(horizon=T, iterations=50, action_low=-3.0, action_high=3.0)
    plan = ILQRPlanner(Pendulum(), cost, du=1, config=cfg).plan(np.zeros(2))
    assert np.all(np.abs(plan.actions) <= 3.0 + 1e-12)


def test_ilqr_runs_on_the_ensembles_linearisation():
    from mbrl.models.ensemble import ProbabilisticEnsemble

    model = ProbabilisticEnsemble(2, 1, ensemble_size=2, hidden=(16, 16))
    cost = QuadraticCost(np.eye(2), 0.1 * np.eye(1), np.eye(2), [0.5, 0.0])
    planner = ILQRPlanner(model, cost, du=1, config=ILQRConfig(horizon=10, iterations=5))
    x0 = np.zeros(2)
    J0 = planner.total_cost(*planner.rollout(x0, np.zeros((10, 1))))
    plan = planner.plan(x0)
    assert plan.K.shape == (10, 1, 2) and np.isfinite(plan.cost)
    assert plan.cost <= J0  # the line search only accepts improvements

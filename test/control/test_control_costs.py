"""Costs, FK and the kinematic model: values, gradients, linearisation, file round trip."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_kinematics as pk
import torch

from mbrl.config import ArmConfig
from mbrl.costs.base import autodiff_quadratize
from mbrl.costs.kinematics import ForwardKinematics, read_urdf
from mbrl.costs.push import PushCost, PushCostConfig
from mbrl.costs.quadratic import QuadraticCost
from mbrl.costs.reach import ReachCost, ReachCostConfig, StateLayout, limit_barrier
from mbrl.models.kinematic import KinematicArmModel

CFG = ArmConfig()


@pytest.fixture(scope="module")
def fk64():
    return ForwardKinematics(CFG.urdf, CFG.ee_link, CFG.joint_names, dtype=torch.float64)


def test_fk_agrees_with_pytorch_kinematics_and_reorders_joints(fk64):
    chain = pk.build_serial_chain_from_urdf(read_urdf(CFG.urdf).encode(), CFG.ee_link)
    chain = chain.to(dtype=torch.float64)
    q = torch.rand(64, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    ref = chain.forward_kinematics(q).get_matrix()
    np.testing.assert_allclose(fk64.transforms(q).numpy(), ref.numpy(), atol=1e-12)
    rev = ForwardKinematics(CFG.urdf, CFG.ee_link, CFG.joint_names[::-1], dtype=torch.float64)
    np.testing.assert_allclose(rev(q.flip(-1)).numpy(), ref[:, :3, 3].numpy(), atol=1e-12)
    assert fk64(q.view(8, 8, 5)).shape == (8, 8, 3)


def test_fk_gradient_matches_finite_differences(fk64):
    q = torch.tensor([0.3, -0.4, 0.5, 0.2, -0.1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fk64, (q,))


def test_fk_errors_name_the_problem():
    with pytest.raises(ValueError, match="not on the chain"):
        ForwardKinematics(CFG.urdf, CFG.ee_link, ("shoulder_pan", "nope"))
    with pytest.raises(ValueError, match="cannot read URDF"):
        ForwardKinematics("/nonexistent.urdf", CFG.ee_link, CFG.joint_names)


def test_reach_cost_values_and_barrier(fk64):
    q = torch.zeros(1, 1, 5, dtype=torch.float64)
    ee = fk64(q[0, 0])
    goal = ee.numpy() + np.array([0.03, 0.04, 0.0])  # 5 cm away
    cfg = ReachCostConfig(distance=1.0, terminal=5.0, action=0.1, limit=1.0, smoothing=0.0)
    cost = ReachCost(StateLayout(q=(0, 5)), fk64, goal, cfg)
    u = torch.ones(1, 1, 5, dtype=torch.float64)
    np.testing.assert_allclose(cost.stage(q, u).item(), 0.05 + 0.5, rtol=1e-9)
    np.testing.assert_allclose(cost.terminal(q[:, 0]).item(), 0.25, rtol=1e-9)
    # 0.025 rad inside a 0.05 rad margin: ((0.025) / 0.05)^2 = 0.25 for that joint.
    lo, hi = fk64.lower.double(), fk64.upper.double()
    q_edge = lo.clone()
    q_edge[0] += 0.025
    q_edge[1:] = 0.0
    np.testing.assert_allclose(limit_barrier(q_edge, lo, hi, 0.05).item(), 0.25, rtol=1e-9)
    with pytest.raises(ValueError, match="goal must be 3"):
        cost.set_goal([1.0, 2.0])


def test_reach_cost_rate_term_and_state_goal():
    layout = StateLayout(ee=(0, 3), goal=(3, 6))
    cost = ReachCost(layout, config=ReachCostConfig(action=0.0, rate=1.0, smoothing=0.0))
    x = torch.tensor([[[0.0, 0.0, 0.0, 0.0, 0.0, 1.0]] * 3])
    u = torch.tensor([[[0.0], [1.0], [3.0]]])
    np.testing.assert_allclose(cost.stage(x, u).numpy(), [[1.0, 2.0, 5.0]], rtol=1e-6)


def test_push_cost_terms():
    layout = StateLayout(ee=(0, 3), obj=(3, 6))
    cost = PushCost(layout, goal=np.array([0.0, 0.1, 0.0]))
    cost_cfg = cost.config
    x = torch.tensor([[[0.0, 0.0, 0.0, 0.0, 0.02, 0.0]]])
    expected = cost_cfg.tip_to_object * np.hypot(0.02, cost_cfg.smoothing) + np.hypot(
        0.08, cost_cfg.smoothing
    )
    np.testing.assert_allclose(cost.stage(x, torch.zeros(1, 1, 2)).item(), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="layout.obj"):
        PushCost(StateLayout(ee=(0, 3)))


def test_push_cost_pulls_the_tip_behind_the_object():
    # Object at the origin, goal 0.1 m along +y: the pushing point is 0.03 m along -y.
    layout = StateLayout(ee=(0, 3), obj=(3, 6))
    config = PushCostConfig(approach_offset=0.03, smoothing=0.0)
    cost = PushCost(layout, goal=np.array([0.0, 0.1, 0.02]), config=config)
    obj = [0.0, 0.0, 0.02]
    behind = torch.tensor([[[0.0, -0.03, 0.02, *obj]]])
    in_front = torch.tensor([[[0.0, 0.03, 0.02, *obj]]])
    np.testing.assert_allclose(cost.pushing_point(behind)[0, 0].numpy(), [0, -0.03, 0.02])
    u = torch.zeros(1, 1, 2)
    # Behind: only the object-to-goal term remains; in front pays 0.06 m of approach.
    np.testing.assert_allclose(cost.stage(behind, u).item(), 0.1, rtol=1e-5)
    np.testing.assert_allclose(cost.stage(in_front, u).item(), 0.1 + 0.5 * 0.06, rtol=1e-5)
    with pytest.raises(ValueError, match="approach_offset"):
        PushCost(layout, config=PushCostConfig(approach_offset=-0.01))


def test_push_cost_lifts_the_approach_and_keeps_the_tip_off_the_table():
    layout = StateLayout(ee=(0, 3), obj=(3, 6))
    config = PushCostConfig(
        approach_offset=0.03, approach_height=0.05, min_tip_height=0.015, smoothing=0.0
    )
    cost = PushCost(layout, goal=np.array([0.0, 0.1, 0.02]), config=config)
    obj = [0.0, 0.0, 0.02]
    far = torch.tensor([[0.2, -0.03, 0.02, *obj]])  # 0.2 m away: target 5 cm above the point
    near = torch.tensor([[0.01, -0.03, 0.02, *obj]])  # 1 cm away: lifted by 1 cm only
    np.testing.assert_allclose(cost.pushing_point(far)[0].numpy(), [0, -0.03, 0.07], atol=1e-7)
    np.testing.assert_allclose(cost.pushing_point(near)[0].numpy(), [0, -0.03, 0.03], atol=1e-7)
    u = torch.zeros(1, 1, 2)
    high = torch.tensor([[[0.0, -0.03, 0.015, *obj]]])
    low = torch.tensor([[[0.0, -0.03, 0.0, *obj]]])  # tip on the table: barrier = weight * 1
    gap = cost.stage(low, u).item() - cost.stage(high, u).item()
    np.testing.assert_allclose(gap, config.table + 0.5 * 0.015, rtol=1e-5)


def test_autodiff_quadratize_equals_exact_quadratic():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(3, 3))
    cost = QuadraticCost(M @ M.T, np.diag([0.1, 0.2]), np.eye(3) * 4, rng.normal(size=3))
    x, u = rng.normal(size=(6, 3)), rng.normal(size=(5, 2))
    for a, b in zip(autodiff_quadratize(cost, x, u), cost.quadratize(x, u), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-10)


def _model():
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    return KinematicArmModel(lo, hi, np.array([4.0, 1.0, 4.0]), 0.1, 0.05)


def test_kinematic_model_integrates_increments_within_servo_speed():
    m = _model()
    x = np.array([[0.0, 0.0, 0.95]])
    mean, var = m.predict(x, np.array([[0.5, 1.0, 2.0]]))
    # joint 1 limited to 1 rad/s * 0.05 s; joint 2 clipped at the position limit 1.0.
    np.testing.assert_allclose(mean, [[0.05, 0.05, 1.0]])
    assert np.all(var == 0)
    t = m.step(torch.tensor(x), torch.tensor([[0.5, 1.0, 2.0]]))
    np.testing.assert_allclose(t.numpy(), mean)


def test_kinematic_model_linearisation_matches_finite_differences():
    m = _model()
    x, u = np.array([[0.1, -0.2, 0.3]]), np.array([[0.4, -0.5, 0.2]])
    A, B, c = m.linearize(x, u)
    h = 1e-6
    for i in range(3):
        e = np.zeros(3)
        e[i] = h
        np.testing.assert_allclose(
            (m.predict(x + e, u)[0] - m.predict(x - e, u)[0]) / (2 * h), A[:, :, i], atol=1e-8
        )
        np.testing.assert_allclose(
            (m.predict(x, u + e)[0] - m.predict(x, u - e)[0]) / (2 * h), B[:, :, i], atol=1e-8
        )
    np.testing.assert_allclose(A[0] @ x[0] + B[0] @ u[0] + c[0], m.predict(x, u)[0][0])


def test_kinematic_model_file_round_trip(tmp_path):
    m = _model()
    m.save(tmp_path / "kin.npz")
    back = KinematicArmModel.load(tmp_path / "kin.npz")
    np.testing.assert_array_equal(back.step_size, m.step_size)
    with pytest.raises(ValueError, match="lower < upper"):
        KinematicArmModel(np.ones(2), np.zeros(2), np.ones(2), 0.1, 0.05)


def test_ilqr_reaches_a_goal_through_fk_and_the_known_model(fk64):
    # Gradient planner on the real reach cost: the FK distance is non-convex, so this also
    # exercises the LM regularisation (gains from regularised Q, value from the plain Q).
    from mbrl.control.ilqr import ILQRConfig, ILQRPlanner

    lo, hi = fk64.lower.numpy(), fk64.upper.numpy()
    model = KinematicArmModel(lo, hi, fk64.velocity_limit.numpy(), 0.1, 0.05)
    goal = fk64(torch.tensor([0.5, 0.3, 0.2, -0.3, 0.0], dtype=torch.float64)).numpy()
    cost = ReachCost(StateLayout(q=(0, 5)), fk64, goal)
    cfg = ILQRConfig(horizon=20, iterations=50, action_low=-1.0, action_high=1.0)
    plan = ILQRPlanner(model, cost, 5, cfg).plan(np.zeros(5))
    assert plan.iterations > 0
    final = fk64(torch.tensor(plan.states[-1])).numpy()
    assert np.linalg.norm(final - goal) < 0.005

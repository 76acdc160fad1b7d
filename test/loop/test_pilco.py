"""PILCO: the batched torch moment matching equals mbrl.models.gp_mm, the policy and cost
moments agree with Monte-Carlo, the optimiser's failure path keeps its start point, far
starts saturate towards the target, the fixed-point term puts the target on the goal, and the
driver end to end on a tiny budget improves over the policy it started from."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mbrl.costs.saturating import expected_saturating_cost, saturating_cost
from mbrl.data.dataset import TransitionDataset
from mbrl.loop.common import ExperimentConfig, RunRecorder
from mbrl.loop.pilco import (
    PilcoParams,
    data_starts,
    initial_theta,
    linear_params,
    optimise_stage,
    policy_action,
    run_pilco,
)
from mbrl.loop.pilco_mm import GPTensors, moment_match, sin_policy_moments
from mbrl.models import gp_mm
from mbrl.models.gp import GPModel

MC = 200_000


@pytest.fixture(scope="module")
def small_gp() -> GPModel:
    rng = np.random.default_rng(0)
    N, dx, du = 150, 3, 3
    X, U = rng.normal(size=(N, dx)), rng.uniform(-1, 1, (N, du))
    Y = X + 0.1 * np.sin(X) + 0.05 * U + 0.01 * rng.normal(size=(N, dx))
    ds = TransitionDataset(X, U, Y, np.zeros(N), np.zeros(N, np.int64), np.arange(N))
    gp = GPModel(dx, du, max_iter=60)
    gp.fit(ds, rng)
    return gp


def _random_cov(rng: np.random.Generator, d: int, scale: float) -> np.ndarray:
    A = rng.normal(size=(d, d)) * scale
    return A @ A.T


def test_batched_moment_matching_equals_the_model_reference(small_gp):
    rng = np.random.default_rng(1)
    ms = rng.normal(size=(3, 6))
    Ss = np.stack([_random_cov(rng, 6, 0.3) for _ in range(3)])
    mu, Sigma, C = moment_match(GPTensors.from_model(small_gp), torch.tensor(ms), torch.tensor(Ss))
    for k in range(3):
        ref = gp_mm.moment_match(small_gp, ms[k], Ss[k])
        np.testing.assert_allclose(mu[k].numpy(), ref[0], atol=1e-10)
        np.testing.assert_allclose(Sigma[k].numpy(), ref[1], atol=1e-9)
        np.testing.assert_allclose(C[k].numpy(), ref[2], atol=1e-10)


def test_sine_policy_moments_agree_with_monte_carlo():
    rng = np.random.default_rng(2)
    W, b = rng.normal(size=(2, 3)), rng.normal(size=2)
    m, S = rng.normal(size=3), _random_cov(rng, 3, 0.4)
    mu, Su, C = sin_policy_moments(*(torch.tensor(a)[None] for a in (W, b, m, S)))
    x = rng.multivariate_normal(m, S, MC)
    u = np.sin(x @ W.T + b)
    joint = np.cov(np.hstack([x, u]).T)
    np.testing.assert_allclose(mu[0].numpy(), u.mean(0), atol=5e-3)
    np.testing.assert_allclose(Su[0].numpy(), joint[3:, 3:], atol=5e-3)
    np.testing.assert_allclose(C[0].numpy(), joint[:3, 3:], atol=5e-3)


def test_expected_saturating_cost_agrees_with_monte_carlo():
    rng = np.random.default_rng(3)
    m, goal = np.array([0.2, 0.05, 0.1]), np.array([0.15, 0.0, 0.12])
    S = _random_cov(rng, 3, 0.03)
    got = expected_saturating_cost(torch.tensor(m), torch.tensor(S), torch.tensor(goal), 0.05)
    e = torch.tensor(rng.multivariate_normal(m, S, MC))
    ref = saturating_cost(e, torch.tensor(goal), 0.05).mean()
    assert abs(float(got) - float(ref)) < 3e-3
    with pytest.raises(ValueError, match="width"):
        saturating_cost(e, torch.tensor(goal), 0.0)


def test_gain_target_parameters_are_the_linear_policy():
    q_ref = np.array([0.1, -0.2, 0.3])
    theta = initial_theta(q_ref, 2.0)
    W, b = linear_params(theta, 3)
    np.testing.assert_allclose(W, -2.0 * np.eye(3))
    np.testing.assert_allclose(policy_action(theta, q_ref), 0.0, atol=1e-12)  # fixed point
    np.testing.assert_allclose(policy_action(theta, q_ref - 0.1), np.sin(0.2), atol=1e-12)


def test_far_starts_saturate_towards_the_target_instead_of_turning_back():
    q_ref = np.zeros(3)
    theta = initial_theta(q_ref, 3.0)
    # K (q_ref - q) = pi: a plain sine gives 0 there (a false fixed point), past it the wrong sign.
    for err in (np.pi / 3, 1.2, 2.0):
        u = policy_action(theta, q_ref - err)
        np.testing.assert_allclose(u, 1.0, atol=1e-12)
        np.testing.assert_allclose(policy_action(theta, q_ref + err), -1.0, atol=1e-12)


def test_fixed_point_term_moves_the_target_onto_the_goal(small_gp):
    def fk(q):
        return q  # "end effector" = q, so the fixed point fk(q_ref) is q_ref itself

    goal = np.array([[0.3, -0.2, 0.25]])
    theta0 = initial_theta(np.zeros(3), 1.0)[None]
    base = dataclasses.replace(PilcoParams(), horizon=2, policy_iters=30)
    fixed = optimise_stage(
        small_gp, fk, goal, np.zeros(3), 1e-4 * np.eye(3), base, theta0, 0.25
    ).theta
    assert np.linalg.norm(fixed[0, 9:] - goal[0]) < 0.02
    # The term is finite-guarded like the rollout: a NaN fixed point keeps the start.
    res = optimise_stage(
        small_gp,
        lambda q: q * float("nan"),
        goal,
        np.zeros(3),
        1e-4 * np.eye(3),
        base,
        theta0,
        0.25,
    )
    assert res.fallback
    np.testing.assert_array_equal(res.theta, theta0)


def test_fixed_point_outside_the_limits_is_pulled_back_in(small_gp):
    class LimitedIdentity:
        lower, upper = torch.full((3,), -0.5, dtype=torch.float64), torch.full((3,), 0.5)

        def __call__(self, q):
            return q

    goal = np.array([[0.45, -0.2, 0.25]])
    # Joint 0 starts past its upper limit, where the clamp alone has no gradient.
    theta0 = initial_theta(np.array([0.9, 0.0, 0.0]), 1.0)[None]
    params = dataclasses.replace(PilcoParams(), horizon=2, policy_iters=30)
    res = optimise_stage(
        small_gp, LimitedIdentity(), goal, np.zeros(3), 1e-4 * np.eye(3), params, theta0, 0.25
    )
    q_ref = res.theta[0, 9:]
    assert not res.fallback and q_ref[0] <= 0.5 + 0.01
    assert np.linalg.norm(q_ref - goal[0]) < 0.02


def test_data_starts_pick_the_recorded_state_nearest_each_goal():
    q_data = np.array([[0.0, 0.0, 0.0, 0.5], [1.0, 0.0, 0.0, 0.6], [0.0, 1.0, 0.0, 0.7]])
    goals = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.0]])
    theta = data_starts(lambda q: q[:, :3], q_data, goals, 2.0)  # "FK" = first 3 joints
    np.testing.assert_array_equal(theta[:, 16:], q_data[[1, 2]])
    np.testing.assert_array_equal(theta[0, :16].reshape(4, 4), 2.0 * np.eye(4))


def test_optimiser_failure_keeps_the_start_point(small_gp):
    broken = GPModel(3, 3)
    for name in ("log_ell", "log_sf", "log_sn", "y_mean", "Xb", "iK"):
        setattr(broken, name, getattr(small_gp, name))
    broken.beta = np.full_like(small_gp.beta, np.nan)  # every prediction is NaN

    def fk(q):
        return q  # any differentiable map to 3 coordinates

    theta0 = initial_theta(np.zeros(3), 1.0)[None]
    params = dataclasses.replace(PilcoParams(), horizon=3, policy_iters=5)
    res = optimise_stage(
        broken, fk, np.ones((1, 3)), np.zeros(3), 1e-4 * np.eye(3), params, theta0, 0.1
    )
    assert res.fallback
    np.testing.assert_array_equal(res.theta, theta0)


def test_pilco_improves_over_its_start_on_reach(tmp_path):
    config = ExperimentConfig(
        "pilco",
        seed=0,
        budget_steps=200,
        episode_steps=100,
        eval_goals=3,
        eval_every=2,
        out_dir=str(tmp_path),
        algo_params={"horizon": 15, "policy_iters": 15, "gp_max_iter": 50},
    )
    summary = run_pilco(config, RunRecorder(config, verbose=False))
    curve = summary["curve"]
    assert [r["env_steps"] for r in curve] == [0, 200]
    # Start: u = sin(K (home - q)) holds the arm at home; after 200 real steps each held-out
    # goal's policy is optimised on the GP.
    assert curve[-1]["final_distance"] < 0.5 * curve[0]["final_distance"], curve
    run = tmp_path / "pilco-reach-s0"
    assert len(list((run / "episodes").glob("*.mcap"))) == 2
    assert (run / "checkpoints" / "gp_episode002.npz").exists()
    with pytest.raises(ValueError, match="unknown pilco algo_params"):
        PilcoParams.from_config(dataclasses.replace(config, algo_params={"nope": 1}))

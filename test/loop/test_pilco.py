"""PILCO: the batched torch moment matching equals mbrl.models.gp_mm, the policy and cost
moments agree with Monte-Carlo, the optimiser's failure path keeps its start point, far
starts saturate towards the target, the fixed-point term puts the target on the goal, and the
driver end to end on a tiny budget improves over the policy it started from."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mbrl.agents.pilco import (
    GoalPolicies,
    PilcoModel,
    data_starts,
    initial_theta,
    linear_params,
    optimise_stage,
    policy_action,
)
from mbrl.agents.pilco_mm import GPTensors, moment_match, sin_policy_moments
from mbrl.agents.pilco_params import PilcoParams
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.costs.saturating import expected_saturating_cost, saturating_cost
from mbrl.data.dataset import TransitionDataset
from mbrl.loop.common import ExperimentConfig, RunRecorder
from mbrl.loop.pilco import pilco_params, run_pilco
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
    base = dataclasses.replace(PilcoParams(), horizon=2, policy_iters=30, kinematics=True)
    model = PilcoModel(small_gp)
    fixed = optimise_stage(model, goal, np.zeros(3), 1e-4 * np.eye(3), base, theta0, 0.25, fk).theta
    assert np.linalg.norm(fixed[0, 9:] - goal[0]) < 0.02
    # The term is finite-guarded like the rollout: a NaN fixed point keeps the start.
    res = optimise_stage(
        model, goal, np.zeros(3), 1e-4 * np.eye(3), base, theta0, 0.25, lambda q: q * float("nan")
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
    params = dataclasses.replace(PilcoParams(), horizon=2, policy_iters=30, kinematics=True)
    res = optimise_stage(
        PilcoModel(small_gp),
        goal,
        np.zeros(3),
        1e-4 * np.eye(3),
        params,
        theta0,
        0.25,
        LimitedIdentity(),
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
    params = dataclasses.replace(PilcoParams(), horizon=3, policy_iters=5, kinematics=True)
    res = optimise_stage(
        PilcoModel(broken), np.ones((1, 3)), np.zeros(3), 1e-4 * np.eye(3), params, theta0, 0.1, fk
    )
    assert res.fallback
    np.testing.assert_array_equal(res.theta, theta0)


@pytest.mark.expensive  # ~25 s of CPU, 2-3 min on a loaded 2-core machine
def test_pilco_improves_over_its_start_on_reach(tmp_path):
    config = ExperimentConfig(
        algo="pilco",
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
    # Start: the random explorer; after 200 real steps each held-out goal's policy is
    # optimised on the GPs.
    assert curve[-1]["final_distance"] < 0.5 * curve[0]["final_distance"], curve
    run = tmp_path / "pilco-reach-s0"
    assert len(list((run / "episodes").glob("*.mcap"))) == 2
    policies = GoalPolicies.load(run / "checkpoints" / "pilco_policy_final.npz")
    assert len(policies.goals) == 3  # after the last fit: the held-out goals only
    with pytest.raises(ValueError, match="unknown parameter"):
        pilco_params(dataclasses.replace(config, algo_params={"nope": 1}))
    with pytest.raises(ValueError, match="differ from the run's schedule"):
        pilco_params(dataclasses.replace(config, algo_params={"eval_goals": 1}))


@pytest.fixture(scope="module")
def ee_gp() -> GPModel:
    """A 3-output GP on x (dx = 3, du = 0), the shape of PILCO's end-effector GP."""
    rng = np.random.default_rng(3)
    Z = rng.uniform(-1, 1, (150, 3))
    Y = np.stack([np.cos(Z[:, 0]), np.sin(Z[:, 1]) + 0.1 * Z[:, 0], Z[:, 2] ** 2], 1)
    gp = GPModel(3, 0, max_iter=60, outputs=3)
    gp.fit_arrays(Z, Y + 0.005 * rng.normal(size=Y.shape), rng)
    return gp


def test_end_effector_gp_moment_matching_equals_the_reference(ee_gp):
    rng = np.random.default_rng(4)
    m = rng.uniform(-0.5, 0.5, (2, 3))
    S = np.stack([_random_cov(rng, 3, 0.1) for _ in range(2)])
    mu, Sigma, _ = moment_match(GPTensors.from_model(ee_gp), torch.tensor(m), torch.tensor(S))
    for k in range(2):
        ref = gp_mm.moment_match(ee_gp, m[k], S[k])
        # Batched and per-pair solves round differently; beta of a low-noise GP is large.
        np.testing.assert_allclose(mu[k].numpy(), ref[0], rtol=1e-7, atol=1e-9)
        # atol on the covariance's scale (entries ~1e-2): a 5e-4 entry differs by ~1e-7
        # between BLAS thread counts, past rtol alone
        np.testing.assert_allclose(Sigma[k].numpy(), ref[1], rtol=1e-5, atol=1e-6)
    # Absolute targets: at a sharp input the mean is the GP's prediction itself.
    pred, _ = ee_gp.predict_delta(m[:1])
    sharp, _, _ = moment_match(
        GPTensors.from_model(ee_gp), torch.tensor(m[:1]), torch.zeros(1, 3, 3, dtype=torch.float64)
    )
    np.testing.assert_allclose(sharp[0].numpy(), pred[0], atol=1e-9)
    with pytest.raises(ValueError, match="predict_delta"):  # not a dynamics model
        GPModel(2, 2, outputs=3).predict(np.zeros((1, 2)), np.zeros((1, 2)))


class CountingFK:
    """Identity 'kinematics' that counts its calls (a spy on the kinematic term)."""

    def __init__(self, *args, **kwargs):
        self.calls = 0

    def __call__(self, q):
        self.calls += 1
        return q[..., :3]


def test_default_objective_never_calls_the_kinematics(small_gp, ee_gp):
    goal = np.array([[0.3, -0.2, 0.25]])
    theta0 = initial_theta(np.zeros(3), 1.0)[None]
    model = PilcoModel(small_gp, ee_gp)
    params = dataclasses.replace(PilcoParams(), horizon=3, policy_iters=5)
    assert not params.kinematics  # the shipped default
    spy = CountingFK()
    learned = optimise_stage(model, goal, np.zeros(3), 1e-4 * np.eye(3), params, theta0, 0.25, spy)
    assert spy.calls == 0
    alone = optimise_stage(model, goal, np.zeros(3), 1e-4 * np.eye(3), params, theta0, 0.25)
    np.testing.assert_array_equal(learned.theta, alone.theta)
    kin = dataclasses.replace(params, kinematics=True)
    with_fk = optimise_stage(model, goal, np.zeros(3), 1e-4 * np.eye(3), kin, theta0, 0.25, spy)
    assert spy.calls > 0 and not np.array_equal(with_fk.theta, learned.theta)
    with pytest.raises(ValueError, match="end-effector GP"):
        optimise_stage(PilcoModel(small_gp), goal, np.zeros(3), np.eye(3), params, theta0, 0.25)
    with pytest.raises(ValueError, match="forward kinematics"):
        optimise_stage(model, goal, np.zeros(3), np.eye(3), kin, theta0, 0.25)


@pytest.mark.parametrize("kinematics", [False, True])
def test_the_driver_uses_the_kinematics_only_when_told(tmp_path, monkeypatch, kinematics):
    """End to end on a few real steps: the FK the driver could build is a spy."""
    import mbrl.agents.pilco as pilco

    made: list[CountingFK] = []

    class SpyFK(CountingFK):
        def __init__(self, *args, **kwargs):
            super().__init__()
            self.real = ForwardKinematics(*args, **kwargs)
            made.append(self)

        def __call__(self, q):
            self.calls += 1
            return self.real(q)

    monkeypatch.setattr(pilco, "ForwardKinematics", SpyFK)
    config = ExperimentConfig(
        algo="pilco",
        seed=0,
        budget_steps=30,
        episode_steps=15,
        eval_goals=1,
        eval_every=1,
        out_dir=str(tmp_path),
        algo_params={
            "horizon": 3,
            "policy_iters": 3,
            "gp_max_iter": 10,
            "cost_widths": [0.25],
            "kinematics": kinematics,
        },
    )
    summary = run_pilco(config, RunRecorder(config, verbose=False))
    assert summary["curve"][-1]["env_steps"] == 30
    calls = sum(s.calls for s in made)
    assert (calls > 0) if kinematics else (calls == 0), calls
    ckpt = tmp_path / "pilco-reach-s0" / "checkpoints"
    assert (ckpt / "ee_gp_final.npz").exists() != kinematics
    if not kinematics:
        loaded = GPModel.load(ckpt / "ee_gp_final.npz")
        assert loaded.E == 3 and loaded.D == 5


def test_gp_fit_failure_paths_are_explicit():
    rng = np.random.default_rng(5)
    Z = rng.uniform(-1, 1, (20, 6))
    gp = GPModel(3, 3, outputs=3)
    with pytest.raises(ValueError, match="NaN"):
        gp.fit_arrays(Z, np.full((20, 3), np.nan))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        gp.fit_arrays(Z, np.zeros((20, 2)))
    # Identical rows with constant targets: the marginal likelihood's Cholesky fails at
    # every hyper-parameter the optimiser tries, so it keeps the data-driven start values
    # and says so; the posterior still factorises (jitter if needed) and predicts.
    rep = gp.fit_arrays(np.ones((20, 6)), np.ones((20, 3)))
    assert rep.extra["optimiser_fallback"]
    mean, var = gp.predict_delta(np.ones((1, 6)))
    np.testing.assert_allclose(mean, 1.0, atol=1e-6)
    assert np.isfinite(var).all()


def test_the_learner_optimises_for_the_goals_the_schedule_runs_next():
    from mbrl.agents.arm import ArmModel
    from mbrl.agents.pilco import PilcoLearner
    from mbrl.agents.presets import preset
    from mbrl.config import ArmConfig
    from mbrl.costs.tasks import EVAL_SEED, train_seed

    arm = ArmModel.from_config(ArmConfig())
    params = preset("pilco", "reach", {"eval_goals": 2, "eval_every": 2, "num_episodes": 3})
    learner = PilcoLearner("reach", arm, params, seed=7)
    rng = np.random.default_rng(7)  # the schedule's draws (mbrl.loop.schedule)
    train = [arm.sampler("reach").episode(train_seed(rng)).goal for _ in range(3)]
    held = [arm.sampler("reach").episode(EVAL_SEED + i).goal for i in range(2)]
    np.testing.assert_allclose(learner.goals_after(1), [train[1]])  # no evaluation after 1
    np.testing.assert_allclose(learner.goals_after(2), [train[2], *held])
    np.testing.assert_allclose(learner.goals_after(3), held)  # the last: evaluation only
    # Control episodes whose goal is not the schedule's are counted (the random episode 0
    # is not: exploring needs no goal).
    obs = np.zeros((3, 16))
    obs[:, 13:16] = train[1] + 0.05
    assert learner.goal_mismatches([(obs, np.zeros((2, 5)))] * 2) == 1
    obs[:, 13:16] = train[1]
    assert learner.goal_mismatches([(obs, np.zeros((2, 5)))] * 2) == 0


def test_goal_policies_round_trip_and_name_an_unknown_goal(tmp_path):
    goals = np.array([[0.2, 0.0, 0.1], [0.1, 0.1, 0.2]])
    thetas = np.stack([initial_theta(np.full(5, 0.1 * k), 3.0) for k in range(2)])
    policies = GoalPolicies(goals, thetas, (13, 16), 5)
    policies.save(tmp_path / "p.npz")
    loaded = GoalPolicies.load(tmp_path / "p.npz")
    obs = np.zeros(16)
    obs[13:16] = goals[1]
    np.testing.assert_array_equal(loaded.act(obs), policies.act(obs))
    np.testing.assert_allclose(policy_action(thetas[1], obs[:5]), loaded.act(obs))
    obs[13:16] = [0.3, 0.3, 0.3]
    with pytest.raises(ValueError, match="no optimised PILCO policy"):
        loaded.act(obs)

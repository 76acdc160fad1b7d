"""Algorithm 4: gradients reach every policy parameter through the ensemble's sampled steps,
the target policy holds its target, a diverged model does not poison the policy, and the
driver end to end on a tiny budget improves over the untrained policy it started from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbrl.agents.policy import fixed_point_miss, imagined_cost, train_policy
from mbrl.agents.policy_nets import MLPPolicy, TargetPolicy, load_policy, sample_goals
from mbrl.agents.policy_params import PolicyParams
from mbrl.agents.presets import ParamError, preset
from mbrl.config import ArmConfig
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.costs.reach import ReachCost, StateLayout
from mbrl.loop.common import ExperimentConfig, RunRecorder
from mbrl.loop.policy_loop import run_policy
from mbrl.models.base import ModelFileError
from mbrl.models.ensemble import ProbabilisticEnsemble


def test_pathwise_gradient_reaches_every_policy_parameter():
    cfg = ArmConfig()
    fk = ForwardKinematics(cfg.urdf, cfg.ee_link, cfg.joint_names)
    gen = torch.Generator().manual_seed(0)
    model = ProbabilisticEnsemble(13, 5, ensemble_size=2, hidden=(16,), seed=0)
    policy = MLPPolicy(16, 5, (8,), gen, (10, 13), (13, 16))
    cost = ReachCost(StateLayout(q=(0, 5), goal=(13, 16)), fk)
    goals = sample_goals(fk, 4, gen)
    assert goals.shape == (4, 3) and bool((goals[:, 2] >= 0.02).all())
    x0 = torch.zeros(4, 13)
    loss, x_end = imagined_cost(model, policy, cost, x0, goals, 5, gen)
    assert x_end.shape == (4, 13)
    loss.backward()
    for name, p in policy.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    # The same noise draws (same generator state) give the same loss: a pathwise estimate.
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    with torch.no_grad():
        a, _ = imagined_cost(model, policy, cost, x0, goals, 5, g1)
        b, _ = imagined_cost(model, policy, cost, x0, goals, 5, g2)
    assert float(a) == float(b)


def test_target_policy_holds_its_target_and_stays_inside_the_limits():
    cfg = ArmConfig()
    fk = ForwardKinematics(cfg.urdf, cfg.ee_link, cfg.joint_names)
    gen = torch.Generator().manual_seed(0)
    policy = TargetPolicy(5, (8,), gen, (13, 16), fk.lower, fk.upper)
    goals = sample_goals(fk, 6, gen)
    with torch.no_grad():
        r = policy.target(goals)
        assert bool(((r >= fk.lower) & (r <= fk.upper)).all())
        obs = torch.cat([r, torch.zeros(6, 8), goals], -1)  # q = r(goal): the fixed point
        assert float(policy(obs).abs().max()) < 1e-6
        obs[:, 0] -= 0.2  # below the target in joint 0 -> drive it up
        assert bool((policy(obs)[:, 0] > 0).all())
    loss = fixed_point_miss(policy, fk, goals)
    loss.backward()
    assert float(loss.detach()) > 0 and policy.raw_gain.grad is None  # gains: no say in r


def test_diverged_model_skips_rollout_steps_without_poisoning_the_policy():
    cfg = ArmConfig()
    fk = ForwardKinematics(cfg.urdf, cfg.ee_link, cfg.joint_names)
    gen = torch.Generator().manual_seed(0)
    model = ProbabilisticEnsemble(13, 5, ensemble_size=2, hidden=(16,), seed=0)
    with torch.no_grad():
        for p in model.net.parameters():
            p.fill_(float("nan"))
    model._refresh_cache()
    policy = TargetPolicy(5, (8,), gen, (13, 16), fk.lower, fk.upper)
    gain0 = policy.raw_gain.detach().clone()
    with torch.no_grad():
        miss0 = float(fixed_point_miss(policy, fk, sample_goals(fk, 64, gen)))
    cost = ReachCost(StateLayout(q=(0, 5), goal=(13, 16)), fk)
    params = PolicyParams(ensemble_size=2, particles=4, horizon=3, policy_steps=5,
                          cost_ee="fk", fixed_point_weight=30.0, fixed_point_steps=20)  # fmt: skip
    losses = train_policy(model, policy, cost, fk, torch.zeros(10, 13).numpy(), params, gen)
    assert len(losses) == 5 and all(v != v for v in losses)  # every rollout was NaN: skipped
    # Only the rollout gradient reaches the gains; the FK-only fixed-point steps still ran.
    assert torch.equal(policy.raw_gain.detach(), gain0)
    assert all(bool(torch.isfinite(p).all()) for p in policy.parameters())
    with torch.no_grad():
        assert float(fixed_point_miss(policy, fk, sample_goals(fk, 64, gen))) < miss0


def test_policy_loop_improves_over_its_start_on_reach(tmp_path):
    config = ExperimentConfig(
        algo="policy",
        seed=0,
        budget_steps=200,
        episode_steps=100,
        eval_goals=3,
        eval_every=2,
        out_dir=str(tmp_path),
        algo_params={"policy_steps": 60, "horizon": 15},
    )
    summary = run_policy(config, RunRecorder(config, verbose=False))
    curve = summary["curve"]
    assert [r["env_steps"] for r in curve] == [0, 200]
    # Start: exploration (the shared schedule); after 200 real steps (1 random + 1 policy).
    assert curve[-1]["final_distance"] < 0.7 * curve[0]["final_distance"], curve
    run = tmp_path / "policy-reach-s0"
    assert len(list((run / "episodes").glob("*.mcap"))) == 2
    assert (run / "checkpoints" / "ensemble_final.npz").exists()
    # the policy artifact in the safe format: it acts as the trained policy did
    policy = load_policy(run / "checkpoints" / "policy_final.npz")
    assert isinstance(policy, TargetPolicy) and (policy.dx, policy.du) == (16, 5)
    with pytest.raises(ParamError, match="unknown parameter 'particels'"):
        preset("policy", "reach", {"particels": 8})
    with pytest.raises(ValueError, match="multiple of ensemble_size"):
        PolicyParams.from_params(preset("policy", "reach", {"particles": 7}))
    with pytest.raises(ValueError, match="policy_form"):
        PolicyParams.from_params(preset("policy", "reach", {"policy_form": "x"}))


def test_policy_files_round_trip_and_bad_ones_are_named(tmp_path):
    cfg = ArmConfig()
    fk = ForwardKinematics(cfg.urdf, cfg.ee_link, cfg.joint_names)
    gen = torch.Generator().manual_seed(1)
    obs = torch.rand(7, 16, generator=gen)
    for policy in (TargetPolicy(5, (8,), gen, (13, 16), fk.lower, fk.upper),
                   MLPPolicy(16, 5, (8, 4), gen, (10, 13), (13, 16))):  # fmt: skip
        policy.set_input_stats(obs.numpy())
        policy.save(tmp_path / "p.npz")
        back = load_policy(tmp_path / "p.npz")
        assert type(back) is type(policy)
        with torch.no_grad():
            assert torch.equal(back(obs), policy(obs))
    with torch.no_grad():
        back.net[0].weight[0, 0] = float("nan")
    back.save(tmp_path / "nan.npz")
    with pytest.raises(ModelFileError, match="nan.npz: the policy has non-finite weights"):
        load_policy(tmp_path / "nan.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "p.npz").read_bytes()[:200])
    with pytest.raises(ModelFileError, match="cut.npz"):
        load_policy(tmp_path / "cut.npz")


def test_the_objective_reads_the_models_end_effector_unless_told_to_use_fk(monkeypatch):
    """Shipped default: the imagined cost scores the model-state entries that predict the
    measured end effector (moving q under a fixed predicted ee changes only the joint
    barrier) and the fixed point is scored by a map learned from the data; the arm's
    kinematics are not evaluated on any state or target. cost_ee fk scores fk(q)."""
    from mbrl.agents.arm import ArmModel
    from mbrl.agents.policy import EEMap, PolicyLearner

    arm = ArmModel.from_config(ArmConfig())
    goal = torch.tensor([0.2, 0.05, 0.1])
    q = torch.as_tensor((arm.lower + arm.upper) / 2, dtype=torch.float32)
    x = torch.cat([q, torch.zeros(5), goal, goal])[None, None]  # predicted ee at the goal
    u = torch.zeros(1, 1, 5)
    learner = PolicyLearner("reach", arm, preset("policy", "reach"), seed=0)
    assert learner.cost.fk is None and isinstance(learner.ee_map, EEMap)
    at_goal = float(learner.cost.stage(x, u))
    assert at_goal < 0.01
    fk = PolicyLearner("reach", arm, preset("policy", "reach", {"cost_ee": "fk"}), seed=0)
    assert float(fk.cost.stage(x, u)) > at_goal + 0.05 and fk.ee_map is None
    # a fit of the default learner: FK may draw training goals (the task's goal
    # distribution) but is never called on a joint target or a predicted state
    import mbrl.agents.policy as agent_policy

    sampling, sampled, used = [False], [], []
    real_fk, real_sample = type(arm.fk).__call__, agent_policy.sample_goals

    def spy_fk(self, q):
        (sampled if sampling[0] else used).append(tuple(q.shape))
        return real_fk(self, q)

    def spy_sample(*args, **kwargs):
        sampling[0] = True
        try:
            return real_sample(*args, **kwargs)
        finally:
            sampling[0] = False

    monkeypatch.setattr(type(arm.fk), "__call__", spy_fk)
    monkeypatch.setattr(agent_policy, "sample_goals", spy_sample)
    small = preset("policy", "reach", {"model_epochs": 3, "policy_steps": 2, "horizon": 2,
                                       "particles": 10, "fixed_point_goals": 8,
                                       "fixed_point_steps": 1})  # fmt: skip
    rng = np.random.default_rng(0)
    obs = np.hstack([rng.uniform(-1, 1, (21, 10)), rng.uniform(0, 0.3, (21, 6))])
    PolicyLearner("reach", arm, small, seed=0).fit([(obs, rng.uniform(-1, 1, (20, 5)))])
    assert sampled and not used, used

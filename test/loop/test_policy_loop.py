"""Algorithm 4: gradients reach every policy parameter through the ensemble's sampled steps,
and the driver end to end on a tiny budget improves over the untrained policy it started
from."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mbrl.config import ArmConfig
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.costs.reach import ReachCost, StateLayout
from mbrl.loop.common import ExperimentConfig, RunRecorder
from mbrl.loop.policy_loop import MLPPolicy, PolicyParams, imagined_cost, run_policy, sample_goals
from mbrl.models.ensemble import ProbabilisticEnsemble


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


def test_policy_loop_improves_over_its_start_on_reach(tmp_path):
    config = ExperimentConfig(
        "policy",
        seed=0,
        budget_steps=200,
        episode_steps=100,
        eval_goals=3,
        eval_every=2,
        out_dir=str(tmp_path),
        algo_params={"policy_steps": 100, "horizon": 15},
    )
    summary = run_policy(config, RunRecorder(config, verbose=False))
    curve = summary["curve"]
    assert [r["env_steps"] for r in curve] == [0, 200]
    # Start: the untrained policy; after 200 real steps (1 random + 1 policy episode).
    assert curve[-1]["final_distance"] < 0.5 * curve[0]["final_distance"], curve
    run = tmp_path / "policy-reach-s0"
    assert len(list((run / "episodes").glob("*.mcap"))) == 2
    assert (run / "checkpoints" / "ensemble_episode002.npz").exists()
    with pytest.raises(ValueError, match="multiple of ensemble_size"):
        PolicyParams.from_config(dataclasses.replace(config, algo_params={"particles": 7}))

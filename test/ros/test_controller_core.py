"""The controller's ROS-free parts: the agent layer's actor on the known model and on an
ensemble, TorchScript policies, the standalone episode schedule, model-layout checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbrl.agents.arm import ArmModel
from mbrl.agents.mpc import MPCActor, known_model
from mbrl.agents.presets import preset
from mbrl.costs.tasks import observation
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.ros.controller_core import ActorBundle, MpcControllerConfig, load_policy, policy_action
from mbrl.ros.controller_support import EpisodeSchedule, TickStats, check_model_payload
from mbrl.ros.transport import ModelPayload

CFG = MpcControllerConfig()
NJ = len(CFG.arm.joint_names)
PARAMS = preset("mpc", "reach")


@pytest.fixture(scope="module")
def arm() -> ArmModel:
    torch.set_num_threads(1)
    return ArmModel.from_config(CFG.arm)


def _obs(arm: ArmModel, q: np.ndarray, goal: np.ndarray, task: str = "reach") -> np.ndarray:
    ee = arm.fk(torch.as_tensor(q, dtype=torch.float32)).double().numpy()
    cube = (np.array([0.2, 0.0, 0.02]), 0.3) if task == "push" else (None, None)
    return observation(task, q, np.zeros(NJ), ee, goal, *cube)


def test_known_model_bundle_plans_toward_the_goal(arm):
    q = (arm.lower + arm.upper) / 2
    goal = arm.fk(torch.as_tensor(q + 0.3, dtype=torch.float32)).double().numpy()
    actor = MPCActor(
        "reach", arm, known_model(arm), PARAMS, planner_overrides={"nominal_rollout": True}
    )
    bundle = ActorBundle(actor, 0, "known", CFG)
    obs = _obs(arm, q, goal)
    plan = actor.plan(obs, None)
    horizon = PARAMS["planner_config"]["horizon"]
    assert plan.states.shape == (horizon + 1, NJ)
    np.testing.assert_allclose(actor.goal, goal)  # the goal comes with the observation
    ee = actor.ee_points(plan.states)
    # the planned end effector ends nearer the goal than it starts
    assert np.linalg.norm(ee[-1] - goal) < np.linalg.norm(ee[0] - goal)
    assert actor.ee_spread(plan.states, plan.actions) is None  # known model: no spread
    lqr = bundle.lqr.plan(actor.state(obs), None)
    assert lqr.K.shape == (CFG.lqr_horizon, NJ, NJ)


def test_ensemble_actor_on_the_push_observation(arm):
    push = preset("mpc", "push")
    model = ProbabilisticEnsemble(NJ + 8, NJ, ensemble_size=5, hidden=(16,), seed=0)
    goal = np.array([0.25, 0.05, 0.02])
    actor = MPCActor("push", arm, model, push, planner_overrides={"nominal_rollout": True})
    q = (arm.lower + arm.upper) / 2
    obs = _obs(arm, q, goal, "push")
    x = actor.state(obs)
    np.testing.assert_allclose(x[:NJ], q, atol=1e-6)
    np.testing.assert_allclose(x[NJ + 3 : NJ + 6], [0.2, 0.0, 0.02], atol=1e-6)  # the cube
    plan = actor.plan(obs, None)
    spread = actor.ee_spread(plan.states, plan.actions)
    assert spread.shape == (push["planner_config"]["horizon"],) and np.all(spread >= 0)
    low, high = actor.action_bounds
    assert (low, high) == (-0.35, 0.35) and np.all(np.abs(plan.actions) <= 0.35 + 1e-6)
    assert actor.increment_base == "measured"  # the push preset's convention, in the graph too
    with pytest.raises(ValueError, match="needs dx=13, du=5"):
        MPCActor("push", arm, ProbabilisticEnsemble(NJ, NJ, 5, (8,)), push)


class _Gain(torch.nn.Module):
    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return -obs[:, :5] * 10.0


def test_torchscript_policy_round_trip_and_bad_files(tmp_path):
    path = tmp_path / "policy.pt"
    torch.jit.save(torch.jit.script(_Gain()), str(path))
    policy = load_policy(str(path))
    u = policy_action(policy, np.array([0.01, -0.01, 0.5, 0.0, 0.0] + [0.0] * 11), 5)
    np.testing.assert_allclose(u, [-0.1, 0.1, -1.0, 0.0, 0.0], atol=1e-6)  # clipped to [-1, 1]
    with pytest.raises(ValueError, match="expected 3 finite actions"):
        policy_action(policy, np.zeros(16), 3)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.pt"):
        load_policy(str(tmp_path / "junk.pt"))


def test_episode_schedule_and_tick_stats():
    sched = EpisodeSchedule(3)
    events = [sched.step() for _ in range(7)]
    assert events[0] == [("start", 1)] and events[1] == events[2] == []
    assert events[3] == [("end", 1), ("start", 2)] and events[6] == [("end", 2), ("start", 3)]
    stats = TickStats()
    for i in range(100):
        stats.record(i * 1e-3, 2 * i * 1e-3)
    values = stats.values()
    assert values["ticks"] == "100" and values["tick_ms_max"] == "99.000"
    assert values["latency_ms_p50"] == "99.000"


def test_model_payload_checks_name_the_version_and_the_differing_keys():
    layout = {"task": "reach", "columns": [0, 1, 2, 3, 4], "max_increment": 0.1}
    ok = ModelPayload(1, "x", "ensemble", 5, 5, "", {}, b"", dict(layout))
    check_model_payload(ok, layout)
    with pytest.raises(ValueError, match="version 2 is a 'local_lg' model"):
        check_model_payload(ModelPayload(2, "x", "local_lg", 5, 5, "", {}, b""), layout)
    other = ModelPayload(4, "x", "ensemble", 5, 5, "", {}, b"", {**layout, "max_increment": 0.05})
    with pytest.raises(ValueError, match="version 4: layout differs .max_increment: model 0.05"):
        check_model_payload(other, layout)
    with pytest.raises(ValueError, match="task: model None"):  # a model that says nothing
        check_model_payload(ModelPayload(5, "x", "ensemble", 5, 5, "", {}, b""), layout)

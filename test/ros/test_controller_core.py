"""The controller's ROS-free parts: model bundles on the known model and an ensemble,
TorchScript policies, the standalone episode schedule, model-layout checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbrl.config import ArmConfig
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.ros.controller_core import (
    ModelBundle,
    MpcControllerConfig,
    arm_limits,
    known_model,
    load_policy,
    policy_action,
)
from mbrl.ros.controller_support import EpisodeSchedule, TickStats, check_model_payload
from mbrl.ros.transport import ModelPayload

CFG = MpcControllerConfig()
NJ = len(CFG.arm.joint_names)


@pytest.fixture(scope="module")
def arm():
    torch.set_num_threads(1)
    fk = ForwardKinematics(CFG.arm.urdf, CFG.arm.ee_link, CFG.arm.joint_names)
    return (fk, *arm_limits(CFG.arm, fk))


def test_known_model_bundle_plans_toward_the_goal(arm):
    fk, lower, upper, vel = arm
    q = (lower + upper) / 2
    goal = fk(torch.as_tensor(q + 0.3, dtype=torch.float32)).double().numpy()
    bundle = ModelBundle(known_model(CFG, lower, upper, vel), 0, "known", CFG, fk, lower,
                         upper, goal, torch.Generator().manual_seed(0))  # fmt: skip
    x = bundle.state(q, np.zeros(NJ))
    plan = bundle.mpc.plan(x, None)
    assert plan.states.shape == (CFG.horizon + 1, NJ)
    ee = bundle.ee_points(plan.states)
    # the planned end effector ends nearer the goal than it starts
    assert np.linalg.norm(ee[-1] - goal) < np.linalg.norm(ee[0] - goal)
    assert bundle.ee_spread(plan.states, plan.actions) is None  # known model: no spread
    lqr = bundle.lqr.plan(x, None)
    assert lqr.K.shape == (CFG.lqr_horizon, NJ, NJ)


def test_ensemble_bundle_on_the_reach_observation(arm):
    fk, lower, upper, _ = arm
    model = ProbabilisticEnsemble(2 * NJ + 6, NJ, ensemble_size=5, hidden=(16,), seed=0)
    goal = np.array([0.15, 0.0, 0.1])
    bundle = ModelBundle(model, 3, "ensemble", CFG, fk, lower, upper, goal,
                         torch.Generator().manual_seed(0))  # fmt: skip
    q = (lower + upper) / 2
    x = bundle.state(q, np.ones(NJ))
    np.testing.assert_allclose(x[:NJ], q)
    np.testing.assert_allclose(x[-3:], goal)
    ee = fk(torch.as_tensor(q, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(x[2 * NJ : 2 * NJ + 3], ee, atol=1e-6)
    plan = bundle.mpc.plan(x, None)
    spread = bundle.ee_spread(plan.states, plan.actions)
    assert spread.shape == (CFG.horizon,) and np.all(spread >= 0)
    bundle.set_goal(np.array([0.1, 0.1, 0.1]))
    np.testing.assert_allclose(bundle.state(q, np.ones(NJ))[-3:], [0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="du=2"):
        ModelBundle(ProbabilisticEnsemble(NJ, 2, 5, (8,)), 1, "ensemble", CFG, fk, lower,
                    upper, goal, torch.Generator())  # fmt: skip


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


def test_model_payload_checks_name_the_version():
    joints = ArmConfig().joint_names
    ok = ModelPayload(1, "x", "ensemble", 10, 5, "", {}, b"", {"joint_names": list(joints)})
    check_model_payload(ok, joints)
    with pytest.raises(ValueError, match="version 2 is a 'local_lg' model"):
        check_model_payload(ModelPayload(2, "x", "local_lg", 10, 5, "", {}, b""), joints)
    other = ModelPayload(4, "x", "ensemble", 10, 5, "", {}, b"", {"action": "position"})
    with pytest.raises(ValueError, match="version 4: layout"):
        check_model_payload(other, joints)

"""The controller's ROS-free parts: the agent layer's actor on the known model and on an
ensemble, policy artifacts, the standalone episode schedule, model-layout checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbrl.agents import registry as agents
from mbrl.agents.arm import ArmModel
from mbrl.agents.mpc import MPCActor, known_model
from mbrl.agents.policy import PolicyActor
from mbrl.agents.policy_nets import MLPPolicy, TargetPolicy
from mbrl.agents.presets import preset
from mbrl.costs.tasks import observation
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.ros.controller_core import ActorBundle, MpcControllerConfig
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
    velocity = np.array([0.1, -0.05, 0.0, 0.5])  # the cube sliding (m/s) and turning (rad/s)
    cube = (np.array([0.2, 0.0, 0.02]), 0.3, velocity) if task == "push" else (None,) * 3
    pending = np.zeros(NJ) if task == "reach" else None  # the reach preset's model state
    return observation(task, q, np.zeros(NJ), ee, goal, *cube, pending=pending)


def test_known_model_bundle_plans_toward_the_goal(arm):
    q = (arm.lower + arm.upper) / 2
    goal = arm.fk(torch.as_tensor(q + 0.3, dtype=torch.float32)).double().numpy()
    actor = MPCActor(
        "reach", arm, known_model(arm, PARAMS), PARAMS, planner_overrides={"nominal_rollout": True}
    )
    bundle = ActorBundle(actor, 0, "known", CFG)
    obs = _obs(arm, q, goal)
    plan = actor.plan(obs, None)
    horizon = PARAMS["planner_config"]["horizon"]
    assert plan.states.shape == (horizon + 1, 3 * NJ)  # [q, qdot, pending]
    np.testing.assert_allclose(actor.goal, goal)  # the goal comes with the observation
    ee = actor.ee_points(plan.states)
    # the planned end effector ends nearer the goal than it starts
    assert np.linalg.norm(ee[-1] - goal) < np.linalg.norm(ee[0] - goal)
    assert actor.ee_spread(plan.states, plan.actions) is None  # known model: no spread
    lqr = bundle.lqr.plan(actor.state(obs), None)
    assert lqr.K.shape == (CFG.lqr_horizon, NJ, 3 * NJ)


def test_plan_next_plans_from_the_predicted_next_state(arm):
    """Plan one tick ahead: plan_next(obs, u) is the plan from the model's prediction of the
    state after u, and its warm start carries on as if that state had been measured."""
    q = (arm.lower + arm.upper) / 2
    goal = arm.fk(torch.as_tensor(q + 0.3, dtype=torch.float32)).double().numpy()
    model = known_model(arm, PARAMS)
    obs = _obs(arm, q, goal)
    u = np.full(NJ, 0.5)
    ahead = MPCActor(
        "reach", arm, model, PARAMS, seed=3, planner_overrides={"nominal_rollout": True}
    )
    plan = ahead.plan_next(obs, u, None)
    predicted, _ = model.predict(ahead.state(obs)[None], u[None].astype(np.float32))
    # the plan starts at the predicted state, not at the measured one
    np.testing.assert_allclose(plan.states[0], predicted[0], atol=1e-6)
    assert not np.allclose(plan.states[0], ahead.state(obs), atol=1e-3)
    np.testing.assert_allclose(ahead.goal, goal)
    assert ahead.plans_ahead  # ...and the controller may send it on the next tick
    # Algorithms 1 and 2 replay one plan per episode: they never replan ahead, although
    # they delegate the rest of the MPC actor's interface
    for algo in ("alg1", "alg2"):
        assert not agents.make_actor(algo, "reach", arm, model, PARAMS).plans_ahead
    # the same planner (same seed) given that state as if measured plans the same actions
    now = MPCActor("reach", arm, model, PARAMS, seed=3, planner_overrides={"nominal_rollout": True})
    now.set_goal(goal)
    np.testing.assert_allclose(now.mpc.plan(predicted[0].astype(np.float32)).actions, plan.actions)


def test_ensemble_actor_on_the_push_observation(arm):
    push = preset("mpc", "push")
    model = ProbabilisticEnsemble(2 * NJ + 12, NJ, ensemble_size=5, hidden=(16,), seed=0)
    goal = np.array([0.25, 0.05, 0.02])
    actor = MPCActor("push", arm, model, push, planner_overrides={"nominal_rollout": True})
    q = (arm.lower + arm.upper) / 2
    obs = _obs(arm, q, goal, "push")
    x = actor.state(obs)
    np.testing.assert_allclose(x[:NJ], q, atol=1e-6)
    # the push model state: q, qdot, ee, the cube, sin/cos yaw, the cube's velocity
    np.testing.assert_allclose(x[2 * NJ + 3 : 2 * NJ + 6], [0.2, 0.0, 0.02], atol=1e-6)
    np.testing.assert_allclose(x[-4:], [0.1, -0.05, 0.0, 0.5], atol=1e-6)
    plan = actor.plan(obs, None)
    spread = actor.ee_spread(plan.states, plan.actions)
    assert spread.shape == (push["planner_config"]["horizon"],) and np.all(spread >= 0)
    low, high = actor.action_bounds
    assert (low, high) == (-0.35, 0.35) and np.all(np.abs(plan.actions) <= 0.35 + 1e-6)
    assert actor.increment_base == "measured"  # the push preset's convention, in the graph too
    with pytest.raises(ValueError, match="needs dx=22, du=5"):
        MPCActor("push", arm, ProbabilisticEnsemble(NJ, NJ, 5, (8,)), push)


def test_policy_artifact_runs_as_the_policy_agents_actor(arm, tmp_path):
    gen = torch.Generator().manual_seed(0)
    policy = TargetPolicy(NJ, (8,), gen, (13, 16), arm.lower, arm.upper)
    policy.save(tmp_path / "p.npz")
    loaded = agents.load_artifact("policy", tmp_path / "p.npz")
    params = preset("policy", "reach")
    actor = agents.make_actor("policy", "reach", arm, loaded, params)
    bundle = ActorBundle(actor, 3, "policy", CFG)
    assert isinstance(actor, PolicyActor) and not bundle.plans and bundle.lqr is None
    q = (arm.lower + arm.upper) / 2
    obs = _obs(arm, q, np.array([0.2, 0.0, 0.1]))
    u = actor.act(obs)
    with torch.no_grad():
        expected = policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
    np.testing.assert_allclose(u, expected, atol=1e-6)
    assert np.all(np.abs(u) <= 1.0)
    bundle.set_goal(np.zeros(3))  # no planner to reset: no error
    # a policy of another observation or arm is refused before it reaches a tick
    other = MLPPolicy(20, NJ, (8,), gen, (10, 13), (13, 16))
    with pytest.raises(ValueError, match="policy maps 20 inputs to 5 actions; reach on this arm"):
        agents.make_actor("policy", "reach", arm, other, params)
    with torch.no_grad():
        policy.net[0].weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="finite"):  # the controller holds on this
        PolicyActor(policy).act(obs)


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


def test_model_payload_checks_name_the_version_and_the_differing_keys(arm):
    layout = {"task": "reach", "columns": [0, 1, 2, 3, 4], "max_increment": 0.1}
    ok = ModelPayload(1, "x", "ensemble", 5, 5, "", {}, b"", dict(layout))
    check_model_payload(ok, "ensemble", layout)
    with pytest.raises(ValueError, match="version 2 is a 'local_lg' artifact; this controller's"):
        check_model_payload(ModelPayload(2, "x", "local_lg", 5, 5, "", {}, b""), "ensemble", layout)
    with pytest.raises(ValueError, match="version 3 is a 'ensemble' artifact; .* runs 'policy'"):
        check_model_payload(ok.__class__(3, "x", "ensemble", 5, 5, "", {}, b""), "policy", layout)
    other = ModelPayload(4, "x", "ensemble", 5, 5, "", {}, b"", {**layout, "max_increment": 0.05})
    with pytest.raises(ValueError, match="version 4: layout differs .max_increment: model 0.05"):
        check_model_payload(other, "ensemble", layout)
    with pytest.raises(ValueError, match="task: model None"):  # a model that says nothing
        check_model_payload(ModelPayload(5, "x", "ensemble", 5, 5, "", {}, b""), "ensemble", layout)
    # the fitter's and the controller's layouts are one function: the agents differ
    mpc = agents.artifact_layout("mpc", "reach", arm, preset("mpc", "reach"))
    pol = agents.artifact_layout("policy", "reach", arm, preset("policy", "reach"))
    assert mpc["learner"] == "mpc" and pol["learner"] == "policy" and pol["observation"] == 16
    assert mpc["joint_names"] == pol["joint_names"] == list(arm.joint_names)

"""Planning one tick ahead inside the real mpc_controller node (rclpy, in this process, ticks
called directly so the test controls each joint state): the command sent on a tick is the one
planned on the tick before, and that plan started from the model's prediction of this
tick's state, made from the previous tick's observation (its pending motion included)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from rclpy.parameter import Parameter

from mbrl.ros.mpc_controller import MpcController
from mbrl.ros.msgs import joint_state_msg

pytestmark = pytest.mark.ros
GOAL = [0.18, 0.08, 0.12]  # m, reachable by the SO arm


def _node(plan_ahead: bool) -> MpcController:
    overrides = [
        Parameter("timing", value="realtime"),
        Parameter("trigger", value="timer"),  # the test calls the ticks itself
        Parameter("plan_ahead", value=plan_ahead),
        Parameter("deadline_fraction", value=0.95),  # a loaded test machine still plans
        Parameter("goal", value=GOAL),
        Parameter("viz_every", value=0),
    ]
    return MpcController(parameter_overrides=overrides)


def _state(node: MpcController, q: np.ndarray) -> None:
    names = list(node.cfg.arm.joint_names)
    node._on_joint_state(joint_state_msg(names, q, np.zeros(len(q))))


def test_the_command_is_the_one_planned_on_the_tick_before(ros_context):
    node = _node(plan_ahead=True)
    try:
        calls: list[tuple[np.ndarray, np.ndarray]] = []
        actor = node.bundle.actor
        plan_next = actor.plan_next

        def recording_plan_next(obs, action, deadline=None):
            calls.append((np.array(obs), np.array(action)))
            plan = plan_next(obs, action, deadline)
            calls[-1] += (plan,)
            return plan

        actor.plan_next = recording_plan_next
        nj, step = node.arm.nj, node.cfg.arm.max_increment
        q0 = (node.arm.lower + node.arm.upper) / 2
        _state(node, q0)
        start = time.perf_counter()
        node._tick()  # first tick on the goal: nothing planned for it, the zero increment
        c1 = node._base.copy()
        np.testing.assert_allclose(c1, q0)
        assert len(calls) == 1 and node.stats.planned_ahead == 0
        q1 = q0 + 0.004  # the arm moved a little, not as predicted
        # the next tick one period later, as in real time (the speed limit allows a period's
        # motion; a plan made more than 1.5 periods before is not used)
        time.sleep(max(0.0, start + node.cfg.period - time.perf_counter()))
        _state(node, q1)
        node._tick()
        c2 = node._base.copy()
        assert node.stats.planned_ahead == 1 and len(calls) == 2
        # tick 2 sent the first action of the plan made on tick 1, from tick 1's observation
        planned = np.clip(calls[0][2].actions[0], *actor.action_bounds)
        np.testing.assert_allclose((c2 - c1) / step, planned, atol=1e-6)
        # tick 2's plan ahead starts from tick 2's observation, whose pending motion is the
        # previous command (c1) minus the measured q, not the command just sent (c2)
        obs2, sent2, _ = calls[1]
        pending = obs2[actor.columns][2 * nj : 3 * nj]  # the model state [q, qdot, pending]
        np.testing.assert_allclose(pending, c1 - q1, atol=1e-6)
        np.testing.assert_allclose(sent2, (c2 - c1) / step, atol=1e-6)
        np.testing.assert_allclose(obs2[:nj], q1, atol=1e-6)
    finally:
        node.destroy_node()


def test_without_plan_ahead_each_tick_plans_on_its_own_state(ros_context):
    node = _node(plan_ahead=False)
    try:
        seen: list[np.ndarray] = []
        actor = node.bundle.actor
        plan = actor.plan

        def recording_plan(obs, deadline=None):
            seen.append(np.array(obs))
            return plan(obs, deadline)

        actor.plan = recording_plan
        nj = node.arm.nj
        q0 = (node.arm.lower + node.arm.upper) / 2
        states = [q0 + 0.002 * k for k in range(3)]
        for q in states:
            _state(node, q)
            node._tick()
        assert node.stats.planned_ahead == 0 and node._ahead is None
        # one plan a tick, each from that tick's measured joints
        assert len(seen) == 3
        for obs, q in zip(seen, states, strict=True):
            np.testing.assert_allclose(obs[:nj], q, atol=1e-9)
    finally:
        node.destroy_node()

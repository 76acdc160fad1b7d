"""The mpc_controller node as a real process over DDS, with the sim node (or the test itself,
for faulty joint states) as the arm: control, modes, model hot swap, corrupt models, safety."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from nav_msgs.msg import Path
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from ros_helpers import COMMANDS, JOINTS, Client, Output
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String, UInt8MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from mbrl.agents.mpc import model_columns
from mbrl.config import ArmConfig
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.ros.graph import get_nodes
from mbrl.ros.msgs import joint_positions_by_name, joint_state_msg
from mbrl.ros.runner import GraphRunner
from mbrl.ros.topics import GOAL as GOAL_TOPIC
from mbrl.ros.topics import GOAL_QOS
from mbrl.ros.transport import (
    EPISODE_CONTROL_QOS,
    EPISODE_CONTROL_TOPIC,
    MODEL_QOS,
    MODEL_TOPIC,
    encode_model_msg,
)

pytestmark = pytest.mark.ros
TRAJECTORY = "/joint_trajectory_controller/joint_trajectory"
GOAL = np.array([0.18, 0.08, 0.12])  # m, reachable by the SO arm


class Graph:
    """Nodes started by the embedded runner plus the test's client node."""

    def __init__(self, names: list[str], overrides: dict, client_name: str) -> None:
        self.output = Output()
        self.runner = GraphRunner(get_nodes(names), overrides=overrides, output=self.output)
        self.runner.start()
        self.client = Client(rclpy.create_node(client_name))
        node = self.client.node
        self.commands: list[Float64MultiArray] = []
        self.trajectories: list[JointTrajectory] = []
        self.diagnostics: list[dict[str, str]] = []
        self.markers: list[MarkerArray] = []
        self.paths: list[Path] = []
        node.create_subscription(Float64MultiArray, COMMANDS, self.commands.append, 100)
        node.create_subscription(JointTrajectory, TRAJECTORY, self.trajectories.append, 100)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 100)
        node.create_subscription(MarkerArray, "/mpc_controller/plan", self.markers.append, 10)
        node.create_subscription(Path, "/mpc_controller/plan_path", self.paths.append, 10)
        self.goal_pub = node.create_publisher(PointStamped, GOAL_TOPIC, GOAL_QOS)
        self.model_pub = node.create_publisher(UInt8MultiArray, MODEL_TOPIC, MODEL_QOS)
        self.enable = node.create_client(SetBool, "/mpc_controller/enable")
        self.set_params = node.create_client(SetParameters, "/mpc_controller/set_parameters")

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "mbrl/mpc_controller":
                self.diagnostics.append({v.key: v.value for v in status.values})

    def diag(self) -> dict[str, str]:
        return self.diagnostics[-1] if self.diagnostics else {}

    def wait(self, predicate, timeout: float = 30.0, what: str = "") -> None:
        ok = self.client.spin_until(predicate, timeout=timeout)
        self.runner.check()
        assert ok, f"timed out waiting for {what}; diag {self.diag()}\n{self.output.text()[-3000:]}"

    def call(self, client, request):
        assert client.wait_for_service(timeout_sec=30.0), self.output.text()[-2000:]
        future = client.call_async(request)
        self.wait(future.done, what=f"{client.srv_name}")
        return future.result()

    def set_mode(self, mode: str) -> None:
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=mode)
        req = SetParameters.Request(parameters=[ParameterMsg(name="mode", value=value)])
        assert self.call(self.set_params, req).results[0].successful
        self.wait(lambda: self.diag().get("mode") == mode, what=f"mode {mode}")

    def publish_goal(self, goal: np.ndarray) -> None:
        msg = PointStamped()
        msg.header.frame_id = "base_link"
        msg.point.x, msg.point.y, msg.point.z = (float(v) for v in goal)
        self.goal_pub.publish(msg)

    def close(self) -> None:
        self.client.node.destroy_node()
        self.runner.shutdown()


def _ee(q: np.ndarray) -> np.ndarray:
    cfg = ArmConfig()
    fk = ForwardKinematics(cfg.urdf, cfg.ee_link, cfg.joint_names, dtype=torch.float64)
    return fk(torch.as_tensor(q)).numpy()


def test_mpc_reaches_goal_modes_and_rviz_plan(ros_context):
    g = Graph(["sim", "mpc_controller"], {"sim": {"seed": 0}}, "test_mpc_client")
    try:
        g.wait(lambda: g.diag().get("safety") == "ok" and g.commands, what="first commands")
        g.publish_goal(GOAL)
        # the known kinematic model + iCEM drive the simulated arm's end effector to the goal
        g.wait(
            lambda: (
                bool(g.client.states)
                and np.linalg.norm(_ee(joint_positions_by_name(g.client.states[-1], JOINTS)) - GOAL)
                < 0.03
            ),
            timeout=40.0,
            what="end effector within 3 cm of the goal",
        )
        d = g.diag()
        assert (d["mode"], d["model_version"], d["model_kind"]) == ("mpc", "0", "known")
        assert int(d["ticks"]) > 0 and float(d["tick_ms_p50"]) > 0.0
        # real time plans one tick ahead: all but the first tick on each goal send the command
        # planned on the tick before, so the state -> command latency is not a planning time
        assert int(d["planned_ahead"]) >= 0.8 * int(d["ticks"]), d
        assert float(d["latency_ms_p50"]) < 0.5 * float(d["tick_ms_p50"]), d
        # rviz: the plan's EE line + spheres + goal, and a Path of horizon + 1 poses
        g.wait(lambda: bool(g.markers) and bool(g.paths), what="plan markers")
        assert len(g.markers[-1].markers) == 3 and g.markers[-1].markers[0].header.frame_id
        assert len(g.paths[-1].poses) == 11
        goal_marker = g.markers[-1].markers[2].pose.position
        np.testing.assert_allclose([goal_marker.x, goal_marker.y, goal_marker.z], GOAL)
        # explore: commands keep changing (coloured noise), every command within the limits
        g.set_mode("explore")
        n = len(g.commands)

        def moved() -> bool:
            cmds = np.array([c.data for c in g.commands[n:]])
            return len(cmds) > 20 and np.abs(np.diff(cmds, axis=0)).max() > 1e-3

        g.wait(moved, what="explore commands that move")
        cmds = np.array([c.data for c in g.commands[n:]])
        assert np.abs(np.diff(cmds, axis=0)).max() <= 0.1 + 1e-9  # max_increment per tick
        # lqr: iLQR feedback planned off the tick; reaches the goal again
        g.set_mode("lqr")
        g.publish_goal(GOAL[[0, 1, 2]] * np.array([1.0, -1.0, 1.0]))
        g.wait(
            lambda: (
                np.linalg.norm(
                    _ee(joint_positions_by_name(g.client.states[-1], JOINTS)) - GOAL * [1, -1, 1]
                )
                < 0.04
            ),
            timeout=40.0,
            what="lqr reaching the mirrored goal",
        )
        # mode policy cannot run the MPC agent's model: it holds (commands = measured
        # position), tick after tick, and the node keeps running
        holds = int(g.diag()["holds"])
        g.set_mode("policy")
        g.wait(lambda: int(g.diag()["holds"]) > holds + 5, timeout=20.0,
               what="mode policy holding an MPC agent's arm")  # fmt: skip
        assert g.diag()["artifact"] == "running" and g.diag()["model_kind"] == "known"
        g.runner.check()
    finally:
        g.close()


REACH_COLUMNS = model_columns("reach", 5, "q_qd_pending").tolist()


def _ensemble_bytes(tmp_path, seed: int) -> bytes:
    torch.manual_seed(0)  # test-only; the model's weights come from its own seed
    dx = len(REACH_COLUMNS)  # the reach preset's model state [q, qdot, pending]
    model = ProbabilisticEnsemble(dx, 5, ensemble_size=5, hidden=(32, 32), seed=seed)
    path = tmp_path / f"ens{seed}.npz"
    model.save(path)
    return path.read_bytes()


def test_model_hot_swap_and_corrupt_models_over_trajectory_interface(ros_context, tmp_path):
    ctl = {"command_interface": "trajectory", "data_dir": str(tmp_path / "ctl")}
    overrides = {"mpc_controller": ctl}
    g = Graph(["sim", "mpc_controller"], overrides, "test_swap_client")
    try:
        g.wait(lambda: g.trajectories and g.diag().get("safety") == "ok", what="trajectories")
        assert not g.commands and g.trajectories[-1].joint_names == list(JOINTS)
        data = _ensemble_bytes(tmp_path, 1)
        # what the fitter sends with an mpc/reach model (mbrl.ros.model_fitter)
        layout = {"learner": "mpc", "task": "reach", "columns": REACH_COLUMNS,
                  "action": "increment", "joint_names": list(JOINTS), "max_increment": 0.1,
                  "action_base": "command", "control_rate_hz": 20.0}  # fmt: skip
        g.model_pub.publish(
            encode_model_msg(
                data, 1, "ensemble", len(REACH_COLUMNS), 5, {"num_transitions": 100}, layout=layout
            )  # fmt: skip
        )
        g.wait(lambda: g.diag().get("model_version") == "1", what="model version 1 in use")
        assert "model version 1 (ensemble) swapped in at tick" in g.output.text()
        # Loaded in another thread, swapped between ticks: no tick went without a command
        # (a miss still commands, with the shifted previous plan; a hold commands too).
        swap_tick = int(g.output.text().split("swapped in at tick ")[1].split()[0])
        ticks, n = int(g.diag()["ticks"]), len(g.trajectories)
        g.wait(lambda: int(g.diag()["ticks"]) > ticks + 20, what="ticks after the swap")
        ticks2, n2 = int(g.diag()["ticks"]), len(g.trajectories)
        assert abs((n2 - n) - (ticks2 - ticks)) <= 3 and swap_tick < ticks2
        # corrupt: one flipped byte (hash mismatch), then a truncated message
        msg = encode_model_msg(data, 2, "ensemble", len(REACH_COLUMNS), 5, layout=layout)
        bad = bytearray(data)
        bad[len(bad) // 2] ^= 0xFF
        msg.data = bytes(bad)
        g.model_pub.publish(msg)
        g.wait(lambda: g.diag().get("rejected_models") == "1", what="hash rejection")
        assert "version 2" in g.diag()["last_reject"] and "sha256" in g.diag()["last_reject"]
        short = encode_model_msg(data, 3, "ensemble", len(REACH_COLUMNS), 5, layout=layout)
        short.data = data[: len(data) // 3]
        g.model_pub.publish(short)
        g.wait(lambda: g.diag().get("rejected_models") == "2", what="truncation rejection")
        assert "truncated" in g.diag()["last_reject"]
        # a valid file of the wrong layout (another arm's joints) is refused, naming it
        other = dict(layout, joint_names=["j1", "j2", "j3", "j4", "j5"])
        g.model_pub.publish(
            encode_model_msg(data, 4, "ensemble", len(REACH_COLUMNS), 5, layout=other)
        )
        g.wait(lambda: g.diag().get("rejected_models") == "3", what="layout rejection")
        text = g.output.text()
        assert "rejected model from /mbrl/model: /mbrl/model version 2: sha256 mismatch" in text
        assert "keeping model version 1" in text and "layout differs (joint_names" in text
        assert g.diag()["model_version"] == "1" and g.diag()["safety"] == "ok"
        ticks = int(g.diag()["ticks"])
        g.wait(lambda: int(g.diag()["ticks"]) > ticks + 10, what="ticks after the rejections")
    finally:
        g.close()


class FakeArm:
    """The test as the arm: publishes /joint_states it chooses, 20 Hz, from a timer."""

    def __init__(self, node) -> None:
        self.pub = node.create_publisher(JointState, "/joint_states", 10)
        self.names = list(JOINTS) + ["gripper"]
        self.q = np.array([0.1, -0.2, 0.3, 0.0, 0.05, 0.0])
        self.active = True
        node.create_timer(0.05, self._publish)

    def _publish(self) -> None:
        if self.active:
            self.pub.publish(joint_state_msg(self.names, self.q, np.zeros(len(self.q))))


def test_safety_holds_on_stale_nan_and_misnamed_states_and_enable(ros_context):
    ctl = {"start_enabled": False, "mode": "explore", "standalone": True, "episode_ticks": 10}
    g = Graph(["mpc_controller"], {"mpc_controller": ctl}, "test_safety_client")
    try:
        arm = FakeArm(g.client.node)
        events: list[dict] = []
        goals: list[PointStamped] = []
        g.client.node.create_subscription(
            String, EPISODE_CONTROL_TOPIC, lambda m: events.append(json.loads(m.data)),
            EPISODE_CONTROL_QOS,
        )  # fmt: skip
        g.client.node.create_subscription(PointStamped, GOAL_TOPIC, goals.append, GOAL_QOS)
        good_q = arm.q[:5].copy()
        g.wait(lambda: g.diag().get("safety") == "ok", what="safety ok")
        # starts disabled: no commands at all, until ~/enable
        g.client.spin_for(0.5)
        assert not g.commands and g.diag()["enabled"] == "False"
        assert g.call(g.enable, SetBool.Request(data=True)).success
        g.wait(
            lambda: (
                bool(g.commands) and np.abs(np.array(g.commands[-1].data) - good_q).max() > 1e-4
            ),
            what="exploring commands after enable",
        )
        # standalone: the controller runs its own episodes of 10 ticks, a goal for each
        g.wait(lambda: len(events) >= 3 and bool(goals), what="standalone episode events")
        # a start carries its goal (the collector records that one, not /goal's latest)
        starts = [e.pop("goal") for e in events[:3] if e["event"] == "start"]
        assert len(starts) == 2 and all(len(goal) == 3 for goal in starts)
        published = np.array([[m.point.x, m.point.y, m.point.z] for m in goals])
        assert np.abs(published - np.array(starts[0])).max(axis=1).min() < 1e-12
        assert [e.pop("frame_id") for e in events[:3] if e["event"] == "start"] == [
            "base_link", "base_link",
        ]  # fmt: skip
        assert events[:3] == [
            {"event": "start", "episode_id": 1, "task": "reach", "mode": "explore"},
            {"event": "end", "episode_id": 1, "task": "reach", "mode": "explore"},
            {"event": "start", "episode_id": 2, "task": "reach", "mode": "explore"},
        ]

        def holds(reason: str, detail: str) -> None:
            g.wait(lambda: g.diag().get("safety") == reason, what=reason)
            assert detail in g.diag()["safety_detail"]
            n = len(g.commands)
            g.wait(lambda: len(g.commands) > n + 3, what=f"hold commands ({reason})")
            # a hold repeats the last command sent: no jump, whatever the state said
            for c in g.commands[n + 1 :]:
                np.testing.assert_allclose(c.data, g.commands[n].data)
            assert f"safety ok -> {reason}" in g.output.text()

        def recovers() -> None:
            arm.names, arm.q, arm.active = list(JOINTS) + ["gripper"], good_full.copy(), True
            g.wait(lambda: g.diag().get("safety") == "ok", what="recovery")
            n = len(g.commands)
            g.wait(
                lambda: (
                    len(g.commands) > n
                    and np.abs(np.array(g.commands[-1].data) - good_q).max() > 1e-4
                ),
                what="exploring commands after recovery",
            )

        good_full = arm.q.copy()
        arm.q = good_full.copy()
        arm.q[2] = math.nan
        holds("nan", "elbow_flex")
        recovers()
        arm.names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "tool", "gripper"]
        holds("bad_names", "['wrist_roll'] missing")  # (after stale_periods of not naming it)
        recovers()
        arm.active = False
        holds("stale", "stale")
        recovers()
        # tick_limit: after an enable the controller sends exactly that many commands, then
        # disables itself (what ends a lockstep episode on its last tick); bad values refused
        assert g.call(g.enable, SetBool.Request(data=False)).success
        g.wait(lambda: g.diag().get("enabled") == "False", what="disabled")
        g.client.spin_for(0.2)

        def set_limit(value) -> bool:
            kind = ParameterType.PARAMETER_INTEGER
            if isinstance(value, float):
                value_msg = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
            else:
                value_msg = ParameterValue(type=kind, integer_value=value)
            req = SetParameters.Request(
                parameters=[ParameterMsg(name="tick_limit", value=value_msg)]
            )
            return g.call(g.set_params, req).results[0].successful

        assert not set_limit(-1)
        assert set_limit(7)
        n = len(g.commands)
        assert g.call(g.enable, SetBool.Request(data=True)).success
        g.wait(lambda: g.diag().get("enabled") == "False", what="disabled by tick_limit")
        g.client.spin_for(0.5)
        assert len(g.commands) - n == 7
        assert "tick_limit 7 reached" in g.output.text()
        assert set_limit(0)
        # disabled again: the commands stop
        assert g.call(g.enable, SetBool.Request(data=False)).success
        g.client.spin_for(0.3)
        n = len(g.commands)
        g.client.spin_for(0.5)
        assert len(g.commands) == n
    finally:
        g.close()

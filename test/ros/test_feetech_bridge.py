"""The feetech_bridge node as a real process over DDS, driving emulated STS3215 servos: a
byte-level Feetech bus emulator on a pseudo-terminal (test/real/feetech_emulator.py) that
this test runs in a thread. Joint states by the driver's names in rad, clamped commands as
Goal_Position ticks, dropped/corrupt status packets, a dead bus held and recovered; then the
mpc_controller drives the emulated arm through the bridge with the joint-name map."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from ros_helpers import COMMANDS, Client, Output
from std_msgs.msg import Float64MultiArray

from mbrl.config import ArmConfig, from_dict, load_yaml
from mbrl.data.episodes import read_episode
from mbrl.real.calibration import calibration_from_dict
from mbrl.real.cli import arm_file
from mbrl.ros.graph import get_nodes
from mbrl.ros.msgs import float64_multiarray, joint_positions_by_name
from mbrl.ros.real_arm import BRIDGE  # with the shipped config/feetech_bridge.yaml
from mbrl.ros.runner import GraphRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "real"))
from feetech_emulator import FeetechBusEmulator  # noqa: E402
from test_calibration import CALIBRATION  # noqa: E402

pytestmark = pytest.mark.ros
pytest.importorskip("scservo_sdk")

CONFIG = Path(__file__).resolve().parents[2] / "config"
DRIVER_NAMES = [
    "shoulder_pan_joint",
    "shoulder_lift_joint",
    "elbow_flex_joint",
    "wrist_flex_joint",
    "wrist_roll_joint",
    "gripper_joint",
]


@pytest.fixture
def emulated_arm(tmp_path):
    """(emulator, arm file path): six servos reading mid-range, an arm file for its pty."""
    cal = calibration_from_dict(CALIBRATION, source="my_so101.json")
    base = from_dict(ArmConfig, load_yaml(CONFIG / "arm_so101.yaml")["arm"], "arm")
    # raw positions so that each joint reads the middle of its calibrated range
    raw = {m.id: round(m.mid) + m.homing_offset for m in cal.motors}
    with FeetechBusEmulator(raw) as emu:
        path = tmp_path / "arm_myso101.yaml"
        path.write_text(yaml.safe_dump(arm_file(base, cal, "ros2_control", emu.port)))
        yield emu, path, cal


class Bridge:
    def __init__(self, arm_path: Path, extra_nodes=(), overrides=None) -> None:
        self.output = Output()
        specs = (BRIDGE, *get_nodes(extra_nodes)) if extra_nodes else (BRIDGE,)
        overrides = {"feetech_bridge": {"arm_file": str(arm_path)}, **(overrides or {})}
        self.runner = GraphRunner(specs, overrides=overrides, output=self.output)
        self.runner.start()
        self.client = Client(rclpy.create_node("test_bridge_client"))
        node = self.client.node
        self.commands = node.create_publisher(Float64MultiArray, COMMANDS, 10)
        self.diagnostics: dict[str, list[dict]] = {}
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for s in msg.status:
            values = {v.key: v.value for v in s.values}
            entry = {"level": s.level, "message": s.message, **values}
            self.diagnostics.setdefault(s.name, []).append(entry)

    def diag(self, name: str = "mbrl/feetech_bridge") -> dict:
        return self.diagnostics.get(name, [{}])[-1]

    def wait(self, predicate, what: str, timeout: float = 30.0) -> None:
        ok = self.client.spin_until(predicate, timeout=timeout)
        self.runner.check()
        assert ok, f"timed out waiting for {what}; diag {self.diag()}\n{self.output.text()[-3000:]}"

    def close(self) -> None:
        self.client.node.destroy_node()
        self.runner.shutdown()


def test_bridge_publishes_commands_holds_and_recovers(ros_context, emulated_arm):
    emu, path, cal = emulated_arm
    joints = cal.names
    b = Bridge(path)
    try:
        b.wait(
            lambda: bool(b.client.states) and b.commands.get_subscription_count() > 0,
            "joint states",
        )
        # Set up at connect as LeRobot does; published by the driver's names, in rad, as
        # LeRobot's degrees: (ticks - (min + max) / 2) * 360 / 4095.
        assert [emu.register(m.id, "P_Coefficient") for m in cal.motors] == [16] * 6
        assert [emu.register(m.id, "Return_Delay_Time") for m in cal.motors] == [0] * 6
        msg = b.client.states[-1]
        assert list(msg.name) == DRIVER_NAMES
        expected = [np.radians((emu.present(m.id) - m.mid) * 360 / 4095) for m in cal.motors]
        np.testing.assert_allclose(msg.position, expected, atol=2 * 2 * np.pi / 4095)

        # A command moves the servos' goals; one beyond its limit is clamped to it.
        arm = yaml.safe_load(path.read_text())["arm"]
        target = np.array([0.3, -0.2, 0.4, 0.1, 9.0])  # wrist_roll far past its limit
        b.commands.publish(float64_multiarray(target))
        goal_ticks = [cal.motor(n).rad_to_ticks(v) for n, v in zip(joints, target, strict=False)]
        goal_ticks[4] = cal.motor("wrist_roll").rad_to_ticks(arm["position_upper"][4])
        b.wait(
            lambda: [emu.register(m.id, "Goal_Position") for m in cal.motors[:5]] == goal_ticks,
            "goal positions",
        )
        reached = np.append(target[:4], arm["position_upper"][4])
        b.wait(
            lambda: np.abs(np.array(b.client.states[-1].position[:5]) - reached).max() < 0.01,
            "the emulated arm at the command",
        )
        b.wait(lambda: b.diag().get("clamped_commands") == "1", "clamp count")

        # Dropped and corrupt status packets are retried: states keep coming, no hold.
        emu.drop_every, emu.corrupt_every = 37, 29
        n, drops = len(b.client.states), emu.dropped + emu.corrupted
        b.wait(lambda: len(b.client.states) > n + 50, "states through a faulty bus")
        assert emu.dropped + emu.corrupted > drops
        b.wait(lambda: int(b.diag().get("read_retries", 0)) > 0, "retries reported")
        assert b.diag()["state"] == "ok"

        # A dead bus: hold (ERROR on /diagnostics, no states, no writes), then recover.
        emu.drop_every = emu.corrupt_every = 0
        emu.dead = True
        b.wait(lambda: b.diag().get("state") == "held", "hold on a dead bus")
        assert b.diag()["level"] == DiagnosticStatus.ERROR
        assert "bus dead" in b.diag()["message"] and "no valid reply" in b.diag()["message"]
        writes = emu.sync_writes
        b.commands.publish(float64_multiarray(np.zeros(5)))
        n = len(b.client.states)
        b.client.spin_for(1.0)
        assert emu.sync_writes == writes, "a held bridge wrote a goal"
        assert len(b.client.states) <= n + 1
        emu.dead = False
        b.wait(lambda: b.diag().get("state") == "ok", "recovery")
        n = len(b.client.states)
        b.wait(lambda: len(b.client.states) > n + 10, "states after recovery")
        # the command sent while holding was dropped, not replayed
        assert [emu.register(m.id, "Goal_Position") for m in cal.motors[:5]] == goal_ticks
        assert "holding: no goal is written" in b.output.text()  # and in the log
    finally:
        b.close()


def test_controller_drives_the_emulated_arm_through_the_name_map(
    ros_context, emulated_arm, tmp_path
):
    """The mpc_controller with arm.driver_joint_names reads the bridge's `*_joint` states and
    its commands reach the servos (the known model moves the arm towards the goal); the
    collector reads the same states by the driver's names and records them under ours."""
    emu, path, cal = emulated_arm
    arm = yaml.safe_load(path.read_text())["arm"]
    b = Bridge(
        path,
        extra_nodes=["collector", "mpc_controller"],
        overrides={
            "mpc_controller": {
                "arm.driver_joint_names": DRIVER_NAMES[:5],
                "arm.position_lower": arm["position_lower"],
                "arm.position_upper": arm["position_upper"],
                "goal": [0.18, 0.08, 0.12],
                "max_velocity": 1.0,
                "viz_every": 0,
                "standalone": True,  # publishes the episode events the collector records
                "episode_ticks": 20,
            },
            "collector": {
                "driver_joints": DRIVER_NAMES[:5],
                "data_dir": str(tmp_path / "collector"),
            },
        },
    )
    try:
        b.wait(lambda: b.diag("mbrl/mpc_controller").get("safety") == "ok", "controller ok")
        start = {m.id: emu.register(m.id, "Goal_Position") for m in cal.motors}
        b.wait(
            lambda: any(emu.register(i, "Goal_Position") != g for i, g in start.items()),
            "a controller command at the servos",
        )
        b.wait(lambda: bool(b.client.states), "the bridge's joint states at the test client")
        q0 = joint_positions_by_name(b.client.states[-1], DRIVER_NAMES[:5])
        episodes = tmp_path / "collector" / "episodes"
        b.wait(lambda: len(list(episodes.glob("*.mcap"))) >= 2, "two recorded episodes", 60.0)
        # the arm moves toward the episodes' goals (waited for: on a loaded machine the
        # emulator's servo thread and the bridge may lag the recordings by seconds)
        b.wait(
            lambda: (
                np.abs(joint_positions_by_name(b.client.states[-1], DRIVER_NAMES[:5]) - q0).max()
                > 0.05
            ),
            "the emulated arm to move",
            30.0,
        )
        b.wait(lambda: b.diag("mbrl/mpc_controller").get("safety") == "ok", "controller ok")
        b.wait(lambda: b.diag().get("state") == "ok", "the bridge reporting ok")
    finally:
        b.close()
    episode = read_episode(sorted(episodes.glob("*.mcap"))[0])
    assert episode.joint_names == ArmConfig().joint_names
    assert len(episode.positions) > 10 and len(episode.commands) > 10
    # recorded angles are the bridge's: inside the calibrated limits
    assert np.all(episode.positions >= np.array(arm["position_lower"]) - 1e-3)
    assert np.all(episode.positions <= np.array(arm["position_upper"]) + 1e-3)

"""The live view of a real learning run, seen in a real headless Chromium; the run's episodes
read by rosbags; config/mbrl.rviz checked against the topics that run's graph published.

All three share the session's tiny learning run (conftest.live_run).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[2]


def test_browser_shows_the_arm_and_it_moves(live_run, tmp_path):
    from headless import changed, pixels, view3d

    if live_run.browser is None:
        pytest.skip("chromium is not installed: `make view-deps` installs it when run as root")
    assert live_run.first is not None, "3D view never drew the arm\n" + live_run.output()
    keep = Path(os.environ.get("MBRL_SCREENSHOT_DIR", tmp_path))
    (keep / "live_view_first.png").write_bytes(live_run.first)
    # The page drew the arm at its URDF pose before the run began; the test wants to see it
    # move twice: once to the sim's joint states, then again from there.
    reference, moves, seen = view3d(pixels(live_run.first)), 0, []
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and moves < 2:
        time.sleep(1.0)
        png = live_run.browser.screenshot()
        region = view3d(pixels(png))
        seen.append(changed(reference, region))
        if seen[-1] > 400:
            moves += 1
            reference = region
            (keep / f"live_view_move{moves}.png").write_bytes(png)
    assert moves == 2, f"the arm moved {moves} times in 150 s (changed pixels: {seen})\n" + (
        live_run.output()
    )


def test_episodes_of_the_run_open_in_rosbags(live_run):
    pytest.importorskip("rosbags")
    from bagcheck import read_bag

    assert live_run.wait() == 0, live_run.output()
    folders = [live_run.run_dir / "collector" / "episodes"]  # the graph's own recording
    if any((live_run.run_dir / "episodes").glob("*.mcap")):  # the report's copy, if written
        folders.append(live_run.run_dir / "episodes")
    for folder in folders:
        mcaps = sorted(p.name for p in folder.glob("*.mcap"))
        bag = read_bag(folder)
        assert mcaps and [name for name, _ in bag["files"]] == mcaps  # every episode is in it
        assert bag["types"]["/joint_states"] == "sensor_msgs/msg/JointState"
        assert bag["types"]["/mbrl/goal"] == "geometry_msgs/msg/PointStamped"
        assert bag["counts"]["/joint_states"] >= 100, bag
        assert bag["counts"]["/forward_position_controller/commands"] >= 98, bag


# rviz display class -> the message type it subscribes to.
DISPLAY_TYPES = {
    "rviz_default_plugins/Path": "nav_msgs/msg/Path",
    "rviz_default_plugins/MarkerArray": "visualization_msgs/msg/MarkerArray",
    "rviz_default_plugins/Marker": "visualization_msgs/msg/Marker",
    "rviz_default_plugins/PointStamped": "geometry_msgs/msg/PointStamped",
    "rviz_default_plugins/PoseStamped": "geometry_msgs/msg/PoseStamped",
    "rviz_default_plugins/RobotModel": "std_msgs/msg/String",
}
# Displays that read TF, which robot_state_publisher provides under `ros2 launch`.
TF_DISPLAYS = {"rviz_default_plugins/TF", "rviz_default_plugins/RobotModel"}
NO_TOPIC = {"rviz_default_plugins/Grid", "rviz_default_plugins/TF"}


def _subscriptions(config: dict) -> list[tuple[str, str, str, dict]]:
    """(display name, class, topic, qos settings) of every enabled display with a topic."""
    out = []
    for display in config["Visualization Manager"]["Displays"]:
        cls, name = display["Class"], display.get("Name", display["Class"])
        if cls in NO_TOPIC or not display.get("Enabled", True):
            continue
        topic = display.get("Description Topic") if cls.endswith("RobotModel") else None
        topic = topic or display.get("Topic")
        assert isinstance(topic, dict) and topic.get("Value"), f"display {name!r}: no topic"
        assert cls in DISPLAY_TYPES, f"display {name!r}: class {cls} unknown to this test"
        out.append((name, cls, topic["Value"], topic))
    return out


def _qos(settings: dict):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    reliability = settings.get("Reliability Policy", "Reliable").replace(" ", "_").upper()
    durability = settings.get("Durability Policy", "Volatile").replace(" ", "_").upper()
    return QoSProfile(
        depth=int(settings.get("Depth", 5)),
        reliability=ReliabilityPolicy[reliability],
        durability=DurabilityPolicy[durability],
    )


def test_rviz_config_listens_only_to_what_the_graph_publishes(live_run):
    from rclpy.qos import DurabilityPolicy, QoSCompatibility, qos_check_compatible

    config = yaml.safe_load((ROOT / "config" / "mbrl.rviz").read_text())
    problems = []
    for name, cls, topic, settings in _subscriptions(config):
        publishers = live_run.publishers.get(topic, [])
        if not publishers:
            problems.append(f"{name!r}: nobody publishes {topic}")
            continue
        wanted = DISPLAY_TYPES[cls]
        types = {t for t, _ in publishers}
        if types != {wanted}:
            problems.append(f"{name!r}: {topic} is {sorted(types)}, display reads {wanted}")
        sub = _qos(settings)
        for _, pub in publishers:
            compatible, reason = qos_check_compatible(pub, sub)
            if compatible == QoSCompatibility.ERROR:
                problems.append(f"{name!r}: QoS on {topic} incompatible: {reason}")
            # A latched topic (goal, robot description) read as volatile misses its last
            # value when rviz starts after it was published.
            if (pub.durability == DurabilityPolicy.TRANSIENT_LOCAL
                    and sub.durability != DurabilityPolicy.TRANSIENT_LOCAL):  # fmt: skip
                problems.append(f"{name!r}: {topic} is latched; display reads it as volatile")
    assert not problems, "\n".join(problems)
    frame = config["Visualization Manager"]["Global Options"]["Fixed Frame"]
    assert frame == "base_link"  # the frame the controller stamps its plan and goals in
    classes = {d["Class"] for d in config["Visualization Manager"]["Displays"]}
    if classes & TF_DISPLAYS:  # TF comes from robot_state_publisher in the launch file
        assert (
            "robot_state_publisher" in (ROOT / "launch" / "manipulator_sim.launch.py").read_text()
        )

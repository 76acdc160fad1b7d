"""The bundled message definitions match the ROS 2 interfaces, and our CDR is what rclpy reads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mbrl.data import msgdefs


def _installed_fields(name: str) -> str:
    pkg, typ = name.split("/")
    prefix = Path(os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)[0])
    path = prefix / "share" / pkg / "msg" / f"{typ}.msg"
    if not path.is_file():
        pytest.skip(f"ROS interface file {path} not installed")
    lines = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            typ_, field = line.split()[:2]
            if "/" not in typ_ and typ_.rstrip("[]") not in msgdefs.PRIMITIVES:
                typ_ = f"{pkg}/{typ_}"
            lines.append(f"{typ_} {field}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "name",
    [
        "builtin_interfaces/Time",
        "std_msgs/Header",
        "sensor_msgs/JointState",
        "std_msgs/Float64MultiArray",
        "std_msgs/MultiArrayLayout",
        "std_msgs/MultiArrayDimension",
        "geometry_msgs/Point",
        "geometry_msgs/PointStamped",
        "geometry_msgs/Quaternion",
        "geometry_msgs/Pose",
        "geometry_msgs/PoseStamped",
    ],
)
def test_definitions_match_installed_ros_interfaces(name):
    assert msgdefs.field_text(name) == _installed_fields(name)


def test_recorded_bytes_deserialize_in_rclpy(tmp_path):
    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from mbrl.data.episodes import EpisodeWriter

    path = tmp_path / "ep.mcap"
    with EpisodeWriter(path, ["j1", "j2"]) as w:
        w.write_joint_state(12.5, [0.25, -1.0], [1.0, 2.0], [0.0, 3.0])
        w.write_command(12.55, [0.5, 0.75])
    with open(path, "rb") as f:
        messages = {ch.topic: msg.data for _, ch, msg in make_reader(f).iter_messages()}
    js = deserialize_message(messages["/joint_states"], JointState)
    assert list(js.name) == ["j1", "j2"]
    np.testing.assert_array_equal(js.position, [0.25, -1.0])
    np.testing.assert_array_equal(js.effort, [0.0, 3.0])
    assert (js.header.stamp.sec, js.header.stamp.nanosec) == (12, 500_000_000)
    cmd = deserialize_message(messages["/forward_position_controller/commands"], Float64MultiArray)
    np.testing.assert_array_equal(cmd.data, [0.5, 0.75])

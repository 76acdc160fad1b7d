"""Episodes open as rosbag2 bags in a third-party reader (`rosbags`), without ROS.

The episode directory's metadata.yaml lists every finished episode; every message decodes
with rosbags' own Jazzy definitions and stamps do not go backwards within an episode.
The same check on the episodes of a real learning run through the ROS graph is in
test_live_view.py (it shares that run).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml

pytest.importorskip("rosbags", reason="rosbags comes with requirements-view.txt (make view-deps)")

from bagcheck import read_bag  # noqa: E402

from mbrl.data.episodes import EpisodeWriter, read_episode  # noqa: E402

NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")


def _episode(path, start: float, steps: int, rng) -> None:
    with EpisodeWriter(path, NAMES, {"episode_id": path.stem}) as w:
        w.write_goal(start, rng.uniform(-0.2, 0.2, 3))
        for t in range(steps):
            w.write_joint_state(start + 0.05 * t, rng.uniform(-1, 1, 5), rng.uniform(-1, 1, 5))
            w.write_command(start + 0.05 * t + 0.001, rng.uniform(-1, 1, 5))


def test_episode_directory_is_a_rosbag2_bag_that_rosbags_decodes(tmp_path, rng):
    _episode(tmp_path / "episode_000001.mcap", 100.0, 30, rng)
    _episode(tmp_path / "episode_000002.mcap", 0.0, 20, rng)  # a new episode may restart time

    bag = read_bag(tmp_path)

    assert bag["types"] == {
        "/joint_states": "sensor_msgs/msg/JointState",
        "/forward_position_controller/commands": "std_msgs/msg/Float64MultiArray",
        "/mbrl/goal": "geometry_msgs/msg/PointStamped",
    }
    assert bag["counts"] == {
        "/joint_states": 50,
        "/forward_position_controller/commands": 50,
        "/mbrl/goal": 2,
    }
    assert bag["files"] == [("episode_000001.mcap", 61), ("episode_000002.mcap", 41)]
    info = yaml.safe_load((tmp_path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == "mcap" and info["version"] == 9
    assert info["starting_time"]["nanoseconds_since_epoch"] == 0
    assert info["duration"]["nanoseconds"] == int(round((100.0 + 29 * 0.05 + 0.001) * 1e9))


def test_rosbags_values_equal_ours(tmp_path, rng):
    from bagcheck import JAZZY
    from rosbags.rosbag2 import Reader

    _episode(tmp_path / "episode_000001.mcap", 3.0, 10, rng)
    ours = read_episode(tmp_path / "episode_000001.mcap")
    theirs = []
    with Reader(tmp_path) as reader:
        conns = [c for c in reader.connections if c.topic == "/joint_states"]
        for _, _, raw in reader.messages(conns):
            theirs.append(JAZZY.deserialize_cdr(raw, "sensor_msgs/msg/JointState").position)
    np.testing.assert_array_equal(np.array(theirs), ours.positions)


KILLED = """
import sys, os, numpy as np
from mbrl.data.episodes import EpisodeWriter
w = EpisodeWriter(sys.argv[1], ["a", "b"], {}, flush_period=0.0)
for t in range(20):
    w.write_joint_state(0.01 * t, np.zeros(2))
os._exit(0)  # like kill -9: no footer, no summary
"""


def test_an_episode_cut_short_is_left_out_of_the_bag(tmp_path, rng):
    _episode(tmp_path / "episode_000001.mcap", 0.0, 5, rng)
    cut = tmp_path / "episode_000002.mcap"
    subprocess.run([sys.executable, "-c", KILLED, str(cut)], check=True)
    _episode(tmp_path / "episode_000003.mcap", 1.0, 5, rng)  # the next close rewrites the list

    bag = read_bag(tmp_path)

    assert [name for name, _ in bag["files"]] == ["episode_000001.mcap", "episode_000003.mcap"]
    assert not read_episode(cut).complete  # still recoverable with our own reader


def test_a_directory_that_refuses_metadata_keeps_the_episode(tmp_path, rng):
    (tmp_path / "metadata.yaml").mkdir()  # cannot be replaced by a file
    with pytest.warns(UserWarning, match="metadata.yaml not written"):
        _episode(tmp_path / "episode_000001.mcap", 0.0, 5, rng)
    assert read_episode(tmp_path / "episode_000001.mcap").complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode_000001.mcap", "metadata.yaml"]

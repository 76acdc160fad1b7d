"""Open a directory of episodes with the third-party `rosbags` reader, as a user's tool would.

Used by the tests of the episode store's rosbag2 compatibility: every message of every
channel must deserialize with the standard ROS 2 Jazzy definitions that rosbags ships (not
with the definitions inside our files), and stamps must not go backwards.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import yaml
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

JAZZY = get_typestore(Stores.ROS2_JAZZY)


def _header_stamp(msg) -> int | None:
    header = getattr(msg, "header", None)
    if header is None:
        return None
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def read_bag(directory: Path) -> dict:
    """Decode every message of the bag in `directory`; returns per-topic counts and types.

    Raises AssertionError naming topic and file when a message does not decode, a topic's
    type is not a standard Jazzy type, or log times / header stamps go backwards within a file
    (one episode); `files` lists (name, message_count) per file.
    """
    counts: dict[str, int] = defaultdict(int)
    types: dict[str, str] = {}
    with Reader(directory) as reader:
        for conn in reader.connections:
            assert conn.msgtype in JAZZY.fielddefs, f"{conn.topic}: {conn.msgtype} is not standard"
            types[conn.topic] = conn.msgtype
        # rosbags reads the files of a bag one after another; the per-file counts of
        # metadata.yaml tell where one episode ends, so each is checked on its own.
        listed = yaml.safe_load((directory / "metadata.yaml").read_text())
        files = listed["rosbag2_bagfile_information"]["files"]
        ends = [f["message_count"] for f in files]
        file_index, in_file = 0, 0
        last_log: dict[str, int] = {}
        last_stamp: dict[str, int] = {}
        for conn, log_time, raw in reader.messages():
            while file_index < len(ends) and in_file == ends[file_index]:
                file_index, in_file = file_index + 1, 0
                last_log, last_stamp = {}, {}
            where = f"{conn.topic} in {files[file_index]['path']}"
            msg = JAZZY.deserialize_cdr(raw, conn.msgtype)
            assert log_time >= last_log.get(conn.topic, 0), f"{where}: log time went backwards"
            last_log[conn.topic] = log_time
            stamp = _header_stamp(msg)
            if stamp is not None:
                assert stamp >= last_stamp.get(conn.topic, 0), f"{where}: stamp went backwards"
                last_stamp[conn.topic] = stamp
            counts[conn.topic] += 1
            in_file += 1
        assert reader.message_count == sum(counts.values())
    listed = [(f["path"], f["message_count"]) for f in files]
    return {"counts": dict(counts), "types": types, "files": listed}

"""Episodes on disk: one rosbag2-compatible MCAP file per episode, written and read without ROS.

Each file holds `/joint_states` (sensor_msgs/JointState), the command topic
(std_msgs/Float64MultiArray, e.g. `/forward_position_controller/commands`) and the goal
(`/mbrl/goal`, geometry_msgs/PointStamped), CDR-encoded in the MCAP `ros2` profile, so
`mcap`, `rosbags` and Foxglove read them as they are. Each finished file also refreshes the
`metadata.yaml` of its directory (`write_bag_metadata`), so the directory of episodes is one
rosbag2 bag (storage `mcap`, one file per episode) for `ros2 bag info` / `ros2 bag play`.

Crash safety: messages are gathered in MCAP chunks; a chunk is written to the OS when it
exceeds `chunk_bytes` or is older than `flush_period` seconds, whichever comes first. A
`kill -9` of the writer therefore loses at most the last unwritten chunk: at most
`flush_period` seconds (default 1 s) of messages, and `read_episode` recovers everything
before it from the unfinished file (`Episode.complete` is False for such a file).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import struct
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from mcap.exceptions import McapError
from mcap.reader import make_reader
from mcap.records import Channel, Footer, Message, Metadata, Schema
from mcap.stream_reader import StreamReader
from mcap_ros2.decoder import DecoderFactory
from mcap_ros2.writer import Writer as Ros2Writer

from mbrl.data import msgdefs

JOINT_STATES_TOPIC = "/joint_states"
GOAL_TOPIC = "/mbrl/goal"
OBJECT_TOPIC = "/cube_pose"  # geometry_msgs/PoseStamped of the pushed object (push task)
DEFAULT_COMMAND_TOPIC = "/forward_position_controller/commands"
METADATA_NAME = "mbrl_episode"
REPAIRED_NAME = "mbrl_repaired"  # metadata record of a file rewritten by repair_episode
BAG_METADATA = "metadata.yaml"
# rosbag2 metadata version 9 is what Jazzy's rosbag2 writes (QoS profiles as YAML mappings).
BAG_VERSION = 9


class EpisodeFileError(ValueError):
    """An episode file is missing, not MCAP, or not an mbrl episode; names the file."""


@dataclasses.dataclass
class Episode:
    """The arrays of one recorded episode, in the recorder's joint order.

    Attributes:
        path: the file it came from (None if built in memory).
        joint_names: (nj,) names, the order of every joint array below.
        state_stamps: (Ts,) s, header stamps of the joint states.
        positions / velocities: (Ts, nj) rad, rad/s.
        command_stamps: (Tc,) s. commands: (Tc, nj) rad (position commands).
        goal_stamps: (Tg,) s. goals: (Tg, 3) m.
        object_stamps: (To,) s. object_poses: (To, 7) position (m) and quaternion (x, y,
            z, w) of the pushed object (push task; empty otherwise).
        metadata: the episode's metadata (id, task, rates ...), strings.
        complete: False when the file was cut short (writer killed); data before the cut is kept.
    """

    joint_names: tuple[str, ...]
    state_stamps: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    command_stamps: np.ndarray
    commands: np.ndarray
    goal_stamps: np.ndarray
    goals: np.ndarray
    metadata: dict[str, str]
    complete: bool = True
    path: Path | None = None
    object_stamps: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    object_poses: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 7)))


def _stamp(t: float) -> dict:
    sec = int(np.floor(t))
    return {"sec": sec, "nanosec": int(round((t - sec) * 1e9)) % 1_000_000_000}


class EpisodeWriter:
    """Writes one episode file. Use as a context manager; `close()` finishes the file.

    Args:
        path: the .mcap file to create (parent directories are made; an existing file is an error).
        joint_names: (nj,) the joints, in the order of every array passed to `write_*`.
        metadata: strings stored in the file (episode id, task, control rate ...).
        command_topic: the topic name under which commands are recorded.
        chunk_bytes: write a chunk once this many uncompressed bytes are buffered.
        flush_period: s, write the open chunk at least this often (the kill -9 loss bound).
        clock: seconds, monotonic; injectable for tests.
    """

    def __init__(
        self,
        path: str | Path,
        joint_names: Sequence[str],
        metadata: dict[str, str] | None = None,
        *,
        command_topic: str = DEFAULT_COMMAND_TOPIC,
        chunk_bytes: int = 64 * 1024,
        flush_period: float = 1.0,
        clock=time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.joint_names = tuple(joint_names)
        self.command_topic = command_topic
        self._flush_period = flush_period
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = _UnbufferedFile(self.path)
        self._writer = Ros2Writer(self._file, chunk_size=chunk_bytes)
        self._schemas = {
            name: self._writer.register_msgdef(name, msgdefs.full_definition(name))
            for name in (
                msgdefs.JOINT_STATE,
                msgdefs.FLOAT64_MULTI_ARRAY,
                msgdefs.POINT_STAMPED,
                msgdefs.POSE_STAMPED,
            )
        }
        meta = {"joint_names": json.dumps(list(self.joint_names))}
        meta.update({k: str(v) for k, v in (metadata or {}).items()})
        self._writer.add_metadata(METADATA_NAME, meta)
        self._last_flush = clock()
        self.num_messages = 0
        self.flushed_messages = 0  # messages certainly in the OS (survive kill -9)
        self._closed = False
        self.counts: collections.Counter[str] = collections.Counter()  # messages per topic

    def _check(self, what: str, values: np.ndarray | None) -> np.ndarray:
        arr = np.asarray([] if values is None else values, dtype=np.float64).reshape(-1)
        if arr.size not in (0, len(self.joint_names)):
            raise ValueError(
                f"{what} has {arr.size} values; expected {len(self.joint_names)} "
                f"(joints {list(self.joint_names)})"
            )
        return arr

    def _write(self, topic: str, schema: str, msg: dict, stamp: float) -> None:
        if self._closed:
            raise ValueError(f"episode {self.path} is already closed")
        t_ns = int(round(stamp * 1e9))
        self._writer.write_message(topic, self._schemas[schema], msg, log_time=t_ns)
        self.num_messages += 1
        self.counts[topic] += 1
        now = self._clock()
        if now - self._last_flush >= self._flush_period:
            self.flush()

    def write_joint_state(
        self, stamp: float, position, velocity=None, effort=None, frame_id: str = ""
    ) -> None:
        """Record a joint state; arrays (nj,) in `joint_names` order; stamp in s."""
        msg = {
            "header": {"stamp": _stamp(stamp), "frame_id": frame_id},
            "name": list(self.joint_names),
            "position": self._check("position", position).tolist(),
            "velocity": self._check("velocity", velocity).tolist(),
            "effort": self._check("effort", effort).tolist(),
        }
        self._write(JOINT_STATES_TOPIC, msgdefs.JOINT_STATE, msg, stamp)

    def write_command(self, stamp: float, command) -> None:
        """Record a position command (nj,) rad, in `joint_names` order."""
        values = self._check("command", command)
        msg = {"layout": {"dim": [], "data_offset": 0}, "data": values.tolist()}
        self._write(self.command_topic, msgdefs.FLOAT64_MULTI_ARRAY, msg, stamp)

    def write_goal(self, stamp: float, goal, frame_id: str = "world") -> None:
        """Record the task goal (3,) m."""
        g = np.asarray(goal, dtype=np.float64).reshape(-1)
        if g.size != 3:
            raise ValueError(f"goal has {g.size} values; expected 3 (x, y, z in m)")
        msg = {
            "header": {"stamp": _stamp(stamp), "frame_id": frame_id},
            "point": {"x": g[0], "y": g[1], "z": g[2]},
        }
        self._write(GOAL_TOPIC, msgdefs.POINT_STAMPED, msg, stamp)

    def write_object_pose(self, stamp: float, position, quaternion, frame_id: str = "world"):
        """Record the pushed object's pose: position (3,) m, quaternion (4,) x, y, z, w."""
        p = np.asarray(position, dtype=np.float64).reshape(-1)
        q = np.asarray(quaternion, dtype=np.float64).reshape(-1)
        if p.size != 3 or q.size != 4:
            raise ValueError(f"object pose has {p.size} + {q.size} values; expected 3 + 4")
        msg = {
            "header": {"stamp": _stamp(stamp), "frame_id": frame_id},
            "pose": {
                "position": {"x": p[0], "y": p[1], "z": p[2]},
                "orientation": {"x": q[0], "y": q[1], "z": q[2], "w": q[3]},
            },
        }
        self._write(OBJECT_TOPIC, msgdefs.POSE_STAMPED, msg, stamp)

    def flush(self) -> None:
        """Hand the open chunk to the OS now (survives a kill -9 of this process)."""
        # mcap_ros2's Writer has no flush of its own; its inner mcap Writer does.
        self._writer._writer.flush()
        self._last_flush = self._clock()
        self.flushed_messages = self.num_messages

    def close(self) -> None:
        """Finish the file (summary and footer) and fsync it."""
        if self._closed:
            return
        self._writer.finish()
        self._file.close()
        self._closed = True
        try:
            write_bag_metadata(self.path.parent)
        except OSError as exc:  # the episode itself is complete and fsynced: warn, keep going
            warnings.warn(f"{self.path.parent}/{BAG_METADATA} not written: {exc}", stacklevel=2)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _UnbufferedFile:
    """A write-only file with no Python-side buffer: every write the MCAP writer makes (one
    per finished chunk or record) is in the OS at once, so it survives a kill -9. (mcap wraps
    a raw FileIO in a BufferedWriter of its own, which would defeat that.)"""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "xb", buffering=0)  # noqa: SIM115 - closed in close()

    def write(self, data) -> int:
        view = memoryview(data)
        while view:
            view = view[self._f.write(view) :]
        return len(data)

    def tell(self) -> int:
        return self._f.tell()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        os.fsync(self._f.fileno())
        self._f.close()


def read_episode(path: str | Path) -> Episode:
    """Read an episode file into arrays; recovers the data of a file cut short by a crash.

    Raises EpisodeFileError naming the file when it is missing, not MCAP, or holds no
    mbrl episode metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise EpisodeFileError(f"episode file {path} does not exist")
    states: list[tuple[float, list, list, list]] = []
    commands: list[tuple[float, list]] = []
    goals: list[tuple[float, list]] = []
    objects: list[tuple[float, list]] = []
    metadata: dict[str, str] | None = None
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    decoders = DecoderFactory()
    complete = repaired = False
    with open(path, "rb") as f:
        head = f.read(8)
        if head[:5] != b"\x89MCAP":
            raise EpisodeFileError(f"{path} is not an MCAP file (bad magic bytes {head!r})")
        f.seek(0)
        # Walk the records in file order rather than trusting the summary at the end, so an
        # unfinished file (writer killed: no summary, no footer) still yields every chunk
        # written before the cut.
        try:
            for record in StreamReader(f).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                elif isinstance(record, Metadata) and record.name == METADATA_NAME:
                    metadata = dict(record.metadata)
                elif isinstance(record, Metadata) and record.name == REPAIRED_NAME:
                    repaired = True
                elif isinstance(record, Message):
                    channel = channels[record.channel_id]
                    decode = decoders.decoder_for(
                        channel.message_encoding, schemas[channel.schema_id]
                    )
                    msg = decode(record.data)
                    t = record.log_time * 1e-9
                    if channel.topic == JOINT_STATES_TOPIC:
                        states.append((t, list(msg.name), list(msg.position), list(msg.velocity)))
                    elif channel.topic == GOAL_TOPIC:
                        goals.append((t, [msg.point.x, msg.point.y, msg.point.z]))
                    elif channel.topic == OBJECT_TOPIC:
                        p, o = msg.pose.position, msg.pose.orientation
                        objects.append((t, [p.x, p.y, p.z, o.x, o.y, o.z, o.w]))
                    else:
                        commands.append((t, list(msg.data)))
                elif isinstance(record, Footer):
                    complete = True
        except Exception as exc:  # noqa: BLE001 - any codec/parser error names the file
            # (mcap, zstd/lz4 decompression and CDR decoding raise their own exception types;
            # a file cut by kill -9 ends in any of them). Keep what came before the damage.
            if metadata is None:
                raise EpisodeFileError(
                    f"{path} is not a readable MCAP episode: {type(exc).__name__}: {exc}"
                ) from exc
            complete = False
    if metadata is None or "joint_names" not in metadata:
        raise EpisodeFileError(f"{path} holds no '{METADATA_NAME}' metadata: not an mbrl episode")
    complete = complete and not repaired  # a repaired file was cut short: incomplete
    try:
        names = tuple(str(n) for n in json.loads(metadata["joint_names"]))
        episode = _to_episode(path, names, states, commands, goals, metadata, complete)
    except (ValueError, TypeError, IndexError) as exc:
        raise EpisodeFileError(f"{path}: malformed episode content: {exc}") from exc
    episode.object_stamps = np.array([o[0] for o in objects])
    episode.object_poses = np.array([o[1] for o in objects]).reshape(len(objects), 7)
    return episode


def repair_episode(path: str | Path) -> bool:
    """Rewrite an episode file cut short (kill -9: no summary, no footer) as a complete MCAP
    holding every record before the cut, so third-party readers (mcap, rosbags) open it.

    Returns True if the file was repaired, False if it was finished already. The new file
    replaces the old one atomically; `read_episode` still reports it incomplete (a metadata
    record says it was repaired). Raises EpisodeFileError naming the file when not even
    the episode's metadata can be read.
    """
    from mcap.writer import Writer as McapWriter

    path = Path(path)
    read_episode(path)  # raises EpisodeFileError if not even the metadata is readable
    records, finished = [], False
    with open(path, "rb") as f:
        try:
            for record in StreamReader(f).records:
                if isinstance(record, (Schema, Channel, Metadata, Message)):
                    records.append(record)
                finished = finished or isinstance(record, Footer)
        except Exception:  # noqa: BLE001 - the cut: keep what came before it
            finished = False
    if finished:
        return False
    tmp = path.with_name(path.name + ".repair")
    with open(tmp, "wb") as out:
        writer = McapWriter(out)
        writer.start(profile="ros2", library="mbrl repair_episode")
        schema_ids: dict[int, int] = {}
        channel_ids: dict[int, int] = {}
        for record in records:
            if isinstance(record, Schema):
                schema_ids[record.id] = writer.register_schema(
                    record.name, record.encoding, record.data
                )
            elif isinstance(record, Channel) and record.schema_id in schema_ids:
                channel_ids[record.id] = writer.register_channel(
                    record.topic, record.message_encoding, schema_ids[record.schema_id],
                    dict(record.metadata),
                )  # fmt: skip
            elif isinstance(record, Metadata):
                writer.add_metadata(record.name, dict(record.metadata))
            elif isinstance(record, Message) and record.channel_id in channel_ids:
                writer.add_message(
                    channel_ids[record.channel_id], record.log_time, record.data,
                    record.publish_time, record.sequence,
                )  # fmt: skip
        # Readers of this module still see the recording as incomplete (no "end" event).
        writer.add_metadata(REPAIRED_NAME, {"reason": "cut short; rewritten by repair_episode"})
        writer.finish()
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return True


CORRUPT_SUFFIX = ".corrupt"


def move_aside(path: str | Path, suffix: str = CORRUPT_SUFFIX) -> Path:
    """Rename a bad file to `<name><suffix>` (or `<suffix>.1`, ...) beside it, so it is kept
    for inspection but never read again as an episode; returns the new path."""
    path = Path(path)
    target = path.with_name(path.name + suffix)
    k = 0
    while target.exists():
        k += 1
        target = path.with_name(f"{path.name}{suffix}.{k}")
    os.replace(path, target)
    return target


def check_episode_dir(directory: str | Path, pattern: str = "episode_*.mcap") -> list[str]:
    """Make a node's own episode directory readable before the node uses it: a file that is
    not a readable episode is moved aside (`move_aside`), a file cut short by kill -9 is
    repaired (`repair_episode`), and a leftover temporary file of an interrupted write is
    removed. Returns one line per action, naming the file (for the node's log); never raises
    for a bad file, so one corrupt file is never a reason not to start."""
    lines = []
    directory = Path(directory)
    for tmp in sorted(directory.glob(pattern.replace(".mcap", ".mcap.tmp"))):
        tmp.unlink(missing_ok=True)
        lines.append(f"removed {tmp}: an interrupted write")
    for path in sorted(directory.glob(pattern)):
        try:
            if repair_episode(path):
                lines.append(f"repaired {path}: cut short (kill -9?); rewritten complete")
        except (EpisodeFileError, OSError) as exc:
            try:
                moved = move_aside(path)
            except OSError as move_exc:
                lines.append(f"corrupt episode file {path} ({exc}); cannot move it: {move_exc}")
                continue
            lines.append(f"corrupt episode file {path} moved aside to {moved.name}: {exc}")
    if any(not line.startswith("removed") for line in lines):
        write_bag_metadata(directory)  # the bag's file list and counts changed
    return lines


def _to_episode(path, names, states, commands, goals, metadata, complete) -> Episode:
    nj = len(names)
    index = {n: i for i, n in enumerate(names)}
    pos = np.full((len(states), nj), np.nan)
    vel = np.full((len(states), nj), np.nan)
    for row, (_, msg_names, p, v) in enumerate(states):
        for j, name in enumerate(msg_names):  # by NAME, never by position in the message
            if name in index:
                pos[row, index[name]] = p[j] if j < len(p) else np.nan
                vel[row, index[name]] = v[j] if j < len(v) else np.nan
    return Episode(
        joint_names=names,
        state_stamps=np.array([s[0] for s in states]),
        positions=pos,
        velocities=vel,
        command_stamps=np.array([c[0] for c in commands]),
        commands=np.array([c[1] for c in commands]).reshape(len(commands), nj),
        goal_stamps=np.array([g[0] for g in goals]),
        goals=np.array([g[1] for g in goals]).reshape(len(goals), 3),
        metadata=metadata,
        complete=complete,
        path=path,
    )


def _bag_time(ns: int) -> dict:
    return {"nanoseconds_since_epoch": int(ns)}


def write_bag_metadata(directory: str | Path) -> Path:
    """Write `directory/metadata.yaml` describing its finished episodes as one rosbag2 bag.

    Every `*.mcap` file with a summary (a finished episode) is one file of the bag, in name
    order; files cut short by a crash have no summary and are left out (they stay readable
    with `read_episode`). Written atomically (temporary file + rename), so a reader never
    sees half a file. Costs about 0.7 ms per episode in the directory (0.14 s for 200 here),
    since each file's summary is read again. Returns the path of metadata.yaml.
    """
    directory = Path(directory)
    files, topics = [], {}
    for path in sorted(directory.glob("*.mcap")):
        try:
            with open(path, "rb") as f:
                summary = make_reader(f).get_summary()
        except (McapError, OSError, EOFError, ValueError, struct.error):
            summary = None
        if summary is None or summary.statistics is None:
            continue
        stats = summary.statistics
        count = stats.message_count
        start = stats.message_start_time if count else 0
        end = stats.message_end_time if count else 0
        files.append((path.name, start, end, count))
        for channel_id, channel in summary.channels.items():
            schema = summary.schemas[channel.schema_id]
            entry = topics.setdefault(channel.topic, {"type": schema.name, "count": 0})
            entry["count"] += stats.channel_message_counts.get(channel_id, 0)
    counted = [f for f in files if f[3]]
    start = min((f[1] for f in counted), default=0)
    end = max((f[2] for f in counted), default=0)
    info = {
        "version": BAG_VERSION,
        "storage_identifier": "mcap",
        "relative_file_paths": [f[0] for f in files],
        "duration": {"nanoseconds": int(end - start)},
        "starting_time": _bag_time(start),
        "message_count": int(sum(f[3] for f in files)),
        "topics_with_message_count": [
            {
                "topic_metadata": {
                    "name": topic,
                    "type": entry["type"],
                    "serialization_format": "cdr",
                    # The recorder does not know the publishers' QoS; empty means play
                    # falls back to its defaults (reliable, volatile).
                    "offered_qos_profiles": [],
                    "type_description_hash": "",
                },
                "message_count": int(entry["count"]),
            }
            for topic, entry in sorted(topics.items())
        ],
        "compression_format": "",
        "compression_mode": "",
        "files": [
            {
                "path": name,
                "starting_time": _bag_time(s),
                "duration": {"nanoseconds": int(e - s)},
                "message_count": int(n),
            }
            for name, s, e, n in files
        ],
        "custom_data": {"writer": "mbrl.data.episodes"},
        "ros_distro": "jazzy",
    }
    target = directory / BAG_METADATA
    tmp = directory / f".{BAG_METADATA}.{os.getpid()}.tmp"
    try:
        tmp.write_text(yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target

"""Episode boundaries by message time: which recorded message belongs to which episode.

The collector's callbacks can run long after the messages arrived (a backlog in lockstep
mode, a loaded machine) and an executor takes one message per topic per round, so the
start/end events overtake the joint states and commands they delimit. Every message
therefore carries its DDS source (publication) time, and an episode holds exactly the
messages stamped between its start and end events. An ended episode is finished once a joint
state and a command stamped after its end have been processed (each topic is FIFO, so
nothing of the episode can still be queued) or `end_grace` seconds after its end event
(traffic stopped). ROS-free: the collector node feeds it stamps and arrays.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mbrl.data.episodes import EpisodeWriter

STATE, COMMAND = "state", "command"


@dataclasses.dataclass
class Recording:
    """One episode file being written.

    Attributes:
        episode_id: from the start event.
        writer: its EpisodeWriter.
        start / end: s, stamps of its start and end events (end None while open).
        complete: False when a new start came before this episode's end.
        seen_after: topics (STATE, COMMAND) that delivered a message stamped after `end`.
        ended_at: s on the monotonic clock when the end was processed.
        expected_commands: commands the end event says were sent in the episode (its sender
            counted them on the same topic); None if it did not say.
        start_goal: the goal ([x, y, z], frame) its start event carried, or None.
    """

    episode_id: int
    writer: EpisodeWriter
    start: float
    end: float | None = None
    complete: bool = True
    seen_after: set[str] = dataclasses.field(default_factory=set)
    ended_at: float | None = None
    has_goal: bool = False
    expected_commands: int | None = None
    start_goal: tuple[list[float], str] | None = None  # the goal its start event carried

    @property
    def commands(self) -> int:
        """Commands recorded so far."""
        return self.writer.counts[self.writer.command_topic]

    @property
    def short(self) -> bool:
        """Fewer commands recorded than the end event says were sent."""
        return self.expected_commands is not None and self.commands < self.expected_commands

    def holds(self, stamp: float) -> bool:
        return self.start <= stamp and (self.end is None or stamp <= self.end)


class EpisodeRouter:
    """Open episode files, routing each stamped message to the episode it was sent in.

    Args:
        directory: where episode_<id:06d>.mcap files go (an existing name gets a suffix).
        joints: (nj,) recorded joints, the order of every array.
        end_grace: s after an end event to finish the episode even without later traffic.
        clock: monotonic seconds (injectable for tests).
        writer_options: EpisodeWriter keyword arguments (command_topic, chunk_bytes, flush_period).
    """

    def __init__(
        self,
        directory: Path,
        joints: Sequence[str],
        end_grace: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
        end_timeout: float = 5.0,
        **writer_options,
    ) -> None:
        self.directory, self.joints, self.end_grace = Path(directory), tuple(joints), end_grace
        self.end_timeout = max(float(end_timeout), end_grace)
        self._clock = clock
        self._options = writer_options
        self.recordings: list[Recording] = []
        self._goal: tuple[list[float], str] | None = None
        self._object: tuple[list[float], list[float], str] | None = None

    # -- events ---------------------------------------------------------------------------
    def start(
        self,
        episode_id: int,
        stamp: float,
        metadata: dict[str, str],
        goal: tuple[Sequence[float], str] | None = None,
    ) -> Recording:
        """Open episode `episode_id` at time `stamp` (s); closes an open one as
        incomplete at the same instant. `goal` ((3,) m, frame) is the episode's own goal,
        carried by its start event: /goal is another topic, so its message for this episode
        may be processed after the start, behind the previous episode's latched goal.
        Raises OSError if the file cannot be created."""
        if goal is not None:
            self._goal = (list(goal[0]), goal[1])
        for rec in self.recordings:
            if rec.end is None:
                rec.end, rec.complete, rec.ended_at = stamp, False, self._clock()
        path = self.directory / f"episode_{episode_id:06d}.mcap"
        n = 1
        while path.exists():  # the same id recorded again (e.g. a restarted experiment)
            path = self.directory / f"episode_{episode_id:06d}_{n}.mcap"
            n += 1
        writer = EpisodeWriter(path, self.joints, metadata, **self._options)
        rec = Recording(episode_id, writer, stamp)
        rec.start_goal = None if goal is None else (list(goal[0]), goal[1])
        self.recordings.append(rec)
        if self._goal is not None:  # the latched goal came before the episode did
            writer.write_goal(stamp, self._goal[0], frame_id=self._goal[1])
            rec.has_goal = True
        if self._object is not None:
            position, quaternion, frame_id = self._object
            writer.write_object_pose(stamp, position, quaternion, frame_id=frame_id)
        return rec

    def end(self, episode_id: int, stamp: float, expected_commands: int | None = None) -> bool:
        """Mark the end of open episode `episode_id`; False if it is not open.
        `expected_commands`: how many commands its sender saw go out in it (the finished
        episode waits up to end_timeout for them; fewer is a stream with a gap)."""
        for rec in self.recordings:
            if rec.episode_id == episode_id and rec.end is None:
                rec.end, rec.ended_at = stamp, self._clock()
                rec.expected_commands = expected_commands
                return True
        return False

    def is_open(self, episode_id: int, goal: tuple[Sequence[float], str] | None) -> bool:
        """Episode `episode_id` is open, and started with the same `goal` (a resent start)."""
        return any(
            r.episode_id == episode_id and r.end is None and r.start_goal == goal
            for r in self.recordings
        )

    def ended(self, episode_id: int) -> bool:
        """Episode `episode_id` has ended and is waiting to finish (a resent end is no news)."""
        return any(r.episode_id == episode_id and r.end is not None for r in self.recordings)

    # -- messages -------------------------------------------------------------------------
    def state(self, stamp: float, position: np.ndarray, velocity: np.ndarray | None) -> None:
        """A joint state (nj,) rad, (nj,) rad/s or None, stamped `stamp` s."""
        rec = self._route(stamp, STATE)
        if rec is not None:
            rec.writer.write_joint_state(stamp, position, velocity)

    def command(self, stamp: float, command: np.ndarray) -> None:
        """A position command (nj,) rad stamped `stamp` s."""
        rec = self._route(stamp, COMMAND)
        if rec is not None:
            rec.writer.write_command(stamp, command)

    def object_pose(self, stamp: float, position: Sequence[float], quaternion: Sequence[float],
                    frame_id: str) -> None:  # fmt: skip
        """The pushed object's pose, (3,) m and (4,) x, y, z, w, stamped `stamp` s. The
        latest one is also written at the start of every later episode (the cube lies still
        between episodes and its publisher may be slow)."""
        self._object = (list(position), list(quaternion), frame_id)
        rec = self._route(stamp, None)
        if rec is not None:
            rec.writer.write_object_pose(stamp, position, quaternion, frame_id=frame_id)

    def goal(self, stamp: float, point: Sequence[float], frame_id: str) -> None:
        """The task goal (3,) m; also written at the start of every later episode."""
        self._goal = (list(point), frame_id)
        for rec in self.recordings:
            if rec.holds(stamp):
                rec.writer.write_goal(stamp, point, frame_id=frame_id)
            elif stamp < rec.start and not rec.has_goal:
                # sent before the episode started but processed after: it was the
                # latched goal at the start
                rec.writer.write_goal(rec.start, point, frame_id=frame_id)
            else:
                continue
            rec.has_goal = True

    def _route(self, stamp: float, topic: str | None) -> Recording | None:
        target = None
        for rec in self.recordings:
            if rec.holds(stamp):
                target = rec
            elif topic is not None and rec.end is not None and stamp > rec.end:
                rec.seen_after.add(topic)
        return target

    # -- finishing ------------------------------------------------------------------------
    def finished(self) -> list[Recording]:
        """Close and return the ended episodes that can receive nothing more: a state and a
        command stamped after the end arrived, or end_grace s passed since the end with
        every command its end event counted recorded, or end_timeout s passed (the
        caller checks `short`: a command stream with a gap)."""
        now = self._clock()

        def done_with(rec: Recording) -> bool:
            waited = now - rec.ended_at
            if rec.seen_after >= {STATE, COMMAND} and not rec.short:
                return True
            return (waited >= self.end_grace and not rec.short) or waited >= self.end_timeout

        done = [rec for rec in self.recordings if rec.end is not None and done_with(rec)]
        for rec in done:
            self.recordings.remove(rec)
            rec.writer.close()
        return done

    def flush(self) -> None:
        """Hand every open chunk to the OS (the kill -9 bound)."""
        for rec in self.recordings:
            if rec.writer.flushed_messages < rec.writer.num_messages:
                rec.writer.flush()

    def close_all(self) -> list[Path]:
        """Finish every file (clean shutdown); returns their paths."""
        paths = []
        for rec in self.recordings:
            rec.writer.close()
            paths.append(rec.writer.path)
        self.recordings.clear()
        return paths

"""Node `collector`: records joint states, commands and goals into one MCAP episode per episode.

Episodes open and close on /mbrl/episode_control events; each finished file is published on
/mbrl/episodes (transient-local) for the model fitter on any machine. Files are flushed in
small chunks, so a `kill -9` loses at most the last `flush_period` seconds (see
mbrl.data.episodes); on restart the collector re-publishes its files, the cut one marked
incomplete. Interface reference: docs/ros_interface.md.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped, PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String, UInt8MultiArray
from trajectory_msgs.msg import JointTrajectory

from mbrl.data.episodes import EpisodeFileError, check_episode_dir, move_aside, read_episode
from mbrl.ros import status as mbrl_status
from mbrl.ros import topics
from mbrl.ros.boundary import truncate
from mbrl.ros.msgs import (
    command_to_array,
    episode_event_goal,
    joint_positions_by_name,
    joint_velocities_by_name,
    trajectory_to_arrays,
)
from mbrl.ros.node_configs import CollectorConfig
from mbrl.ros.node_main import run_node
from mbrl.ros.params import declare_config_parameters, read_config_parameters
from mbrl.ros.recording import EpisodeRouter
from mbrl.ros.status import CollectorStatus
from mbrl.ros.transport import (
    DIAGNOSTICS_TOPIC,
    EPISODE_CONTROL_QOS,
    EPISODE_CONTROL_TOPIC,
    EPISODES_QOS,
    EPISODES_TOPIC,
    diagnostics_msg,
    encode_episode_msg,
    header_int,
)


def _stamp(info: dict) -> float:
    """Seconds (system clock) at which the sender published a message (DDS source time).

    Not the time the callback runs (an executor may take a command before the joint state
    that came first), and not the reception time (a starved receiver stamps samples from
    different senders in whatever order its receive threads run). Source times follow
    causality: the sim publishes state k, the controller then publishes command k, the sim
    then publishes state k+1. Across machines this needs synchronised clocks (as tf does).
    Falls back to the reception time, then the local clock.
    """
    for key in ("source_timestamp", "received_timestamp"):
        ns = info.get(key, 0) if isinstance(info, dict) else 0
        if ns > 0:
            return ns * 1e-9
    return time.time()


class Collector(Node):
    """Node `collector`: episode files opened/closed by episode_control, messages routed to
    them by publication time (mbrl.ros.recording.EpisodeRouter)."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("collector", **node_kwargs)
        declare_config_parameters(self, CollectorConfig)
        self.config: CollectorConfig = read_config_parameters(self, CollectorConfig)
        cfg = self.config
        self.episodes_dir = Path(cfg.data_dir).resolve() / "episodes"
        self.episodes_dir.mkdir(parents=True, exist_ok=True)
        self._command_topic = topics.command_topic(cfg.controller_name)
        self._trajectory_topic = topics.trajectory_topic(cfg.trajectory_controller_name)
        self.router = EpisodeRouter(
            self.episodes_dir, cfg.joints, cfg.end_grace, end_timeout=cfg.end_timeout,
            command_topic=self._command_topic,
            chunk_bytes=cfg.chunk_bytes, flush_period=cfg.flush_period,
        )  # fmt: skip
        self._published = 0
        self._rejected_episodes = 0  # finished without joint states or commands
        self._rejected = 0
        self._last_error = ""

        # The writers are not thread-safe: every callback that touches them shares one group.
        group = MutuallyExclusiveCallbackGroup()
        # Created first: within one executor round the events go before the data.
        self.create_subscription(
            String, EPISODE_CONTROL_TOPIC, self._on_control, EPISODE_CONTROL_QOS,
            callback_group=group,
        )  # fmt: skip
        deep = QoSProfile(depth=cfg.queue_depth, reliability=ReliabilityPolicy.RELIABLE)
        self._state_sub = self.create_subscription(
            JointState, topics.JOINT_STATES, self._on_joint_state, deep, callback_group=group
        )
        self._command_sub = self.create_subscription(
            Float64MultiArray, self._command_topic, self._on_command, deep, callback_group=group
        )
        self.create_subscription(
            JointTrajectory, self._trajectory_topic, self._on_trajectory, deep,
            callback_group=group,
        )  # fmt: skip
        self.create_subscription(
            PointStamped, topics.GOAL, self._on_goal, topics.GOAL_QOS, callback_group=group
        )
        # Best effort, so it matches any pose source (a camera tracker publishes best
        # effort), but with the deep queue: lockstep sends bursts a shallow one would drop.
        object_qos = QoSProfile(depth=cfg.queue_depth, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(
            PoseStamped, topics.OBJECT_POSE, self._on_object, object_qos, callback_group=group,
        )  # fmt: skip
        self._episodes_pub = self.create_publisher(UInt8MultiArray, EPISODES_TOPIC, EPISODES_QOS)
        self._status_pub = self.create_publisher(String, topics.STATUS, topics.STATUS_QOS)
        self._last_id = -1
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        # On a timer too: without new messages a writer would never check its age, and an
        # ended episode would wait for traffic to be finished.
        self.create_timer(cfg.flush_period / 2, self._on_timer, callback_group=group, clock=steady)
        self.create_timer(cfg.diagnostics_period, self._report, callback_group=group, clock=steady)
        # Own files first made readable: a corrupt one moved aside, one cut by kill -9
        # repaired (mbrl.data.episodes.check_episode_dir); never a reason not to start.
        for line in check_episode_dir(self.episodes_dir):
            if "corrupt" in line:
                self._error(line)
            else:
                self.get_logger().warning(line)
        if cfg.republish_on_start:
            self._republish_existing()
        self.get_logger().info(
            f"recording {list(cfg.joints)} from /joint_states, {self._command_topic}, "
            f"{self._trajectory_topic}, {topics.GOAL} and {topics.OBJECT_POSE} into "
            f"{self.episodes_dir} "
            f"(flush every {cfg.flush_period:g} s)"
        )

    # -- episode lifecycle ----------------------------------------------------------------
    def _on_control(self, msg: String, info: dict) -> None:
        try:
            event = json.loads(msg.data)
            if not isinstance(event, dict):
                raise ValueError("not a JSON object")
            kind = event.get("event")
            episode_id = header_int(event, "episode_id", EPISODE_CONTROL_TOPIC)
            if kind not in ("start", "end"):
                raise ValueError(f"event {truncate(repr(kind), 80)}; expected 'start' or 'end'")
            goal = episode_event_goal(event)
            expected = None
            if kind == "end" and "commands" in event:
                expected = header_int(event, "commands", EPISODE_CONTROL_TOPIC)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            self._error(
                f"ignored {EPISODE_CONTROL_TOPIC} message {truncate(repr(msg.data), 200)}: "
                f"{truncate(str(exc))}",
                throttle=True,
            )
            return
        stamp = _stamp(info)
        if kind == "end":
            # (a sender resends an end until the episode is reported finished: no news)
            if not self.router.end(episode_id, stamp, expected) and not self.router.ended(
                episode_id
            ):
                open_ids = [r.episode_id for r in self.router.recordings if r.end is None]
                self._error(f"'end' of episode {episode_id} but the open episode(s) are {open_ids}")
            self._finish_ready()
            return
        if self.router.is_open(episode_id, goal):
            # a resent start (the sender had not seen our status yet): the open file is the
            # answer; reopening would cut the episode's first ticks into a rejected file
            self._publish_status()
            return
        unended = [r.episode_id for r in self.router.recordings if r.end is None]
        if unended:
            self.get_logger().warning(
                f"episode {unended[0]} had no 'end' before episode {episode_id} started; "
                "closing it as incomplete"
            )
        meta = {
            "episode_id": str(episode_id),
            "task": str(event.get("task", "")),
            "mode": str(event.get("mode", "")),
            "command_topic": self._command_topic,
            # layout facts the fitter checks against its own arm
            "max_increment": repr(float(self.config.arm.max_increment)),
            "control_rate_hz": repr(float(self.config.arm.control_rate_hz)),
        }
        try:
            rec = self.router.start(episode_id, stamp, meta, goal=goal)
        except OSError as exc:
            self._error(f"episode {episode_id} NOT recorded: {exc}")
            return
        self._last_id = episode_id
        self._publish_status()
        self.get_logger().info(f"episode {episode_id} started: recording to {rec.writer.path}")

    def _finish_ready(self) -> None:
        """Publish the ended episodes that can receive nothing more."""
        try:
            done = self.router.finished()
        except OSError as exc:  # e.g. disk full at close: the file keeps its flushed chunks
            self._error(f"closing an episode file failed: {exc}")
            return
        for rec in done:
            w = rec.writer
            streams = (("joint states", topics.JOINT_STATES), ("commands", w.command_topic))
            missing = [name for name, topic in streams if not w.counts[topic]]
            if rec.short and not missing:  # a gap: the sender saw more commands go out
                missing = [f"complete commands ({rec.commands} of the {rec.expected_commands} "
                           "sent)"]  # fmt: skip
            if missing:  # not a usable episode: the experiment runs it again
                self._rejected_episodes += 1
                try:
                    kept = f"; kept as {move_aside(w.path, '.rejected').name}"
                except OSError as exc:
                    kept = f"; could not move it aside: {exc}"
                what = " and no ".join(missing)
                self._error(
                    f"episode {rec.episode_id} rejected, not published: no {what} recorded "
                    f"({dict(w.counts)}){kept}"
                )
                self._publish_status()
                continue
            self._publish_file(rec.episode_id, w.path, w.num_messages, rec.complete)

    def _publish_file(self, episode_id: int, path: Path, num_messages: int, complete: bool) -> None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            self._error(f"episode {episode_id} not published: cannot read {path}: {exc}")
            return
        self._episodes_pub.publish(encode_episode_msg(data, episode_id, num_messages, complete))
        self._published += 1
        self._publish_status()
        self.get_logger().info(
            f"episode {episode_id} published: {num_messages} messages, {len(data)} bytes, "
            f"{'complete' if complete else 'INCOMPLETE'} ({path.name})"
        )

    def _republish_existing(self) -> None:
        """Publish this node's own episode files (oldest first) for fitters that join later."""
        for path in sorted(self.episodes_dir.glob("episode_*.mcap")):
            try:
                episode = read_episode(path)  # also recovers a file cut short by kill -9
                episode_id = int(episode.metadata["episode_id"])
            except (EpisodeFileError, KeyError, ValueError) as exc:
                self._error(f"not republishing {path}: {exc}")
                continue
            count = len(episode.state_stamps) + len(episode.command_stamps)
            self._publish_file(episode_id, path, count + len(episode.goal_stamps), episode.complete)

    # -- recording ------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState, info: dict) -> None:
        if not self.router.recordings:
            return
        try:
            wire = self.config.driver_joints or self.config.joints
            q = joint_positions_by_name(msg, wire)
            qd = joint_velocities_by_name(msg, wire) if msg.velocity else None
        except ValueError as exc:
            self._reject(topics.JOINT_STATES, exc)
            return
        self.router.state(_stamp(info), q, qd)
        self._finish_ready()

    def _on_command(self, msg: Float64MultiArray, info: dict) -> None:
        if not self.router.recordings:
            return
        try:
            command = command_to_array(msg, self.config.joints)
        except ValueError as exc:
            self._reject(self._command_topic, exc)
            return
        self.router.command(_stamp(info), command)
        self._finish_ready()

    def _on_trajectory(self, msg: JointTrajectory, info: dict) -> None:
        if not self.router.recordings:
            return
        try:
            wire = self.config.driver_joints or self.config.joints
            traj = trajectory_to_arrays(msg, wire)
            if set(traj.joint_names) != set(wire):
                raise ValueError(
                    f"trajectory names {list(traj.joint_names)}; the collector records "
                    f"complete commands for {list(wire)}"
                )
        except ValueError as exc:
            self._reject(self._trajectory_topic, exc)
            return
        order = [traj.joint_names.index(j) for j in wire]
        self.router.command(_stamp(info), traj.positions[0][order])
        self._finish_ready()

    def _on_object(self, msg: PoseStamped, info: dict) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        pose = [p.x, p.y, p.z, o.x, o.y, o.z, o.w]
        if not all(math.isfinite(v) for v in pose):
            self._reject(topics.OBJECT_POSE, ValueError(f"pose {pose} is not finite"))
            return
        self.router.object_pose(_stamp(info), pose[:3], pose[3:], msg.header.frame_id)

    def _on_goal(self, msg: PointStamped, info: dict) -> None:
        point = [msg.point.x, msg.point.y, msg.point.z]
        self.router.goal(_stamp(info), point, msg.header.frame_id)

    def _on_timer(self) -> None:
        self.router.flush()
        self._finish_ready()

    # -- reporting ------------------------------------------------------------------------
    def _reject(self, topic: str, exc: Exception) -> None:
        self._rejected += 1
        self._error(f"not recorded from {topic}: {exc}", throttle=True)

    def _error(self, text: str, throttle: bool = False) -> None:
        self._last_error = text
        if throttle:
            self.get_logger().error(text, throttle_duration_sec=2.0)
        else:
            self.get_logger().error(text)

    def _publish_status(self) -> None:
        """The typed status the experiment waits on (latched; on every change and timer)."""
        rec = self.router.recordings[-1] if self.router.recordings else None
        recording = rec is not None and rec.end is None
        status = CollectorStatus(
            recording, rec.episode_id if rec is not None else self._last_id, self._published,
            self._rejected_episodes, self._state_sub.get_publisher_count(),
            self._command_sub.get_publisher_count(),
        )  # fmt: skip
        self._status_pub.publish(mbrl_status.encode("collector", status))

    def _report(self) -> None:
        self._publish_status()
        rec = self.router.recordings[-1] if self.router.recordings else None
        recording = rec is not None and rec.end is None
        values = {
            "recording": recording,
            "episode_id": rec.episode_id if recording else "",
            "messages": rec.writer.num_messages if rec else 0,
            "flushed_messages": rec.writer.flushed_messages if rec else 0,
            "episodes_published": self._published,
            "rejected_messages": self._rejected,
            "rejected_episodes": self._rejected_episodes,
            "data_dir": str(self.episodes_dir.parent),
            "last_error": self._last_error,
        }
        level = DiagnosticStatus.WARN if self._rejected else DiagnosticStatus.OK
        message = f"recording episode {values['episode_id']}" if recording else "idle"
        stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(diagnostics_msg(stamp, "mbrl/collector", level, message, values))

    def close(self) -> None:
        """Finish open episode files (a clean stop loses nothing) and destroy the node."""
        for path in self.router.close_all():
            self.get_logger().info(f"closed {path} on shutdown (not published)")
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point (`collector` / `python -m mbrl.ros.collector --ros-args ...`)."""
    return run_node("collector", Collector, args)


if __name__ == "__main__":
    sys.exit(main())

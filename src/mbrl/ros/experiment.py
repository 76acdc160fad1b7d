"""Node `experiment`: runs the shared learning schedule (mbrl.loop.schedule: explore, fit,
control, evaluate) through the other nodes' topics and services only, and writes the CLI's
run report.

Per episode: disable the controller, put the arm (and cube) at the episode's start (the
sim's reset_q / reset_cube parameters, then /sim/reset; the start is the shared sampler's,
mbrl.costs.tasks, so episode s is the episode `mbrl experiment` runs for s), set the
controller's `mode`, publish the goal (/mbrl/goal) and, for a training episode, an episode
start (/mbrl/episode_control) and wait until the collector's /mbrl/status says the file is
open; enable, watch /joint_states and the commands for the episode's ticks, disable, publish
the end. A fit waits for the fitter's status to hold the new episode, calls
/model_fitter/fit, waits for the new /mbrl/model and for the controller's status to run it.
The node records nothing itself: the collector's MCAP files and the fitter's checkpoints are
the run's data. Interface: docs/ros_interface.md.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PointStamped, PoseStamped
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String, UInt8MultiArray
from std_srvs.srv import SetBool, Trigger

from mbrl.agents import registry as agents
from mbrl.agents.arm import ArmModel
from mbrl.config import ConfigError
from mbrl.costs.tasks import SUCCESS_THRESHOLD, EpisodeSpec, distance, yaw_of_quaternion
from mbrl.loop.common import RunRecorder
from mbrl.loop.schedule import EpisodeOutcome, Trajectory, run_schedule
from mbrl.ros import status as mbrl_status
from mbrl.ros import topics
from mbrl.ros.experiment_core import (
    ExperimentNodeConfig,
    ScheduleError,
    awaited_model,
    episode_arrays,
)
from mbrl.ros.msgs import (
    episode_event_msg,
    float64_multiarray,
    joint_positions_by_name,
    joint_velocities_by_name,
    point_stamped_msg,
    rename_joints,
)
from mbrl.ros.node_main import MultiThreadedExecutor
from mbrl.ros.params import declare_config_parameters, read_config_parameters
from mbrl.ros.transport import TransportError, decode_model_msg

HOLD_LABEL = "experiment_hold"  # marks the lockstep hold command, so it is not recorded
POLL_S = 0.002


class ExperimentNode(Node):
    """Node `experiment`; `run()` executes the whole schedule on the calling thread while an
    executor spins the node's callbacks on another (see main())."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("experiment", **node_kwargs)
        declare_config_parameters(self, ExperimentNodeConfig)
        self.cfg: ExperimentNodeConfig = read_config_parameters(self, ExperimentNodeConfig)
        cfg, self.joints = self.cfg, self.cfg.arm.joint_names
        self.arm = ArmModel.from_config(cfg.arm)
        self.task, self.params = cfg.agent.task, cfg.agent.preset()
        self.sampler = self.arm.sampler(self.task)
        self._lock = threading.Lock()
        self._states: list[tuple[tuple[int, int], np.ndarray, np.ndarray, np.ndarray]] = []
        self._commands: list[np.ndarray] = []
        self._latest: tuple[tuple[int, int], np.ndarray] | None = None
        self._received = 0  # joint state messages, republished ones included
        self._recording = False  # keep states and commands (during an episode only)
        self._status: dict[str, Any] = {}  # node kind -> its latest typed status
        self._model_version = 0  # newest version seen on /mbrl/model
        self._cube = np.full(4, np.nan)  # push: latest [x, y, z, yaw]
        group = ReentrantCallbackGroup()  # callbacks only store; the schedule thread waits
        sub = self.create_subscription
        sub(JointState, topics.JOINT_STATES, self._on_state, 200, callback_group=group)
        command_topic = topics.command_topic(cfg.controller_name)
        sub(Float64MultiArray, command_topic, self._on_command, 200, callback_group=group)
        sub(String, topics.STATUS, self._on_status, topics.STATUS_QOS, callback_group=group)
        sub(UInt8MultiArray, topics.MODEL, self._on_model, topics.MODEL_QOS, callback_group=group)
        if self.task == "push":
            sub(PoseStamped, topics.OBJECT_POSE, self._on_object, topics.OBJECT_QOS,
                callback_group=group)  # fmt: skip
        self._goal_pub = self.create_publisher(PointStamped, topics.GOAL, topics.GOAL_QOS)
        self._event_pub = self.create_publisher(
            String, topics.EPISODE_CONTROL, topics.EPISODE_CONTROL_QOS
        )
        self._hold_pub = self.create_publisher(Float64MultiArray, command_topic, 10)
        ctrl, fitter = cfg.controller_node, cfg.fitter_node
        self._enable = self.create_client(SetBool, f"/{ctrl}/enable", callback_group=group)
        self._fit = self.create_client(Trigger, f"/{fitter}/fit", callback_group=group)
        self._reset = (
            self.create_client(Trigger, cfg.reset_service, callback_group=group)
            if cfg.reset_service
            else None
        )
        self._params = AsyncParameterClient(self, ctrl, callback_group=group)
        self._sim_params = (
            AsyncParameterClient(self, cfg.sim_node, callback_group=group)
            if cfg.sim_node and cfg.reset_service
            else None
        )
        self.steps_used = 0

    # -- callbacks (executor threads: store only) -------------------------------------------
    def _on_state(self, msg: JointState) -> None:
        rename_joints(msg, self.cfg.arm.from_driver())  # a driver's `*_joint` names -> ours
        try:
            q = joint_positions_by_name(msg, self.joints)
            qdot = joint_velocities_by_name(msg, self.joints)
        except ValueError:
            return  # the controller's watchdog reports mis-named states; nothing to record
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self._lock:
            if self._recording and (self._latest is None or stamp != self._latest[0]):
                self._states.append((stamp, q, qdot, self._cube.copy()))
            self._latest = (stamp, q)
            self._received += 1

    def _on_command(self, msg: Float64MultiArray) -> None:
        if msg.layout.dim and msg.layout.dim[0].label == HOLD_LABEL:
            return
        with self._lock:
            if self._recording:
                self._commands.append(np.asarray(msg.data, dtype=float))

    def _on_status(self, msg: String) -> None:
        try:
            kind, status = mbrl_status.decode(msg)
        except mbrl_status.StatusError as exc:
            self.get_logger().error(f"ignoring {exc}", throttle_duration_sec=5.0)
            return
        with self._lock:
            self._status[kind] = status

    def _on_model(self, msg: UInt8MultiArray) -> None:
        try:
            payload = decode_model_msg(msg)
        except TransportError as exc:
            self.get_logger().error(f"ignoring {topics.MODEL}: {exc}")
            return
        with self._lock:
            self._model_version = max(self._model_version, payload.version)

    def _on_object(self, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        yaw = yaw_of_quaternion(np.array([o.x, o.y, o.z, o.w]))
        with self._lock:
            self._cube = np.array([p.x, p.y, p.z, yaw])

    # -- waiting on other nodes ---------------------------------------------------------------
    def _wait(self, predicate: Callable[[], Any], what: str, tick: Callable | None = None) -> Any:
        """Poll predicate() until truthy (returned); ScheduleError names `what` on timeout.
        `tick` runs every 0.3 s meanwhile (the lockstep nudge)."""
        deadline = time.monotonic() + self.cfg.timeout
        next_tick = time.monotonic() + 0.3
        while rclpy.ok():
            value = predicate()
            if value:
                return value
            now = time.monotonic()
            if now > deadline:
                raise ScheduleError(f"timed out after {self.cfg.timeout:.0f} s waiting for {what}")
            if tick is not None and now > next_tick:
                tick()
                next_tick = now + 0.3
            time.sleep(POLL_S)
        raise ScheduleError(f"shut down while waiting for {what}")

    def _call(self, client, request, what: str):
        """One service call with a per-try timeout and bounded retries (a lost request or
        answer costs one try, not the whole timeout); ScheduleError names the service."""
        cfg = self.cfg
        if not client.wait_for_service(timeout_sec=cfg.timeout):
            raise ScheduleError(f"service {client.srv_name} not available ({what})")
        per_try = min(cfg.call_timeout, cfg.timeout)
        for attempt in range(1, cfg.call_tries + 1):
            future = client.call_async(request)
            deadline = time.monotonic() + per_try
            while rclpy.ok() and not future.done() and time.monotonic() < deadline:
                time.sleep(POLL_S)
            if future.done():
                return future.result()
            client.remove_pending_request(future)
            self.get_logger().warning(
                f"no answer from {client.srv_name} ({what}) within {per_try:g} s "
                f"(try {attempt} of {cfg.call_tries})"
            )
        raise ScheduleError(
            f"no answer from {client.srv_name} ({what}) in {cfg.call_tries} tries of {per_try:g} s"
        )

    def _graph_missing(self) -> list[str]:
        """What the episode needs and the DDS graph does not show yet: the collector and the
        controller subscribed to the streams they record / act on, the arm publishing."""
        cfg = self.cfg
        command = topics.command_topic(cfg.controller_name)

        def subs(topic):
            return {i.node_name for i in self.get_subscriptions_info_by_topic(topic)}

        def pubs(topic):
            return {i.node_name for i in self.get_publishers_info_by_topic(topic)}

        need = [
            (cfg.collector_node, "subscribed to", topics.JOINT_STATES, subs),
            (cfg.collector_node, "subscribed to", command, subs),
            (cfg.collector_node, "subscribed to", topics.EPISODE_CONTROL, subs),
            (cfg.controller_node, "subscribed to", topics.JOINT_STATES, subs),
            (cfg.controller_node, "publishing", command, pubs),
        ]
        if cfg.sim_node and cfg.reset_service:
            need.append((cfg.sim_node, "publishing", topics.JOINT_STATES, pubs))
        missing = [f"{node} {how} {topic}" for node, how, topic, get in need
                   if node not in get(topic)]  # fmt: skip
        # ...and the collector matched, from its own participant, every publisher of the two
        # streams that this node's graph shows: the graph above is this node's view, and a
        # collector that had not yet discovered the controller's writer once recorded none of
        # an episode's commands (only this node's own hold nudge).
        s = self.status("collector")
        for topic, matched in ((topics.JOINT_STATES, "state_publishers"),
                               (command, "command_publishers")):  # fmt: skip
            # (a best-effort publisher cannot match the collector's reliable reader)
            want = sum(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                       for i in self.get_publishers_info_by_topic(topic))  # fmt: skip
            have = getattr(s, matched) if s is not None else 0
            if have < want:
                missing.append(f"{cfg.collector_node} matched {have} of the {want} publishers "
                               f"of {topic}")  # fmt: skip
        return missing

    def _collector_done(self) -> int:
        """Episodes the collector has finished (published + rejected) so far."""
        s = self.status("collector")
        return -1 if s is None else s.published + s.rejected

    def status(self, kind: str) -> Any:
        """The latest typed /mbrl/status of node kind `kind`, or None."""
        with self._lock:
            return self._status.get(kind)

    def set_enabled(self, on: bool) -> None:
        self._call(self._enable, SetBool.Request(data=on), "enable" if on else "disable")

    def _set_parameters(self, client: AsyncParameterClient, node: str, params: list) -> None:
        if not client.wait_for_services(timeout_sec=self.cfg.timeout):
            raise ScheduleError(f"parameter services of '{node}' not found")
        future = client.set_parameters(params)
        self._wait(future.done, f"{node} parameters {[p.name for p in params]}")
        for param, result in zip(params, future.result().results, strict=True):
            if not result.successful:
                raise ScheduleError(
                    f"{node} refused {param.name} := {param.value}: {result.reason}"
                )

    def set_mode(self, mode: str, tick_limit: int = 0) -> None:
        """Set the controller's mode and how many commands it sends per enable (0 = no limit)."""
        params = [Parameter("mode", value=mode), Parameter("tick_limit", value=int(tick_limit))]
        self._set_parameters(self._params, self.cfg.controller_node, params)

    def _hold(self) -> None:
        """Lockstep: one command holding the measured position, so the sim steps once and the
        controller sees a new joint state (it ticks on new states only)."""
        with self._lock:
            latest = self._latest
        if self.cfg.lockstep and latest is not None:
            self._hold_pub.publish(float64_multiarray(latest[1], HOLD_LABEL))

    def _reset_to(self, spec: EpisodeSpec) -> None:
        """Put the arm (and the cube) at the episode's start: the sim's reset parameters, then
        its reset service; without a reset service (a real arm) nothing moves."""
        if self._reset is None:
            return
        if self._sim_params is not None:
            cube = [] if spec.cube is None else [*map(float, spec.cube), float(spec.cube_yaw)]
            params = [
                Parameter("reset_q", Parameter.Type.DOUBLE_ARRAY, [float(v) for v in spec.q0]),
                Parameter("reset_cube", Parameter.Type.DOUBLE_ARRAY, cube),
            ]
            self._set_parameters(self._sim_params, self.cfg.sim_node, params)
        response = self._call(self._reset, Trigger.Request(), "reset the arm")
        if not response.success:
            raise ScheduleError(f"{self.cfg.reset_service} refused: {response.message}")

    # -- one episode ----------------------------------------------------------------------------
    def episode(
        self, spec: EpisodeSpec, mode: str, episode_id: int | None, steps: int | None = None
    ) -> dict[str, Any]:
        """Run one episode (`_run_episode`); a recorded one the collector rejects (a stream
        missing) is run again, up to episode_retries times, then the schedule stops."""
        for attempt in range(self.cfg.episode_retries + 1):
            if episode_id is not None:
                missing = self._graph_missing()
                if missing:  # start only once every node has matched what it needs
                    self._wait(lambda: not self._graph_missing(),
                               f"the graph to connect ({'; '.join(missing)})")  # fmt: skip
            result = self._run_episode(spec, mode, episode_id, steps)
            if episode_id is None or not result["rejected"]:
                return result
            self.get_logger().warning(
                f"episode {episode_id} rejected by {self.cfg.collector_node} (a stream "
                f"missing; see its log); running it again (try {attempt + 2})"
            )
        raise ScheduleError(
            f"episode {episode_id} rejected by {self.cfg.collector_node} "
            f"{self.cfg.episode_retries + 1} times: a recorded stream stays missing"
        )

    def _run_episode(
        self, spec: EpisodeSpec, mode: str, episode_id: int | None, steps: int | None = None
    ) -> dict[str, Any]:
        """Run one episode of `steps` (default episode_steps) ticks from `spec` in controller
        `mode`; `episode_id` None is an evaluation (not recorded by the collector).

        Returns q, qdot (T+1, nj), cubes (T+1, 4), commands (T, nj), ticks (all commands the
        controller sent, including the few after the episode's last tick in lockstep).
        """
        cfg, T = self.cfg, steps or self.cfg.episode_steps
        self.set_enabled(False)
        self._wait(lambda: self._latest is not None, topics.JOINT_STATES)
        if self._reset is not None:
            seen = self._received
            self._reset_to(spec)
            # The lockstep hold must hold the arm at the start: wait for a state after it.
            self._wait(lambda: self._received > seen, "a joint state after the reset")
        # The controller stops itself after T commands: in lockstep an episode is over in
        # well under a second, before a disable call could land.
        self.set_mode(mode, tick_limit=T)
        stamp = self.get_clock().now().to_msg()
        self._goal_pub.publish(point_stamped_msg(spec.goal, cfg.frame_id, stamp))
        if self.task == "push":  # the cube pose after the reset, before the controller acts
            self._wait(lambda: np.all(np.isfinite(self._cube)), topics.OBJECT_POSE)
        if episode_id is not None:
            start = {"goal": spec.goal, "frame_id": cfg.frame_id}
            self._event("start", episode_id, mode, **start)
            # In lockstep an episode lasts well under a second: start only once the collector
            # reports the file open, or its first ticks would not be recorded.
            self._wait(
                lambda: (
                    (s := self.status("collector")) is not None
                    and s.recording
                    and s.episode_id == episode_id
                ),
                f"{cfg.collector_node} to report episode {episode_id} open on {topics.STATUS}",
                tick=lambda: self._event("start", episode_id, mode, **start),  # resent if lost
            )
        done_before = self._collector_done()
        with self._lock:
            self._states, self._commands, self._recording = [], [], True
        self.set_enabled(True)
        self._hold()
        # Nudges (lockstep): before the first command, so the controller sees a fresh state;
        # after the last, if the state that follows it has not come (the controller has
        # stopped itself at tick_limit and would not step the sim again).
        self._wait(
            lambda: len(self._states) > T and len(self._commands) >= T,
            f"{T} ticks of {cfg.controller_node} in mode {mode}",
            tick=lambda: self._hold() if not self._commands or len(self._commands) >= T else None,
        )
        self.set_enabled(False)
        time.sleep(0.05)  # let the last in-flight lockstep tick (and its cube pose) land
        rejected = False
        if episode_id is not None:
            before = self.status("collector")
            with self._lock:
                sent = len(self._commands)  # the collector must have recorded as many
            self._event("end", episode_id, mode, commands=sent)
            # The end is acknowledged: the collector reports the episode finished (published,
            # or rejected for a missing stream); a lost event is resent.
            self._wait(
                lambda: self._collector_done() > done_before,
                f"{cfg.collector_node} to finish episode {episode_id} on {topics.STATUS}",
                tick=lambda: self._event("end", episode_id, mode, commands=sent),
            )
            rejected = self.status("collector").rejected > (before.rejected if before else 0)
        with self._lock:
            states, commands = list(self._states), list(self._commands)
            self._recording = False
            cube_now = self._cube.copy()
        states = states[: T + 1]
        cubes = np.array([s[3] for s in states])
        if len(cubes):
            cubes[-1] = cube_now  # the pose at the last state (published just after it)
        return {"q": np.array([s[1] for s in states]), "qdot": np.array([s[2] for s in states]),
                "cubes": cubes, "commands": np.array(commands[:T]),
                "ticks": len(commands), "rejected": rejected}  # fmt: skip

    def _event(self, event: str, episode_id: int, mode: str, **extra: Any) -> None:
        """Publish an episode event (a start with the episode's `goal` and `frame_id`, an
        end with the count of `commands` seen)."""
        self._event_pub.publish(episode_event_msg(event, episode_id, self.task, mode, **extra))

    def fit(self, episodes: int, previous: int) -> int:
        """Have the fitter fit on `episodes` episodes; returns the new model's version once
        the controller runs it."""
        fitter, ctrl = self.cfg.fitter_node, self.cfg.controller_node
        self._wait(
            lambda: (s := self.status("model_fitter")) is not None and s.episodes >= episodes,
            f"{fitter} to report {episodes} episodes on {topics.STATUS}",
        )
        failed = self.status("model_fitter").failed_fits
        response = self._call(self._fit, Trigger.Request(), "fit")
        if not response.success:
            raise ScheduleError(f"{fitter} refused to fit: {response.message}")
        version = self._wait(
            lambda: awaited_model(self._model_version, previous, self.status("model_fitter"),
                                  failed, fitter),
            f"a model newer than version {previous} on {topics.MODEL}",
        )  # fmt: skip
        # The controller swaps models between ticks; in lockstep ticks need new states. Its
        # model gate may refuse the model: the schedule goes on with the running one.
        status = self._wait(
            lambda: (
                (s := self.status("mpc_controller")) is not None
                and (s.model_version >= version or s.refused_version >= version)
                and s
            ),
            f"{ctrl} to run (or its model gate to refuse) model version {version}",
            tick=self._hold,
        )
        if status.model_version < version:
            self.get_logger().warning(
                f"{ctrl}'s model gate refused model version {version} (see its /diagnostics "
                f"gate_last); going on with version {status.model_version}"
            )
            return status.model_version
        return version

    def run(self) -> dict[str, Any]:
        """The whole schedule; returns RunRecorder.finish()'s summary (also summary.json)."""
        config = self.cfg.experiment_config()
        recorder = RunRecorder(config)
        self.get_logger().info(f"run report in {recorder.run_dir.resolve()}")
        start = time.monotonic()
        recorder.save_params(self.params)  # the agent's effective preset, as the loop's
        recorder.save_params(dataclasses.asdict(self.cfg), "experiment_node.json")
        backend = GraphBackend(self)
        extra = {"via": "ros", "timing": self.cfg.timing,
                 "wall_seconds": lambda: time.monotonic() - start}  # fmt: skip
        if self.cfg.agent.algo == "gps":  # conditions x samples per iteration (mbrl.loop.gps)
            from mbrl.loop.gps import run_gps_schedule

            summary, _ = run_gps_schedule(backend, config, recorder, self.params, extra=extra)
            return summary
        explore = agents.explore_episodes(self.cfg.agent.algo, self.params, config.num_episodes)
        summary, _ = run_schedule(backend, config, recorder, explore_episodes=explore, extra=extra)
        return summary


class GraphBackend:
    """The schedule's backend through the graph: episodes run by the controller on the sim or
    the real arm, fits by the fitter on the collector's recordings."""

    def __init__(self, node: ExperimentNode) -> None:
        self.node, self.version = node, 0
        self.action_base = agents.increment_base(node.params)
        self.control_mode = agents.spec(node.cfg.agent.algo).control_mode

    def run_episode(self, mode: str, seed: int, steps: int, index: int | None) -> EpisodeOutcome:
        node = self.node
        spec = node.sampler.episode(seed)
        # schedule mode -> controller mode: explore, or the mode that runs the agent's actor
        # (mpc: replanning MPC or Alg. 1/2's open-loop plan; policy: Alg. 4's policy)
        ros_mode = "explore" if mode == "explore" else self.control_mode
        ep = node.episode(spec, ros_mode, index, steps)
        node.steps_used += ep["ticks"] if index is not None else 0
        cubes = ep["cubes"] if node.task == "push" else None
        obs, actions = episode_arrays(
            node.arm, node.task, ep["q"], ep["qdot"], ep["commands"], spec.goal, cubes,
            self.action_base,
        )  # fmt: skip
        final = float(distance(node.task, obs[-1], node.arm.nj))
        what = f"episode {index} ({mode})" if index is not None else f"evaluation ({mode})"
        node.get_logger().info(
            f"{what}: {ep['ticks']} ticks, final distance {final * 100:.1f} cm; "
            f"{node.steps_used} real steps used"
        )
        return EpisodeOutcome(obs, actions, ep["ticks"], final,
                              final < SUCCESS_THRESHOLD[node.task])  # fmt: skip

    def fit(self, trajectories: list[Trajectory], index: int) -> dict[str, float]:
        self.version = self.node.fit(index + 1, self.version)
        return {"model_version": self.version}


def _spin(executor: MultiThreadedExecutor) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:  # Ctrl-C / SIGINT shut the context down
        pass


def main(args: list[str] | None = None) -> int:
    """Entry point (`experiment` / `python -m mbrl.ros.experiment --ros-args ...`)."""
    import torch

    torch.set_num_threads(1)  # the controller and fitter need the cores more
    rclpy.init(args=args)
    node: ExperimentNode | None = None
    spinner: threading.Thread | None = None
    executor = MultiThreadedExecutor(num_threads=2)
    try:
        try:
            node = ExperimentNode()
        except (ConfigError, ParameterException, ValueError, OSError) as exc:
            print(f"experiment: invalid parameters: {exc}", file=sys.stderr)
            return 2
        executor.add_node(node)
        spinner = threading.Thread(target=_spin, args=(executor,), daemon=True)
        spinner.start()
        try:
            summary = node.run()
        except ScheduleError as exc:
            node.get_logger().error(f"schedule stopped: {exc}")
            return 1
        node.get_logger().info(
            f"done: success rate {summary['success_rate']:.2f} on {node.cfg.eval_goals} "
            f"held-out goals after {summary['real_steps']} real steps; report in "
            f"{summary['run_dir']}"
        )
        if not node.cfg.exit_when_done:
            spinner.join()  # stay up (a launch file would otherwise report a dead node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown(timeout_sec=1.0)
        if spinner is not None:
            # The spin thread must leave rcl's wait before the interpreter exits, or the C++
            # side aborts ("terminate called without an active exception").
            spinner.join(timeout=5.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

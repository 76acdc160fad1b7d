"""Node `experiment`: runs the learning schedule (explore, fit, control, evaluate, repeat)
through the other nodes' topics and services only, and writes the CLI's run report.

Per training episode: disable the controller, reset the arm (/sim/reset), set the
controller's `mode` parameter, publish the goal (/mbrl/goal) and an episode start
(/mbrl/episode_control), enable (/mpc_controller/enable), watch /joint_states and the
commands for `episode_steps` ticks, disable, publish the episode end. Then wait for the
fitter to hold the new episode, call /model_fitter/fit, wait for the new /mbrl/model and
for the controller to run it, and evaluate on held-out goals (mode mpc, nothing recorded).
The report (mbrl.loop.common.RunRecorder) is the one `mbrl loop` writes. Interface:
docs/ros_interface.md.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String, UInt8MultiArray
from std_srvs.srv import SetBool, Trigger

from mbrl.config import ConfigError
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.data.dataset import TransitionDataset
from mbrl.loop.common import RunRecorder
from mbrl.ros.controller_core import arm_limits
from mbrl.ros.experiment_core import ExperimentNodeConfig, GoalSampler, episode_arrays
from mbrl.ros.msgs import (
    float64_multiarray,
    joint_positions_by_name,
    joint_velocities_by_name,
    rename_joints,
)
from mbrl.ros.node_main import MultiThreadedExecutor
from mbrl.ros.params import declare_config_parameters, read_config_parameters
from mbrl.ros.transport import (
    EPISODE_CONTROL_QOS,
    EPISODE_CONTROL_TOPIC,
    MODEL_QOS,
    MODEL_TOPIC,
    TransportError,
    decode_model_msg,
    load_model_bytes,
)

GOAL_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
HOLD_LABEL = "experiment_hold"  # marks the lockstep hold command, so it is not recorded
POLL_S = 0.002


class ScheduleError(RuntimeError):
    """Another node did not answer as the schedule needs (names the node and the wait)."""


class ExperimentNode(Node):
    """Node `experiment`; `run()` executes the whole schedule on the calling thread while an
    executor spins the node's callbacks on another (see main())."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("experiment", **node_kwargs)
        declare_config_parameters(self, ExperimentNodeConfig)
        self.cfg: ExperimentNodeConfig = read_config_parameters(self, ExperimentNodeConfig)
        cfg, self.joints = self.cfg, self.cfg.arm.joint_names
        fk = ForwardKinematics(cfg.arm.urdf, cfg.arm.ee_link, self.joints)
        lower, upper, _ = arm_limits(cfg.arm, fk)
        self.sampler = GoalSampler(fk, lower, upper)
        self._lock = threading.Lock()
        self._states: list[tuple[tuple[int, int], np.ndarray, np.ndarray]] = []
        self._commands: list[np.ndarray] = []
        self._latest: tuple[tuple[int, int], np.ndarray] | None = None
        self._received = 0  # joint state messages, republished ones included
        self._recording = False  # keep states and commands (during an episode only)
        self._diag: dict[str, dict[str, str]] = {}
        self._model: tuple[int, Any] | None = None  # (version, payload) of the newest model
        group = ReentrantCallbackGroup()  # callbacks only store; the schedule thread waits
        self.create_subscription(JointState, "/joint_states", self._on_state, 200,
                                 callback_group=group)  # fmt: skip
        command_topic = f"/{cfg.controller_name}/commands"
        self.create_subscription(Float64MultiArray, command_topic, self._on_command, 200,
                                 callback_group=group)  # fmt: skip
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50,
                                 callback_group=group)  # fmt: skip
        self.create_subscription(UInt8MultiArray, MODEL_TOPIC, self._on_model, MODEL_QOS,
                                 callback_group=group)  # fmt: skip
        self._goal_pub = self.create_publisher(PointStamped, "/mbrl/goal", GOAL_QOS)
        self._event_pub = self.create_publisher(String, EPISODE_CONTROL_TOPIC, EPISODE_CONTROL_QOS)
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
                self._states.append((stamp, q, qdot))
            self._latest = (stamp, q)
            self._received += 1

    def _on_command(self, msg: Float64MultiArray) -> None:
        if msg.layout.dim and msg.layout.dim[0].label == HOLD_LABEL:
            return
        with self._lock:
            if self._recording:
                self._commands.append(np.asarray(msg.data, dtype=float))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self._lock:
            for status in msg.status:
                self._diag[status.name] = {kv.key: kv.value for kv in status.values}

    def _on_model(self, msg: UInt8MultiArray) -> None:
        try:
            payload = decode_model_msg(msg)
        except TransportError as exc:
            self.get_logger().error(f"ignoring {MODEL_TOPIC}: {exc}")
            return
        with self._lock:
            self._model = (payload.version, payload)

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
        if not client.wait_for_service(timeout_sec=self.cfg.timeout):
            raise ScheduleError(f"service {client.srv_name} not available ({what})")
        future = client.call_async(request)
        self._wait(future.done, f"the answer of {client.srv_name} ({what})")
        return future.result()

    def _diag_value(self, node: str, key: str) -> str | None:
        with self._lock:
            return self._diag.get(f"mbrl/{node}", {}).get(key)

    def set_enabled(self, on: bool) -> None:
        self._call(self._enable, SetBool.Request(data=on), "enable" if on else "disable")

    def set_mode(self, mode: str, tick_limit: int = 0) -> None:
        """Set the controller's mode and how many commands it sends per enable (0 = no limit)."""
        if not self._params.wait_for_services(timeout_sec=self.cfg.timeout):
            raise ScheduleError(f"parameter services of '{self.cfg.controller_node}' not found")
        params = [Parameter("mode", value=mode), Parameter("tick_limit", value=int(tick_limit))]
        future = self._params.set_parameters(params)
        self._wait(future.done, f"{self.cfg.controller_node} mode := {mode}")
        for param, result in zip(params, future.result().results, strict=True):
            if not result.successful:
                raise ScheduleError(
                    f"{self.cfg.controller_node} refused {param.name} := {param.value}: "
                    f"{result.reason}"
                )

    def _hold(self) -> None:
        """Lockstep: one command holding the measured position, so the sim steps once and the
        controller sees a new joint state (it ticks on new states only)."""
        with self._lock:
            latest = self._latest
        if self.cfg.lockstep and latest is not None:
            self._hold_pub.publish(float64_multiarray(latest[1], HOLD_LABEL))

    # -- the schedule ---------------------------------------------------------------------------
    def episode(
        self, goal: np.ndarray, mode: str, episode_id: int | None, steps: int | None = None
    ) -> dict[str, Any]:
        """Run one episode of `steps` (default episode_steps) ticks toward goal (3,) m in
        controller `mode`; `episode_id` None is an evaluation (not recorded by the collector).

        Returns q, qdot (T+1, nj), commands (T, nj), final_distance (m), ticks (all commands
        the controller sent, including the few after the episode's last tick in lockstep).
        """
        cfg, T = self.cfg, steps or self.cfg.episode_steps
        self.set_enabled(False)
        self._wait(lambda: self._latest is not None, "/joint_states")
        if self._reset is not None:
            self._call(self._reset, Trigger.Request(), "reset the arm")
            # The lockstep hold must hold the arm at home: wait for a state sent after it.
            seen = self._received
            self._wait(lambda: self._received > seen, "a joint state after the reset")
        # The controller stops itself after T commands: in lockstep an episode is over in
        # well under a second, before a disable call could land.
        self.set_mode(mode, tick_limit=T)
        msg = PointStamped()
        msg.header.frame_id, msg.header.stamp = cfg.frame_id, self.get_clock().now().to_msg()
        msg.point.x, msg.point.y, msg.point.z = (float(v) for v in goal)
        self._goal_pub.publish(msg)
        if episode_id is not None:
            self._event("start", episode_id, mode)
            # In lockstep an episode lasts well under a second: start only once the collector
            # reports the file open, or its first ticks would not be recorded.
            collector = cfg.collector_node
            self._wait(
                lambda: (
                    self._diag_value(collector, "recording") == "True"
                    and self._diag_value(collector, "episode_id") == str(episode_id)
                ),
                f"{collector} to report episode {episode_id} open on /diagnostics",
            )
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
        time.sleep(0.05)  # let the last in-flight lockstep tick land before counting it
        if episode_id is not None:
            self._event("end", episode_id, mode)
        with self._lock:
            states, commands = list(self._states), list(self._commands)
            self._recording = False
        q = np.array([s[1] for s in states[: T + 1]])
        qdot = np.array([s[2] for s in states[: T + 1]])
        distance = float(np.linalg.norm(self.sampler.ee(q[-1]) - goal))
        return {"q": q, "qdot": qdot, "commands": np.array(commands[:T]),
                "final_distance": distance, "ticks": len(commands)}  # fmt: skip

    def _event(self, event: str, episode_id: int, mode: str) -> None:
        body = {"event": event, "episode_id": episode_id, "task": "reach", "mode": mode}
        self._event_pub.publish(String(data=json.dumps(body)))

    def fit(self, episodes: int, previous: int) -> tuple[int, Any]:
        """Have the fitter fit on `episodes` episodes; returns (version, payload) of the new
        model once the controller runs it."""
        fitter, ctrl = self.cfg.fitter_node, self.cfg.controller_node
        self._wait(
            lambda: int(self._diag_value(fitter, "episodes") or 0) >= episodes,
            f"{fitter} to report {episodes} episodes on /diagnostics",
        )
        response = self._call(self._fit, Trigger.Request(), "fit")
        if not response.success:
            raise ScheduleError(f"{fitter} refused to fit: {response.message}")
        version, payload = self._wait(
            lambda: self._model if self._model and self._model[0] > previous else None,
            f"a model newer than version {previous} on {MODEL_TOPIC}",
        )
        # The controller swaps models between ticks; in lockstep ticks need new states.
        self._wait(
            lambda: int(self._diag_value(ctrl, "model_version") or -1) >= version,
            f"{ctrl} to run model version {version}",
            tick=self._hold,
        )
        return version, payload

    def evaluate(self, goals: np.ndarray) -> dict[str, float]:
        """Mode mpc on each held-out goal; success = final distance below the threshold."""
        distances = np.array([self.episode(g, "mpc", None)["final_distance"] for g in goals])
        self.get_logger().info(
            f"evaluation: final distances {np.round(distances * 100, 1).tolist()} cm"
        )
        return {
            "success_rate": float(np.mean(distances < self.cfg.success_threshold)),
            "final_distance": float(np.mean(distances)),
        }

    def run(self) -> dict[str, Any]:
        """The whole schedule; returns RunRecorder.finish()'s summary (also summary.json)."""
        cfg = self.cfg
        config = cfg.experiment_config()
        recorder = RunRecorder(config)
        self.get_logger().info(f"run report in {recorder.run_dir.resolve()}")
        rng = np.random.default_rng(cfg.seed)
        eval_goals = self.sampler.eval_goals(cfg.eval_goals)
        observed: list[tuple[np.ndarray, np.ndarray]] = []
        version, start = 0, time.monotonic()
        for k in range(config.num_episodes):
            steps = min(cfg.episode_steps, cfg.budget_steps - self.steps_used)
            if steps <= 0:
                break
            mode = "explore" if k < cfg.explore_episodes else "mpc"
            goal = self.sampler.sample(rng)
            ep = self.episode(goal, mode, episode_id=k, steps=steps)
            self.steps_used += ep["ticks"]
            obs, actions = episode_arrays(
                self.sampler, ep["q"], ep["qdot"], ep["commands"], goal, cfg.arm.max_increment
            )
            observed.append((obs, actions))
            recorder.record_episode(k, obs, actions, self.joints, goal, cfg.arm.control_period)
            self.get_logger().info(
                f"episode {k} ({mode}): {ep['ticks']} ticks, final distance "
                f"{ep['final_distance'] * 100:.1f} cm; {self.steps_used} real steps used"
            )
            version, payload = self.fit(k + 1, version)
            checkpoints = recorder.run_dir / "checkpoints"
            recorder.checkpoint(load_model_bytes(payload, checkpoints), f"ensemble_v{version:03d}")
            last = k == config.num_episodes - 1 or self.steps_used >= cfg.budget_steps
            if (k + 1) % cfg.eval_every == 0 or last:
                result = self.evaluate(eval_goals)
                recorder.log(env_steps=self.steps_used, model_version=version,
                             train_final_distance=ep["final_distance"], **result)  # fmt: skip
            if last:
                break
        recorder.save_data(
            TransitionDataset.from_episodes([o for o, _ in observed], [a for _, a in observed])
        )
        return recorder.finish(
            via="ros", real_steps=self.steps_used, wall_seconds=time.monotonic() - start
        )


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

"""Node `mpc_controller`: replans on every fixed-rate control tick and commands the arm.

Reads /joint_states by name, /mbrl/goal and /mbrl/model; publishes position commands (or
trajectories) on the ros2_control topic, the plan for rviz, and /diagnostics; serves ~/enable.
The maths lives in mbrl.ros.controller_core and mbrl.control; the safety rules in
mbrl.ros.safety. Interface reference: docs/ros_interface.md.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped, PoseStamped
from nav_msgs.msg import Path
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String, UInt8MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from mbrl.agents import registry as agents
from mbrl.agents.arm import ArmModel
from mbrl.agents.explore import SmoothedRandom
from mbrl.agents.mpc import known_model, model_columns, pending_in_obs
from mbrl.agents.policy_nets import load_policy
from mbrl.config import ConfigError
from mbrl.costs.tasks import CubeVelocity, next_command, observation, yaw_of_quaternion
from mbrl.models.base import ModelFileError
from mbrl.ros import safety, topics
from mbrl.ros.controller_core import CONTROL_MODES, ActorBundle, MpcControllerConfig
from mbrl.ros.controller_support import AlignedTicks, EpisodeSchedule, TickStats
from mbrl.ros.model_gate import GateConfig, ModelGate
from mbrl.ros.mpc_controller_parts import OffTickWork
from mbrl.ros.msgs import float64_multiarray, joint_trajectory_msg, rename_joints
from mbrl.ros.node_main import MultiThreadedExecutor, run_node
from mbrl.ros.params import (
    declare_config_parameters,
    read_config_parameters,
    write_effective_parameters,
)


class MpcController(OffTickWork, Node):
    """Node `mpc_controller`; see the module docstring and MpcControllerConfig."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("mpc_controller", **node_kwargs)
        declare_config_parameters(self, MpcControllerConfig)
        self.declare_parameter(
            "mode",
            "mpc",
            ParameterDescriptor(
                description=f"control mode, one of {list(CONTROL_MODES)}; settable at run time"
            ),
        )
        self.declare_parameter(
            "tick_limit",
            0,
            ParameterDescriptor(
                description="commands to send after each ~/enable, then disable itself "
                "(0 = until disabled); the experiment node sets it to the episode length so a "
                "lockstep episode ends on its last tick, not when the disable call lands"
            ),
        )
        self.cfg: MpcControllerConfig = read_config_parameters(self, MpcControllerConfig)
        self.mode = self.get_parameter("mode").value
        if self.mode not in CONTROL_MODES:
            raise ConfigError(f"mode must be one of {list(CONTROL_MODES)}, got {self.mode!r}")
        cfg, self.joints = self.cfg, self.cfg.arm.joint_names
        # The agent layer's view of the arm and the agent's preset: the same objects and
        # numbers `mbrl experiment` uses (mbrl.agents).
        self.arm = ArmModel.from_config(cfg.arm)
        self.task, self.params = cfg.agent.task, cfg.agent.preset()
        self.fk = self.arm.fk
        lower, upper, velocity = self.arm.lower, self.arm.upper, self.arm.velocity
        self._limits = (lower, upper)
        max_velocity = velocity if cfg.max_velocity == 0 else np.minimum(velocity, cfg.max_velocity)
        stale_after = cfg.stale_periods * cfg.period
        # Real time: a command moves at most the speed limit x the time since the last one;
        # lockstep: each command is one period of the sim's time.
        self.limiter = safety.CommandLimiter(
            lower, upper, max_velocity, cfg.period, timed=cfg.timing == "realtime"
        )
        plausible = safety.Plausibility(lower, upper, velocity, cfg.period, stale_after)
        self.watchdog = safety.JointStateWatchdog(self.joints, stale_after, plausible)
        self._arm_joints = frozenset(self.joints)
        # The model gate (mbrl.ros.model_gate): the controller's own recent transitions
        # and the checks a new model must pass before it replaces the running one.
        self.gate = ModelGate(
            GateConfig(
                cfg.model_min_transitions, cfg.model_gate_margin, cfg.model_gate_min_check,
                window=max(400, cfg.model_gate_min_check),
            )
        )  # fmt: skip
        # the gate's transitions in the agent's model state (the columns its models take)
        columns = self.expected_layout().get("columns")
        self._columns = np.asarray(
            columns if columns is not None else model_columns(cfg.agent.task, len(self.joints))
        )
        self._lock = threading.Lock()  # guards what other threads hand to the tick
        self._rng = np.random.default_rng(cfg.seed)
        self._goal: np.ndarray | None = np.array(cfg.goal) if cfg.goal else None
        self._cube: tuple[np.ndarray, float] | None = None  # push: latest (position, yaw)
        # push: the cube at the last tick (position, yaw, velocity estimated from the poses
        # of consecutive ticks, as the env and the recorded episodes estimate it)
        self._cube_velocity = CubeVelocity(self.arm.period)
        self._cube_tick: tuple[np.ndarray, float, np.ndarray] | None = None
        self.agent = agents.spec(cfg.agent.algo)
        # Version 0: MPC on reach starts on the arm's known kinematic model (a reach model
        # over q), a policy agent on its policy_path file if one is given; otherwise the
        # actor's modes hold until the fitter's first artifact arrives.
        self.bundle: ActorBundle | None = None
        self._artifact_note = "waiting for the first artifact on /mbrl/model"
        self._base: np.ndarray | None = None  # previous command; None = re-sync to measured q
        if self.agent.known_start and self.task == "reach":
            self.bundle = self._make_bundle(known_model(self.arm, self.params), 0, "known")
        if cfg.policy_path:
            if self.agent.artifact != "policy":
                raise ConfigError(
                    f"policy_path is set but agent.algo {cfg.agent.algo!r} runs "
                    f"{self.agent.artifact!r} artifacts, not policies (use agent.algo: policy)"
                )
            try:
                self.bundle = self._make_bundle(load_policy(cfg.policy_path), 0, "policy")
            except (ModelFileError, ValueError) as exc:
                self._artifact_note = f"policy_path: {exc}"
                self.get_logger().error(f"{exc}; mode policy holds until /mbrl/model has one")
        if self.bundle is not None:
            self._warm_up(self.bundle)
        self._explorer = SmoothedRandom(
            len(self.joints), self._rng, self.params["random_smoothing"]
        )
        self._data_dir = cfg.data_dir or tempfile.mkdtemp(prefix="mbrl-mpc-")
        write_effective_parameters(self._data_dir, cfg, agent_preset=self.params)
        # Requests from other threads, applied by the tick between ticks (single writer).
        self._pending: ActorBundle | None = None
        self._goal_request: np.ndarray | None = None
        self._mode_request: str | None = None
        self._enable_request: bool | None = None
        self._tick_limit_request: int | None = None
        self.tick_limit = int(self.get_parameter("tick_limit").value)
        if self.tick_limit < 0:
            raise ConfigError(f"tick_limit must be >= 0, got {self.tick_limit}")
        self._sent_since_enable = 0
        self.enabled = cfg.start_enabled
        self._safety = safety.SafetyStatus(safety.NO_STATE, "no joint_states received yet")
        self._last_stamp = None
        self._aligned = AlignedTicks(cfg.period)
        self._last_tick = -np.inf
        self.stats = TickStats()
        self._episodes = EpisodeSchedule(cfg.episode_ticks)  # used when standalone

        # Callback groups: the tick (and everything it owns: timers, diagnostics) is one
        # mutually exclusive group, so ticks never overlap. Joint states and goals arrive in
        # another group (they only store the newest value), models in a third: decoding,
        # loading and warming up a model runs in parallel with the ticks, off the tick path.
        tick_group = MutuallyExclusiveCallbackGroup()
        input_group = MutuallyExclusiveCallbackGroup()
        model_group = MutuallyExclusiveCallbackGroup()
        state_group = tick_group if cfg.ticks_on_states else input_group
        self.create_subscription(
            JointState, topics.JOINT_STATES, self._on_joint_state,
            topics.state_qos(cfg.timing, cfg.ticks_on_states),
            callback_group=state_group,
        )  # fmt: skip
        self.create_subscription(
            PointStamped, topics.GOAL, self._on_goal, topics.GOAL_QOS, callback_group=input_group
        )
        if self.task == "push":
            self.create_subscription(
                PoseStamped, topics.OBJECT_POSE, self._on_object, topics.OBJECT_QOS,
                callback_group=input_group,
            )  # fmt: skip
        self.create_subscription(
            UInt8MultiArray, topics.MODEL, self._on_model, topics.MODEL_QOS,
            callback_group=model_group,
        )  # fmt: skip
        command_qos = topics.command_qos(cfg.timing)  # the collector records every command
        if cfg.command_interface == "position":
            topic = topics.command_topic(cfg.controller_name)
            self._command_pub = self.create_publisher(Float64MultiArray, topic, command_qos)
        else:
            topic = topics.trajectory_topic(cfg.trajectory_controller_name)
            self._command_pub = self.create_publisher(JointTrajectory, topic, command_qos)
        self._marker_pub = self.create_publisher(MarkerArray, "~/plan", 1)
        self._path_pub = self.create_publisher(Path, "~/plan_path", 1)
        self._diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self._status_pub = self.create_publisher(String, topics.STATUS, topics.STATUS_QOS)
        self._goal_pub = self._episode_pub = None
        if cfg.standalone:
            self._goal_pub = self.create_publisher(PointStamped, topics.GOAL, topics.GOAL_QOS)
            self._episode_pub = self.create_publisher(
                String, topics.EPISODE_CONTROL, topics.EPISODE_CONTROL_QOS
            )
        self.create_service(SetBool, "~/enable", self._on_enable, callback_group=input_group)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # ticks in wall time, also on sim time
        self.create_timer(cfg.period, self._on_timer, callback_group=tick_group, clock=steady)
        self._lqr_plan = None  # (Plan, model version, tick it was made at)
        self._ahead = None  # plan_ahead: (Plan for the next tick, that tick, time it was made)
        self.create_timer(cfg.period, self._replan_lqr, callback_group=model_group, clock=steady)
        self.create_timer(
            1.0 / cfg.diagnostics_rate_hz,
            self._publish_diagnostics,
            callback_group=tick_group,
            clock=steady,
        )
        tick = "on joint states" if cfg.ticks_on_states else "timer"
        deadline = "none" if cfg.timing == "lockstep" else f"{cfg.deadline(0.0) * 1e3:.0f} ms"
        self.get_logger().info(
            f"mode {self.mode}, {'enabled' if self.enabled else 'DISABLED (call ~/enable)'}, "
            f"{cfg.arm.control_rate_hz:g} Hz ({cfg.timing}, ticks {tick}), deadline "
            f"{deadline}; commands on {topic}"
        )

    # -- inputs (other threads: store only) -----------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        now = time.perf_counter()
        rename_joints(msg, self.cfg.arm.from_driver())  # a driver's `*_joint` names -> ours
        self.watchdog.observe(msg.name, msg.position, msg.velocity, now)
        if self.cfg.ticks_on_states and not self._arm_joints.intersection(msg.name):
            return  # another device's state (a gripper driver) is merged, never a tick
        if self.cfg.timing == "realtime" and self.cfg.ticks_on_states:
            # every state received is a new reading; the one that follows each period
            # boundary starts the tick (AlignedTicks), whatever the driver's rate and stamps
            if self._aligned.tick(now):
                self._tick()
        elif self.cfg.ticks_on_states:
            stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            if stamp == self._last_stamp:  # a republished unchanged state is not a new tick
                return
            # Real time: the tick rate must not follow whoever publishes joint states (a
            # second publisher, a 100 Hz driver): at most one tick per half period.
            if self.cfg.timing == "realtime" and now - self._last_tick < 0.5 * self.cfg.period:
                return
            self._last_stamp = stamp
            self._tick()

    def _on_goal(self, msg: PointStamped) -> None:
        goal = np.array([msg.point.x, msg.point.y, msg.point.z])
        if not np.all(np.isfinite(goal)):
            self.get_logger().error(f"rejected goal on {topics.GOAL}: {goal.tolist()} not finite")
            return
        with self._lock:
            self._goal_request = goal

    def _on_object(self, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        position = np.array([p.x, p.y, p.z])
        quaternion = np.array([o.x, o.y, o.z, o.w])
        if not (np.all(np.isfinite(position)) and np.all(np.isfinite(quaternion))):
            self.get_logger().error(
                f"rejected pose on {topics.OBJECT_POSE}: not finite", throttle_duration_sec=2.0
            )
            return
        with self._lock:
            self._cube = (position, yaw_of_quaternion(quaternion))

    def observation(self, q: np.ndarray, qdot: np.ndarray) -> np.ndarray | None:
        """The task observation (mbrl.costs.tasks) from measured q, qdot (nj,), the goal and
        (push) the cube at the last tick; None while the goal or the cube is unknown."""
        cube = self._cube_tick
        if self._goal is None or (self.task == "push" and cube is None):
            return None
        ee = self.arm.ee(q)
        position, yaw, velocity = cube if cube is not None else (None, None, None)
        # The previous command minus q (the motion the servos still owe), if the model state
        # holds it; at a (re)start the command re-syncs to the measured q: nothing pending.
        pending = None
        if pending_in_obs(self.params):
            pending = np.zeros_like(q) if self._base is None else self._base - q
        return observation(
            self.task, q, qdot, ee, self._goal, position, yaw, velocity, pending=pending
        )

    def _sample_cube(self, restart: bool) -> None:
        """Push: this tick's cube pose and velocity estimate (mbrl.costs.tasks.CubeVelocity);
        the first tick after a (re)start reads zero, as an env episode's first does."""
        with self._lock:
            cube = self._cube
        if self.task != "push" or cube is None:
            return
        if restart:
            self._cube_velocity.reset()
        self._cube_tick = (cube[0], cube[1], self._cube_velocity.update(*cube))

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response):
        with self._lock:
            self._enable_request = bool(request.data)
        response.success = True
        response.message = f"controller {'enabled' if request.data else 'disabled'}"
        self.get_logger().info(response.message)
        return response

    def _on_set_parameters(self, params) -> SetParametersResult:
        for p in params:
            if p.name == "mode":
                if p.value not in CONTROL_MODES:
                    return SetParametersResult(
                        successful=False,
                        reason=f"mode must be one of {list(CONTROL_MODES)}, got {p.value!r}",
                    )
                with self._lock:
                    self._mode_request = p.value
            elif p.name == "tick_limit":
                if not isinstance(p.value, int) or p.value < 0:
                    return SetParametersResult(
                        successful=False, reason=f"tick_limit must be an int >= 0, got {p.value!r}"
                    )
                with self._lock:
                    self._tick_limit_request = p.value
        return SetParametersResult(successful=True)

    # -- the tick -------------------------------------------------------------------------
    def _on_timer(self) -> None:
        if not self.cfg.ticks_on_states:
            self._tick()
        elif (
            self.cfg.timing == "realtime"
            and time.perf_counter() - self._last_tick > 1.5 * self.cfg.period
        ):
            # joint_states trigger: the timer is the watchdog's heartbeat when states stop.
            # Not in lockstep: there the arm moves only on a command, so a stalled sim's
            # "stale" state needs no hold, and a hold would step the sim (the GPS graph test
            # recorded two such holds in a 0.3 s stall, cutting an episode's trajectory).
            if not self.watchdog.status(time.perf_counter()).ok:
                self._tick()

    def _apply_requests(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
            goal, self._goal_request = self._goal_request, None
            mode, self._mode_request = self._mode_request, None
            enable, self._enable_request = self._enable_request, None
            limit, self._tick_limit_request = self._tick_limit_request, None
        if limit is not None:
            self.tick_limit = limit
        if pending is not None:
            if self._goal is not None and not np.array_equal(pending.goal, self._goal):
                pending.set_goal(self._goal)
            self.get_logger().info(
                f"model version {pending.version} ({pending.kind}) swapped in at tick "
                f"{self.stats.ticks} (was version {self.model_version})"
            )
            self.bundle = pending
            self._publish_status()
        if goal is not None:
            self._set_goal(goal)
        if mode is not None and mode != self.mode:
            self.get_logger().info(f"mode {self.mode} -> {mode}")
            self.mode = mode
            self._base = None
        if mode is not None or enable is not None:
            self.gate.interrupt()
        if enable is not None and enable != self.enabled:
            self.enabled, self._base = enable, None
            self._sent_since_enable = 0
            # Starting to command: the next command is rate-limited from where the arm is
            # measured now (a sim reset between episodes moved it while disabled).
            self.limiter.forget()
            if enable:
                self.watchdog.rebase()

    @property
    def model_version(self) -> int:
        """Version of the model the actor runs (-1: none yet)."""
        return self.bundle.version if self.bundle is not None else -1

    def _set_goal(self, goal: np.ndarray) -> None:
        self._goal = goal
        self._ahead = None  # planned for the old goal
        if self.bundle is not None:
            self.bundle.set_goal(goal)
        with self._lock:
            self._lqr_plan = None  # planned for the old goal

    def _tick(self) -> None:
        start = time.perf_counter()
        self._last_tick = start
        self._apply_requests()
        status = self.watchdog.status(start)
        if status.state != self._safety.state:
            change = f"safety {self._safety.state} -> {status.state}"
            if status.ok:  # (rclpy wants one severity per call site)
                self.get_logger().info(change)
            else:
                self.get_logger().warning(f"{change}: {status.detail}; holding the arm")
            self._safety = status
            self._publish_diagnostics()
        self._safety = status
        if not self.enabled or status.q is None:
            return
        if self._goal is None and self.task == "reach":  # no goal: hold the EE where it is
            self._set_goal(self.arm.ee(status.q))
        self._sample_cube(restart=self._base is None)
        plan, sent = None, None
        if not status.ok:
            self._ahead = None
            # Hold the last command sent (never the measured position: a crafted or jumped
            # state must not become a command); nothing sent since enable: send nothing.
            command, self._base = self.limiter.hold_command(start), None
            self.stats.holds += 1
            self.gate.interrupt()
        else:
            if self._base is None:  # (re)start from the measured position
                self._base, self._ahead = self.limiter.hold(status.q), None
                if self.bundle is not None:
                    self.bundle.reset()
            u, plan = self._action(status, start)
            if u is None:
                # a hold on a good state is the zero action of next_command: the last command,
                # pulled back toward the measured q if a blocked joint was pushed back (no
                # wind-up), within the speed limit like any command
                last = self.limiter.last if self.limiter.last is not None else status.q
                hold = next_command(np.zeros_like(last), last, status.q,
                                    self.cfg.arm.max_increment)  # fmt: skip
                command = self.limiter.command(hold, status.q, start)
                self.stats.holds += 1
                self.gate.interrupt()
            else:
                # The env's rule (mbrl.costs.tasks.next_command): the increment on the previous
                # command (or the measured q, as the agent's preset says), never more than one
                # increment ahead of the measured q (no wind-up against a blocked joint), then
                # the position limits and the speed limit against the last command SENT.
                target = next_command(
                    u,
                    self._base,
                    status.q,
                    self.cfg.arm.max_increment,
                    agents.increment_base(self.params),
                )
                command = self.limiter.command(target, status.q, start)
                sent = self._observe_transition(status, command)  # (obs, action) or None
            self._base = command
        if command is None:
            return
        self._publish_command(command)
        sent_at = time.perf_counter()
        self._sent_since_enable += 1
        if self.tick_limit and self._sent_since_enable >= self.tick_limit:
            self.enabled, self._base = False, None
            self.limiter.forget()
            self.get_logger().info(f"tick_limit {self.tick_limit} reached: controller disabled")
        if sent is not None and self._base is not None and self._plans_ahead():
            plan = self._plan_ahead(*sent, start)
        done = time.perf_counter()
        self.stats.record(done - start, sent_at - status.received)
        self._after_tick(plan)

    def _plans_ahead(self) -> bool:
        """Real time with plan_ahead, mode mpc, an actor that replans each tick on a model."""
        return (
            self.cfg.plan_ahead
            and self.cfg.timing == "realtime"
            and self.mode == "mpc"
            and self.bundle is not None
            and getattr(self.bundle.actor, "plans_ahead", False)
        )

    def _plan_ahead(self, obs: np.ndarray, sent: np.ndarray, start: float):
        """After this tick's command is out: plan the next tick's from the model's prediction
        of the state that `sent` leads to from this tick's observation `obs` (taken before
        the command became the base, so its pending motion is this tick's; MPCActor.plan_next),
        under this tick's deadline."""
        bundle = self.bundle
        plan = bundle.actor.plan_next(obs, sent, self.cfg.deadline(start))
        self._count_miss(bundle, plan, start)
        self._ahead = (plan, self.stats.ticks + 1, start)  # for the next tick (record() counts)
        return plan

    def _planned_ahead(self, start: float):
        """The plan made on the previous tick for this one, if it still holds: the same goal
        and episode (both clear it) and no tick lost in between. A plan made by the artifact
        swapped out since is still a plan for this state and goal."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        plan, tick, made = ahead
        if tick != self.stats.ticks or start - made > 1.5 * self.cfg.period:
            return None
        if not plan.actions.shape[0]:
            return None
        self.stats.planned_ahead += 1
        return plan

    def _observe_transition(
        self, status: safety.SafetyStatus, command: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Hand the gate this tick's model state and the action actually sent (the command's
        increment on its base, as the fitter labels it from the recorded commands); returns
        (the task observation, that action (nj,)), or None without an observation."""
        obs = self.observation(status.q, status.qdot)
        if obs is None:
            self.gate.interrupt()
            return None
        base = self._base if agents.increment_base(self.params) == "command" else status.q
        sent = (command - base) / self.cfg.arm.max_increment
        self.gate.observe(obs[self._columns], sent)
        return obs, sent

    def check_model(self, payload, model) -> None:
        """The model gate for a received `model` (raises ModelRefused, a ValueError, with
        the reason); compared with the running model (the known one: only on "no motion")."""
        bundle = self.bundle
        running = getattr(bundle.actor, "model", None) if bundle is not None else None
        learned = bundle is not None and bundle.kind != "known"
        figures = self.gate.check(payload.version, payload.metrics, model, running, learned)
        self.get_logger().info(f"model version {payload.version} passed the gate: {figures}")

    def _action(self, status: safety.SafetyStatus, start: float):
        """(u (nj,) in the action bounds or None to hold, the Plan if one was made)."""
        if self.mode == "explore":
            return self._explorer.act() * self.cfg.explore_scale, None
        obs = self.observation(status.q, status.qdot)
        if obs is None:
            return None, None  # no goal (push) or no cube pose yet: hold
        bundle = self.bundle
        if bundle is None:
            return None, None  # no artifact yet (push, a policy before its first fit): hold
        if self.mode == "policy" or not bundle.plans:
            if self.mode != "policy" or bundle.plans:
                self.get_logger().warning(
                    f"mode {self.mode} cannot run a {bundle.kind} artifact (agent "
                    f"{self.cfg.agent.algo} runs in mode {self.agent.control_mode}): holding",
                    throttle_duration_sec=5.0,
                )
                return None, None
            try:
                return bundle.actor.act(obs), None
            except (ValueError, RuntimeError) as exc:
                self.bundle, self._artifact_note = None, f"policy failed: {exc}"
                self.get_logger().error(f"policy failed: {exc}; holding the arm")
                return None, None
        if self.mode == "lqr":
            return self._lqr_action(bundle, bundle.actor.state(obs))
        if self._plans_ahead():
            plan = self._planned_ahead(start)
            if plan is None:
                # The first tick on a new goal or episode (or after a lost tick): send the
                # zero increment now and plan the next tick's command after it is out.
                return np.zeros(self.arm.nj), None
        else:
            plan = bundle.actor.plan(obs, self.cfg.deadline(start))
            self._count_miss(bundle, plan, start)
        if plan.actions.shape[0] == 0:
            return None, None
        low, high = bundle.actor.action_bounds
        return np.clip(plan.actions[0], low, high).astype(float), plan

    def _count_miss(self, bundle: ActorBundle, plan, start: float) -> None:
        if plan.iterations == 0:
            self.stats.misses += 1
            # (The planner's IterationBudget halves its estimate on each such refusal, so one
            # slow iteration cannot lock planning out for more than a few ticks.)
            budget = bundle.mpc.planner.budget
            self.get_logger().warning(
                f"deadline miss at tick {self.stats.ticks}: no planner iteration fitted "
                f"(iteration estimate {1e3 * (budget.estimate or 0):.1f} ms, "
                f"{1e3 * (time.perf_counter() - start):.1f} ms into the tick); "
                "using the shifted previous plan",
                throttle_duration_sec=1.0,
            )
        self.stats.truncated += plan.iterations > 0 and not plan.complete

    def _publish_command(self, command: np.ndarray) -> None:
        if self.cfg.command_interface == "position":
            self._command_pub.publish(float64_multiarray(command))
        else:
            self._command_pub.publish(
                joint_trajectory_msg(self.cfg.arm.driver_names, [self.cfg.period], command[None])
            )


def main(args: list[str] | None = None) -> int:
    """Entry point (`mpc_controller` / `python -m mbrl.ros.mpc_controller --ros-args ...`)."""
    # Small-batch planning is fastest on one intra-op thread (docs/planners.md).
    torch.set_num_threads(1)
    # Three threads: the tick group, the input group and the model/lqr group run in parallel.
    return run_node(
        "mpc_controller", MpcController, args, executor=lambda: MultiThreadedExecutor(num_threads=3)
    )


__all__ = ["MpcController", "main"]

if __name__ == "__main__":
    sys.exit(main())

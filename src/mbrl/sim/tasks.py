"""Reach and push tasks on a SimArm as `gymnasium.Env`s (seeded, deterministic, saveable).

Action: joint-position increments in [-1, 1]^nj scaled by `config.max_increment` rad and
added to the previous command (like a `forward_position_controller`), one per control tick.
With `increment_from="measured"` they are added to the measured joint positions instead:
then (q, action) determines the command, so a state of q alone is Markov even when contact
holds the arm back. Either way the command stays within one increment of the measured
joints (mbrl.costs.tasks.next_command, the ROS controller's rule too): a blocked arm's
command cannot run away from q, unseen by the state, and jump when released.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium
import numpy as np

from mbrl.config import ArmConfig
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.costs.tasks import (
    CUBE_SIZE,
    MIN_GOAL_HEIGHT,
    CubeVelocity,
    EpisodeSpec,
    TaskSampler,
    next_command,
)
from mbrl.sim.arm import SimArm

__all__ = ["CUBE_SIZE", "MIN_GOAL_HEIGHT", "PushEnv", "ReachEnv", "TASKS", "make_env"]


@dataclasses.dataclass
class _TaskState:
    goal: np.ndarray
    goal_q: np.ndarray | None
    steps: int
    rng_state: dict
    task: Any = None  # the task's own state (push: the cube pose of the last tick)


class _ArmTaskEnv(gymnasium.Env):
    """Shared machinery: the arm, action scaling, truncation, rendering, save/restore."""

    _task_name: str  # the mbrl.costs.tasks task whose episode starts this env draws

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    goal_q: np.ndarray | None = None  # (nj,) a configuration reaching the goal, if known

    def __init__(
        self,
        config: ArmConfig | None = None,
        *,
        max_steps: int = 100,
        action_cost: float = 1e-3,
        success_threshold: float = 0.02,
        init_noise: float = 0.05,
        render_mode: str | None = None,
        seed: int | None = None,
        with_cube: bool = False,
        increment_from: str = "command",
        pending_in_obs: bool = False,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(
                f"render_mode {render_mode!r} unsupported; expected None or 'rgb_array'"
            )
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        if increment_from not in ("command", "measured"):
            raise ValueError(
                f"increment_from must be 'command' or 'measured', got {increment_from!r}"
            )
        self.increment_from = increment_from
        self.pending_in_obs = bool(pending_in_obs)
        self.config = config or ArmConfig()
        self.arm = SimArm(self.config, with_cube=with_cube, seed=seed)
        self.render_mode = render_mode
        self.max_steps = int(max_steps)
        self.action_cost = float(action_cost)
        self.success_threshold = float(success_threshold)
        self.init_noise = float(init_noise)
        self.metadata = {**self.metadata, "render_fps": self.config.control_rate_hz}
        nj = len(self.arm.joint_names)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (nj,), np.float32)
        self.observation_space = self._observation_box()
        self.sampler = TaskSampler(
            self._task_name,
            ForwardKinematics(self.config.urdf, self.config.ee_link, tuple(self.arm.joint_names)),
            self.arm.lower,
            self.arm.upper,
            self.arm.home,
            self.init_noise,
        )
        self.goal = np.zeros(3)
        self._steps = 0
        self._marker = self._make_marker()
        self._pristine = self.arm.save_state()
        self._saved: dict[int, _TaskState] = {}

    # -- subclass hooks ------------------------------------------------------------------
    def _observation_box(self) -> gymnasium.spaces.Box:
        """Generous finite bounds: joint limits +- 0.5 rad (+ 6 noise std), 4x the velocity
        limit + 10 rad/s, and positions within 3 reach + 1 m (PushEnv ends the episode
        when the cube falls off the table, so it cannot leave them)."""
        arm = self.arm
        slack = 0.5 + 6 * self.config.servo.noise_std
        vmax = 4 * arm.velocity_limit + 10
        span = 3 * arm.reach + 1
        n_points = self._n_points()
        low = [arm.lower - slack, -vmax, np.full(3 * n_points, -span)]
        high = [arm.upper + slack, vmax, np.full(3 * n_points, span)]
        if self._has_yaw():
            low.append(-np.ones(2))
            high.append(np.ones(2))
        low.append(np.full(3, -span))
        high.append(np.full(3, span))
        extra_low, extra_high = self._extra_bounds()
        low += extra_low
        high += extra_high
        if self.pending_in_obs:  # both ends clamped to the limits (+ the reading's slack)
            span = arm.upper - arm.lower + slack
            low.append(-span)
            high.append(span)
        # Same order as _obs: [q, qdot, points (ee, cube), yaw sin/cos, goal, extras].
        return gymnasium.spaces.Box(
            np.concatenate(low).astype(np.float32),
            np.concatenate(high).astype(np.float32),
            dtype=np.float32,
        )

    def _n_points(self) -> int:
        return 1  # the EE; push adds the cube

    def _has_yaw(self) -> bool:
        return False

    def _terminated(self) -> bool:
        return False

    def _reset_task(self, spec: EpisodeSpec, options: dict[str, Any]) -> None:
        raise NotImplementedError

    def _task_obs(self) -> list[np.ndarray]:
        return []

    def _extra_obs(self) -> list[np.ndarray]:
        return []  # after the goal, so the layout up to the goal is the same with or without

    def _task_state(self) -> Any:
        return None

    def _restore_task_state(self, state: Any) -> None:
        pass

    def _extra_bounds(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return [], []

    def _pending(self) -> list[np.ndarray]:
        """The previous command minus the measured q (nj) rad: the motion the servos still
        owe (latency, lag), last in the observation when `pending_in_obs`."""
        if not self.pending_in_obs:
            return []
        if self._steps == 0:  # no command sent yet (the controller re-syncs to q: 0 too)
            return [np.zeros(len(self.arm.joint_names))]
        return [self.arm.position_target - self.arm.joint_positions()]

    def _distance_and_reward(self) -> tuple[float, float]:
        raise NotImplementedError

    # -- gymnasium API -------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode: the start that mbrl.costs.tasks.TaskSampler draws from the
        seeded np_random (so env.reset(seed=s) and the ROS experiment node's episode s are the
        same), overridden by options "q" (nj,) start joints, rad; "goal" (3,) m; push also
        "cube" (3,) m start position and "cube_yaw" rad."""
        super().reset(seed=seed)
        options = dict(options or {})
        self.arm.restore_state(self._pristine)  # identical physics caches every episode
        spec = self.sampler.draw(self.np_random)
        self.arm.seed(spec.noise_seed)
        self._steps = 0
        self._reset_task(spec, options)
        q0 = np.asarray(options["q"], float) if "q" in options else spec.q0
        self.arm.reset(q0)
        self.arm.client.resetBasePositionAndOrientation(
            self._marker, self.goal.tolist(), (0, 0, 0, 1)
        )
        return self._obs(), {"distance": self._distance_and_reward()[0], "is_success": False}

    def step(self, action):
        a = np.asarray(action, dtype=float)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action has shape {a.shape}; expected {self.action_space.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action contains NaN/Inf: {a.tolist()}")
        a = np.clip(a, -1.0, 1.0)
        command = next_command(
            a, self.arm.position_target, self.arm.joint_positions(), self.config.max_increment,
            self.increment_from,
        )  # fmt: skip
        self.arm.set_position_targets(command)
        self.arm.step(1)
        self._steps += 1
        distance, reward = self._distance_and_reward()
        reward -= self.action_cost * float(a @ a)
        info = {"distance": distance, "is_success": bool(distance < self.success_threshold)}
        truncated = self._steps >= self.max_steps
        return self._obs(), reward, self._terminated(), truncated, info

    def render(self):
        """(H, W, 3) uint8 RGB frame when render_mode == "rgb_array", else None."""
        if self.render_mode == "rgb_array":
            return self.arm.render()
        return None

    def close(self) -> None:
        self.arm.close()

    # -- state ---------------------------------------------------------------------------
    def save_state(self) -> int:
        """Snapshot physics, servo state, goal, step count and the env's Generator."""
        state_id = self.arm.save_state()
        goal_q = None if self.goal_q is None else self.goal_q.copy()
        self._saved[state_id] = _TaskState(
            self.goal.copy(),
            goal_q,
            self._steps,
            self.np_random.bit_generator.state,
            self._task_state(),
        )
        return state_id

    def restore_state(self, state_id: int) -> None:
        """Return to a snapshot from `save_state`."""
        if state_id not in self._saved:
            raise KeyError(f"unknown env state id {state_id}; known: {sorted(self._saved)}")
        self.arm.restore_state(state_id)
        saved = self._saved[state_id]
        self.goal, self._steps = saved.goal.copy(), saved.steps
        self.goal_q = None if saved.goal_q is None else saved.goal_q.copy()
        self.np_random.bit_generator.state = saved.rng_state
        self._restore_task_state(saved.task)

    def discard_state(self, state_id: int) -> None:
        """Free a snapshot from `save_state` (planners that snapshot every tick call this)."""
        if self._saved.pop(state_id, None) is not None:
            self.arm.discard_state(state_id)

    # -- helpers -------------------------------------------------------------------------
    def _obs(self) -> np.ndarray:
        parts = [self.arm.joint_positions(), self.arm.joint_velocities(), self.arm.ee_position()]
        parts += [*self._task_obs(), self.goal, *self._extra_obs(), *self._pending()]
        return np.concatenate(parts).astype(np.float32)

    def _make_marker(self) -> int:
        """A visual-only sphere at the goal (no collision shape, so it never touches physics)."""
        c = self.arm.client
        visual = c.createVisualShape(c.GEOM_SPHERE, radius=0.012, rgbaColor=(0.1, 0.9, 0.2, 0.8))
        return c.createMultiBody(0, -1, visual, basePosition=(0, 0, -1))


class ReachEnv(_ArmTaskEnv):
    """Move the end effector to a random reachable goal; success within 2 cm.

    Observation (2 nj + 6,) float32: q (nj) rad, qdot (nj) rad/s, ee_pos (3) m, goal (3) m;
    with `pending_in_obs=True` then the previous command minus q (nj) rad
    (mbrl.costs.tasks.pending_span).
    Reward: -||ee - goal|| (m) - action_cost ||a||^2. Truncates after max_steps ticks.
    `goal_q` holds the sampled configuration whose EE is at the goal (an oracle for tests).
    """

    _task_name = "reach"

    def _reset_task(self, spec: EpisodeSpec, options: dict[str, Any]) -> None:
        if "goal" in options:
            self.goal, self.goal_q = _as_point(options["goal"], "options['goal']"), None
        else:
            self.goal, self.goal_q = spec.goal, spec.goal_q

    def _distance_and_reward(self) -> tuple[float, float]:
        distance = float(np.linalg.norm(self.arm.ee_position() - self.goal))
        return distance, -distance


VELOCITY_SOURCES = ("difference", "bullet")


class PushEnv(_ArmTaskEnv):
    """Push a 4 cm cube across the table to a goal; success when the cube is within 3 cm.

    The cube starts in front of the arm at 40-60 % of its reach; the goal lies 4-10 cm from
    it on the table (kept inside 30-70 % of the reach).
    Observation (2 nj + 15,) float32: q, qdot, ee_pos (3), cube_pos (3), sin/cos cube yaw (2),
    goal (3), cube velocity (4) (2 nj + 11 without `object_velocity`).
    Reward: -||cube - goal|| - reach_weight ||ee - cube|| - action_cost ||a||^2.

    Optional extras, appended after the goal in this order (so every index up to the goal is
    the same with or without them):
    - `object_velocity=True` (the default; part of the task observation of
      mbrl.costs.tasks): the cube's linear velocity (3) m/s and yaw rate (1) rad/s. A cube
      that is already sliding keeps moving with no contact; without its velocity the state
      does not say so. `velocity_source="difference"` (default) estimates it from the
      observed poses of this tick and the last (mbrl.costs.tasks.CubeVelocity), as the ROS
      controller does from /cube_pose and a real arm must; "bullet" reads the simulator's
      velocity at the end of the tick (for comparisons).
    - `command_in_obs=True`: the commanded joint positions (nj) rad the servos track (the
      arm's `position_target`), which the measured q does not determine when increments add
      to the previous command or the servo has latency.
    `extras_layout()` gives their (start, stop) indices.
    """

    _task_name = "push"

    def __init__(
        self,
        config: ArmConfig | None = None,
        *,
        reach_weight: float = 0.5,
        object_velocity: bool = True,
        velocity_source: str = "difference",
        command_in_obs: bool = False,
        **kwargs,
    ):
        kwargs.setdefault("success_threshold", 0.03)
        if velocity_source not in VELOCITY_SOURCES:
            raise ValueError(
                f"velocity_source {velocity_source!r}; expected one of {list(VELOCITY_SOURCES)}"
            )
        self.reach_weight = float(reach_weight)
        self.object_velocity, self.command_in_obs = bool(object_velocity), bool(command_in_obs)
        self.velocity_source = velocity_source
        super().__init__(config, with_cube=True, **kwargs)
        self._cube_velocity = CubeVelocity(self.config.control_period)

    def extras_layout(self) -> dict[str, tuple[int, int]]:
        """Where the optional extras sit in the observation: name -> (start, stop)."""
        nj = len(self.arm.joint_names)
        start, out = 2 * nj + 11, {}
        if self.object_velocity:
            out["object_velocity"] = (start, start + 4)
            start += 4
        if self.command_in_obs:
            out["command"] = (start, start + nj)
        return out

    def _extra_obs(self) -> list[np.ndarray]:
        out = []
        if self.object_velocity and self.velocity_source == "bullet":
            linear, angular = self.arm.client.getBaseVelocity(self.arm.cube)
            out.append(np.array([*linear, angular[2]]))
        elif self.object_velocity:
            pos, quat = self.arm.cube_pose()
            yaw = self.arm.client.getEulerFromQuaternion(quat)[2]
            out.append(self._cube_velocity.update(pos, yaw))
        if self.command_in_obs:
            out.append(self.arm.position_target)
        return out

    def _extra_bounds(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        low, high = [], []
        if self.object_velocity:
            # A shoved cube leaves at ~1 m/s (docs/loops.md); 50 m/s and 500 rad/s are far off.
            low.append(np.array([-50.0, -50.0, -50.0, -500.0]))
            high.append(-low[-1])
        if self.command_in_obs:
            low.append(self.arm.lower)  # commands are clamped to the joint limits
            high.append(self.arm.upper)
        return low, high

    def _task_state(self) -> Any:
        last = self._cube_velocity.last
        return None if last is None else (last[0].copy(), last[1])

    def _restore_task_state(self, state: Any) -> None:
        self._cube_velocity.last = None if state is None else (state[0].copy(), state[1])

    def _n_points(self) -> int:
        return 2

    def _has_yaw(self) -> bool:
        return True

    def _terminated(self) -> bool:
        # Off the table the cube is lost for good: end the episode as a failure.
        return bool(self.arm.cube_pose()[0][2] < -CUBE_SIZE)

    def _reset_task(self, spec: EpisodeSpec, options: dict[str, Any]) -> None:
        cube = _as_point(options["cube"], "options['cube']") if "cube" in options else spec.cube
        yaw = float(options.get("cube_yaw", spec.cube_yaw))
        self.arm.set_cube_pose(cube, self.arm.client.getQuaternionFromEuler((0, 0, yaw)))
        goal = options.get("goal")
        self.goal = spec.goal if goal is None else _as_point(goal, "options['goal']")
        self._cube_velocity.reset()  # the cube was just placed: the first tick reads zero

    def _task_obs(self) -> list[np.ndarray]:
        pos, quat = self.arm.cube_pose()
        yaw = self.arm.client.getEulerFromQuaternion(quat)[2]
        return [pos, np.array([np.sin(yaw), np.cos(yaw)])]

    def _distance_and_reward(self) -> tuple[float, float]:
        cube = self.arm.cube_pose()[0]
        distance = float(np.linalg.norm(cube - self.goal))
        approach = float(np.linalg.norm(self.arm.ee_position() - cube))
        return distance, -distance - self.reach_weight * approach


def _as_point(value, what: str) -> np.ndarray:
    point = np.asarray(value, dtype=float)
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        raise ValueError(f"{what} must be 3 finite numbers (m), got {value!r}")
    return point


TASKS: dict[str, type[_ArmTaskEnv]] = {"reach": ReachEnv, "push": PushEnv}


def make_env(task: str, config: ArmConfig | None = None, **kwargs) -> gymnasium.Env:
    """Build the `task` env ("reach" or "push") on `config` (default: the bundled SO arm).

    kwargs go to the env: max_steps, action_cost, success_threshold, init_noise,
    render_mode, seed (measurement-noise seed before the first reset), increment_from
    ("command" or "measured"), pending_in_obs (reach), reach_weight, object_velocity,
    velocity_source,
    command_in_obs (push).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    return TASKS[task](config, **kwargs)

"""The reach and push tasks as facts both drivers share: the observation layout, how an
observation is built from measured quantities, the success distance, and the one sampler of
episode starts (goal, cube pose, start joints) used for training and held-out goals.

ROS-free and simulator-free on purpose: the PyBullet envs (mbrl.sim.tasks) and the ROS
experiment node (mbrl.ros) draw the same episode from the same seed here, so "held-out goal
i" means the same goal in `mbrl experiment` and through the ROS graph.
Observation (dobs,): reach [q, qdot, ee (3), goal (3)]; push [q, qdot, ee (3), cube (3),
sin/cos cube yaw (2), goal (3), cube velocity (3), cube yaw rate (1)]; q rad, qdot rad/s,
positions m, velocities m/s and rad/s, in the arm's base frame. The cube velocity is
estimated by differencing the cube pose between control ticks (`CubeVelocity`), the same
in the sim env, in recorded episodes and on the ROS controller: a camera or a pose topic
gives only poses.
With `pending_in_obs` (reach) the pending motion follows the goal: the previous joint
command minus the measured q (nj) rad.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from mbrl.costs.layout import StateLayout

if TYPE_CHECKING:  # torch loads where forward kinematics runs, not where a task is named
    from mbrl.costs.kinematics import ForwardKinematics

TASKS = ("reach", "push")
# Held-out evaluation episodes are drawn from seeds EVAL_SEED + i, i < eval_goals: the same
# episodes for every algorithm, training seed and driver, disjoint from the training seeds
# (drawn below EVAL_SEED from the run's Generator).
EVAL_SEED = 1_000_000_000
SUCCESS_THRESHOLD = {"reach": 0.02, "push": 0.03}  # m: EE to goal / cube to goal
MIN_GOAL_HEIGHT = 0.02  # m above the table; lower goals would need the gripper to scrape it
CUBE_SIZE = 0.04  # m edge; small enough for the ~0.4 m reach of the SO-101 class
_MAX_TRIES = 500


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task {task!r} unknown; expected one of {list(TASKS)}")
    return task


def obs_layout(task: str, nj: int) -> StateLayout:
    """Where q, ee, object and goal sit in the `task` observation (module docstring)."""
    check_task(task)
    ee = (2 * nj, 2 * nj + 3)
    if task == "reach":
        return StateLayout(q=(0, nj), ee=ee, goal=(2 * nj + 3, 2 * nj + 6))
    return StateLayout(
        q=(0, nj), ee=ee, obj=(2 * nj + 3, 2 * nj + 6), goal=(2 * nj + 8, 2 * nj + 11)
    )


OBJECT_VELOCITY_SIZE = 4  # push: cube velocity (3) m/s and yaw rate (1) rad/s, after the goal


def obs_size(task: str, nj: int) -> int:
    return 2 * nj + (6 if check_task(task) == "reach" else 11 + OBJECT_VELOCITY_SIZE)


def object_velocity_span(nj: int) -> tuple[int, int]:
    """(start, stop) of the cube velocity block in the push observation."""
    return (2 * nj + 11, 2 * nj + 11 + OBJECT_VELOCITY_SIZE)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (np.asarray(angle, float) + np.pi) % (2 * np.pi) - np.pi


def cube_velocities(
    positions: np.ndarray, yaws: np.ndarray, period: float, first: np.ndarray | None = None
) -> np.ndarray:
    """Cube poses sampled at consecutive control ticks -> the velocity estimate at each tick.

    Args:
        positions: (T, 3) m; yaws: (T,) rad; period: s between ticks (the nominal control
            period, not message stamps: lockstep wall-clock intervals are irregular).
        first: (4,) the estimate at row 0 (default zeros: nothing seen before it).
    Returns:
        (T, 4): [(p_k - p_{k-1}) / period, wrap(yaw_k - yaw_{k-1}) / period], m/s and rad/s.
    """
    if not period > 0:
        raise ValueError(f"the cube velocity needs a control period > 0 s, got {period}")
    positions = np.asarray(positions, float).reshape(-1, 3)
    yaws = np.asarray(yaws, float).reshape(-1)
    out = np.zeros((len(positions), OBJECT_VELOCITY_SIZE))
    if first is not None and len(out):
        out[0] = first
    out[1:, :3] = np.diff(positions, axis=0) / period
    out[1:, 3] = _wrap(np.diff(yaws)) / period
    return out


class CubeVelocity:
    """The live form of `cube_velocities`: one pose per control tick in, the estimate out.

    `reset()` at an episode start (the cube was just placed: the first tick reads zero).
    """

    def __init__(self, period: float) -> None:
        if not period > 0:
            raise ValueError(f"the cube velocity needs a control period > 0 s, got {period}")
        self.period = float(period)
        self.last: tuple[np.ndarray, float] | None = None

    def reset(self) -> None:
        self.last = None

    def update(self, position: np.ndarray, yaw: float) -> np.ndarray:
        """The cube pose at this tick (position (3,) m, yaw rad) -> (4,) velocity estimate."""
        position = np.asarray(position, float).copy()
        out = np.zeros(OBJECT_VELOCITY_SIZE)
        if self.last is not None:
            out = cube_velocities(
                np.stack([self.last[0], position]), [self.last[1], yaw], self.period
            )[1]
        self.last = (position, float(yaw))
        return out


def pending_span(task: str, nj: int) -> tuple[int, int]:
    """Where the optional pending motion (nj) sits in the reach observation."""
    if check_task(task) != "reach":
        raise ValueError("only the reach observation carries the pending motion")
    start = obs_size(task, nj)
    return start, start + nj


def observation(
    task: str,
    q: np.ndarray,
    qdot: np.ndarray,
    ee: np.ndarray,
    goal: np.ndarray,
    cube: np.ndarray | None = None,
    cube_yaw: float | None = None,
    cube_velocity: np.ndarray | None = None,
    pending: np.ndarray | None = None,
) -> np.ndarray:
    """The task observation (dobs,) float64 from measured q, qdot (nj,), ee (3,), goal (3,)
    and, for push, the cube position (3,) m, yaw (rad) and velocity estimate (4,) (m/s,
    rad/s; `CubeVelocity`); `pending` (nj,) rad, the previous command minus q, is appended
    when given (reach, pending_in_obs)."""
    parts = [np.asarray(q, float), np.asarray(qdot, float), np.asarray(ee, float)]
    after = []
    if check_task(task) == "push":
        if cube is None or cube_yaw is None or cube_velocity is None:
            raise ValueError("the push observation needs the cube position, yaw and velocity")
        velocity = np.asarray(cube_velocity, float).reshape(-1)
        if velocity.shape != (OBJECT_VELOCITY_SIZE,):
            raise ValueError(
                f"cube_velocity has {velocity.size} values; expected {OBJECT_VELOCITY_SIZE} "
                "(vx, vy, vz m/s, yaw rate rad/s)"
            )
        parts += [np.asarray(cube, float), np.array([np.sin(cube_yaw), np.cos(cube_yaw)])]
        after = [velocity]
    if pending is not None:
        after.append(np.asarray(pending, float))
    return np.concatenate([*parts, np.asarray(goal, float), *after])


def distance(task: str, obs: np.ndarray, nj: int) -> np.ndarray:
    """obs (..., dobs) -> (...) m: EE to goal (reach) or cube to goal (push)."""
    layout = obs_layout(task, nj)
    point = layout.obj if task == "push" else layout.ee
    obs = np.asarray(obs, float)
    return np.linalg.norm(
        StateLayout.take(obs, point) - StateLayout.take(obs, layout.goal), axis=-1
    )


INCREMENT_BASES = ("command", "measured")


def next_command(
    action: np.ndarray,
    previous: np.ndarray,
    measured: np.ndarray,
    max_increment: float,
    base: str = "command",
) -> np.ndarray:
    """The joint-position command (nj,) rad that an action (nj,) in [-1, 1] means, the same
    in the sim envs and on the ROS controller.

    The increment action * max_increment is added to the previous command (`base`
    "command", a forward_position_controller client) or to the measured joints
    ("measured"); then the command is kept within one increment of the measured joints, so
    an arm held back (contact, a blocked joint) never accumulates a hidden command that
    jumps free when released (no wind-up).
    """
    if base not in INCREMENT_BASES:
        raise ValueError(f"increment base {base!r}; expected one of {list(INCREMENT_BASES)}")
    measured = np.asarray(measured, float)
    start = measured if base == "measured" else np.asarray(previous, float)
    command = start + np.clip(np.asarray(action, float), -1.0, 1.0) * max_increment
    return np.clip(command, measured - max_increment, measured + max_increment)


def tip_to_object(task: str, obs: np.ndarray, nj: int) -> np.ndarray | None:
    """obs (..., dobs) -> (...) m from the end effector to the object (push), else None: how
    close the tip came to the cube, the first thing a pushing policy must learn."""
    layout = obs_layout(task, nj)
    if layout.obj is None:
        return None
    obs = np.asarray(obs, float)
    gap = StateLayout.take(obs, layout.ee) - StateLayout.take(obs, layout.obj)
    return np.linalg.norm(gap, axis=-1)


def yaw_of_quaternion(quat: np.ndarray) -> float:
    """Yaw (rad) about z of an (x, y, z, w) quaternion."""
    x, y, z, w = (float(v) for v in quat)
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


@dataclasses.dataclass(frozen=True)
class EpisodeSpec:
    """How one episode starts.

    Attributes:
        goal: (3,) m. q0: (nj,) start joints, rad. noise_seed: seeds the simulator's
            measurement noise for the episode. cube / cube_yaw: push start pose (m, rad).
        goal_q: (nj,) a configuration whose EE is at the (reach) goal.
    """

    goal: np.ndarray
    q0: np.ndarray
    noise_seed: int
    cube: np.ndarray | None = None
    cube_yaw: float | None = None
    goal_q: np.ndarray | None = None


class TaskSampler:
    """Draws episode starts for `task` on an arm described by its FK and joint limits.

    Reach goals: the EE at joints uniform within the limits, at least MIN_GOAL_HEIGHT above
    the table (reachable by construction). Push: the cube in front of the arm at 40-60 % of
    its reach, random yaw; the goal 4-10 cm from it on the table, inside 30-70 % of the reach.
    Start joints: home + uniform noise of +-init_noise rad.

    Args:
        task: "reach" or "push"; fk: forward kinematics; lower / upper / home: (nj,) rad.
    """

    def __init__(
        self,
        task: str,
        fk: ForwardKinematics,
        lower: np.ndarray,
        upper: np.ndarray,
        home: np.ndarray,
        init_noise: float = 0.05,
    ) -> None:
        self.task, self.fk = check_task(task), fk
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.home, self.init_noise = np.asarray(home, float), float(init_noise)
        self.reach = fk.reach

    def ee(self, q: np.ndarray) -> np.ndarray:
        """q (..., nj) rad -> end effector (..., 3) m."""
        import torch

        with torch.no_grad():
            return self.fk(torch.as_tensor(q, dtype=self.fk.dtype)).double().numpy()

    def draw(self, rng: np.random.Generator) -> EpisodeSpec:
        """One episode start; the draws happen in a fixed order so that any Generator in the
        same state gives the same episode (the sim env passes its seeded np_random)."""
        noise_seed = int(rng.integers(2**63))
        cube = yaw = goal_q = None
        if self.task == "reach":
            goal_q, goal = self._reach_goal(rng)
        else:
            cube, yaw, goal = self._push_start(rng)
        q0 = self.home + rng.uniform(-self.init_noise, self.init_noise, self.home.shape)
        return EpisodeSpec(goal, np.clip(q0, self.lower, self.upper), noise_seed, cube, yaw, goal_q)

    def episode(self, seed: int) -> EpisodeSpec:
        """The episode of `seed` (what env.reset(seed=seed) starts)."""
        return self.draw(np.random.default_rng(seed))

    def held_out(self, n: int, seed: int = EVAL_SEED) -> list[EpisodeSpec]:
        """The n held-out evaluation episodes (seeds seed + i)."""
        return [self.episode(seed + i) for i in range(n)]

    def _reach_goal(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        for _ in range(_MAX_TRIES):
            q = rng.uniform(self.lower, self.upper)
            goal = self.ee(q)
            if goal[2] >= MIN_GOAL_HEIGHT:
                return q, goal
        raise RuntimeError(
            f"no goal above {MIN_GOAL_HEIGHT} m in {_MAX_TRIES} draws within the joint limits "
            f"{self.lower.tolist()} .. {self.upper.tolist()}"
        )

    def _push_start(self, rng: np.random.Generator) -> tuple[np.ndarray, float, np.ndarray]:
        reach = self.reach
        r, phi = rng.uniform(0.4 * reach, 0.6 * reach), rng.uniform(-0.6, 0.6)
        cube = np.array([r * np.cos(phi), r * np.sin(phi), CUBE_SIZE / 2])
        yaw = float(rng.uniform(-np.pi, np.pi))
        for _ in range(_MAX_TRIES):
            d, psi = rng.uniform(0.04, 0.10), rng.uniform(-np.pi, np.pi)
            goal = cube[:2] + d * np.array([np.cos(psi), np.sin(psi)])
            if 0.3 * reach <= np.linalg.norm(goal) <= 0.7 * reach:
                return cube, yaw, np.array([goal[0], goal[1], CUBE_SIZE / 2])
        raise RuntimeError(f"no push goal found near cube at {cube.tolist()} for reach {reach}")


def train_seed(rng: np.random.Generator) -> int:
    """A seed for a training episode, drawn from the run's Generator; always below EVAL_SEED
    so training never sees an evaluation episode."""
    return int(rng.integers(EVAL_SEED))

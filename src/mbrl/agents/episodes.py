"""Recorded episodes (MCAP files of the collector or the loop) -> the task trajectories the
learners consume: (obs (T+1, dobs), actions (T, nj)) in the layout of mbrl.costs.tasks.

The joint states, the object pose and the goal are sampled at every command tick
(mbrl.data.episode_transitions); the end effector comes from FK of the measured joints, so a
controller that builds its observation from /joint_states sees exactly what was learned.
The cube velocity (push) is the difference of the cube poses sampled at consecutive ticks
over the control period (mbrl.costs.tasks.cube_velocities), zero at a segment's first tick:
what the controller estimates live from /cube_pose at its ticks, and what the env observes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mbrl.agents.arm import ArmModel
from mbrl.costs.tasks import check_task, cube_velocities
from mbrl.data.episode_transitions import TransitionLayout, episode_segments
from mbrl.data.episodes import OBJECT_TOPIC, Episode

ACTION_BASES = ("command", "measured")  # what an increment is added to (mbrl.sim.tasks)

Trajectory = tuple[np.ndarray, np.ndarray]


def _yaw(quat: np.ndarray) -> np.ndarray:
    """(N, 4) x, y, z, w -> (N,) yaw about z, rad."""
    x, y, z, w = quat.T
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def task_trajectories(
    episodes: Sequence[Episode],
    task: str,
    arm: ArmModel,
    action_base: str = "command",
    max_gap: float = 3.0,
    with_pending: bool = False,
) -> list[Trajectory]:
    """Every contiguous piece of `episodes` as a task trajectory.

    Args:
        task: "reach" or "push" (push episodes must hold the object pose).
        arm: joint names (looked up by name in each episode), FK, max_increment.
        action_base: "command": u_k = (c_k - c_{k-1}) / max_increment (increments of the
            previous command); "measured": u_k = (c_k - q_k) / max_increment.
        max_gap: see TransitionLayout.
        with_pending: append the pending motion (previous command - q, nj, rad) after the
            goal, as the env's and the controller's `pending_in_obs` observation
            (mbrl.costs.tasks).
    """
    check_task(task)
    if action_base not in ACTION_BASES:
        raise ValueError(f"action_base {action_base!r}; expected one of {list(ACTION_BASES)}")
    action = "increment" if action_base == "command" else "relative"
    layout = TransitionLayout(
        arm.joint_names, "q_qd", action, arm.max_increment, max_gap, command=with_pending
    )
    nj, out = arm.nj, []
    extra_at = 2 * nj + (nj if with_pending else 0)  # sampled streams follow the states
    for episode in episodes:
        # The goal is not in any model state: an episode without one (a hand-driven
        # recording) still teaches the dynamics, with NaN goal columns.
        has_goal = len(episode.goal_stamps) > 0
        extra = [(episode.goal_stamps, episode.goals)] if has_goal else []
        if task == "push":
            if len(episode.object_stamps) == 0:
                raise ValueError(
                    f"{episode.path or 'episode'}: no {OBJECT_TOPIC} recorded; a push episode "
                    "needs the cube pose (is the sim's with_cube on?)"
                )
            extra.insert(0, (episode.object_stamps, episode.object_poses))
        for x, u in episode_segments(episode, layout, extra):
            q, qdot = x[:, :nj], x[:, nj : 2 * nj]
            parts, after = [q, qdot, arm.ee(q)], []
            if task == "push":
                pose = x[:, extra_at : extra_at + 7]
                yaw = _yaw(pose[:, 3:])
                parts += [pose[:, :3], np.sin(yaw)[:, None], np.cos(yaw)[:, None]]
                after = [cube_velocities(pose[:, :3], yaw, arm.period)]
            parts.append(x[:, -3:] if has_goal else np.full((len(x), 3), np.nan))  # the goal
            if with_pending:  # reach: the previous command minus q (push has none)
                after.append(x[:, 2 * nj : 3 * nj] - q)
            out.append((np.hstack([*parts, *after]), u))
    return out

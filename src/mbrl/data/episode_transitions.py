"""Recorded episodes (joint states + commands on their own clocks) -> model transitions (x, u, x').

The joint state is sampled at each command tick: x_k is the latest joint state received at or
before command k, u_k encodes command k, and x_{k+1} is the state sampled at the next command
tick. A trajectory is cut into segments where the command stream pauses (gap), where no fresh
joint state arrived between two ticks, or where a state is missing/NaN for a joint, so every
transition spans exactly one control period of real motion. ROS-free.
Shapes: nj joints, Tc commands, Ts states, T transitions of a segment, dx, du.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from mbrl.data.dataset import TransitionDataset
from mbrl.data.episodes import Episode

STATES = ("q", "q_qd")
ACTIONS = ("increment", "relative", "position")


@dataclasses.dataclass(frozen=True)
class TransitionLayout:
    """What x and u mean; shipped with every model so a controller can check it agrees.

    Attributes:
        joint_names: (nj,) joints in model order (looked up by NAME in the episode).
        state: "q" -> x = q (nj) rad; "q_qd" -> x = [q, qdot] (2 nj) rad, rad/s.
        action: how command c_k (nj) rad becomes u_k (nj):
            "increment": (c_k - c_{k-1}) / max_increment, the ReachEnv action (the first
                command of an episode is taken relative to the measured q);
            "relative": (c_k - q_k) / max_increment, relative to the measured position;
            "position": c_k itself, rad.
        command: x also holds the previous command c_{k-1} (nj) rad, after the joint states
            (the target a servo with a tick of latency is still moving to; the measured q
            for the first tick, as the controller re-syncs to it).
        max_increment: rad, the scale of "increment"/"relative" actions (ArmConfig.max_increment).
        max_gap: a command interval longer than max_gap x the median interval that also
            saw more than max_gap x the median number of new joint states cuts the
            trajectory (the controller paused while the arm went on). Both, because in
            lockstep the wall-clock intervals are irregular but one state follows each
            command, while a real pause lets states pile up.
    """

    joint_names: tuple[str, ...]
    state: str = "q_qd"
    action: str = "increment"
    max_increment: float = 0.1
    max_gap: float = 3.0
    command: bool = False

    def __post_init__(self) -> None:
        if not self.joint_names:
            raise ValueError("TransitionLayout.joint_names is empty; list the model's joints")
        if self.state not in STATES:
            raise ValueError(f"state {self.state!r}; expected one of {list(STATES)}")
        if self.action not in ACTIONS:
            raise ValueError(f"action {self.action!r}; expected one of {list(ACTIONS)}")
        if not self.max_increment > 0:
            raise ValueError(f"max_increment must be > 0 rad, got {self.max_increment}")
        if not self.max_gap > 1:
            raise ValueError(f"max_gap must be > 1 (a multiple of the period), got {self.max_gap}")

    @property
    def dx(self) -> int:
        return len(self.joint_names) * ((2 if self.state == "q_qd" else 1) + int(self.command))

    @property
    def du(self) -> int:
        return len(self.joint_names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the "layout" header of /mbrl/model)."""
        return dict(dataclasses.asdict(self), joint_names=list(self.joint_names))


def _reorder(episode: Episode, names: Sequence[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(episode.joint_names)}
    missing = [n for n in names if n not in index]
    if missing:
        where = episode.path or "episode"
        raise ValueError(
            f"{where}: joint(s) {missing} not recorded; it has {list(episode.joint_names)}, "
            f"the layout expects {list(names)}"
        )
    return np.array([index[n] for n in names])


def episode_segments(
    episode: Episode,
    layout: TransitionLayout,
    extra: Sequence[tuple[np.ndarray, np.ndarray]] = (),
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Contiguous trajectories of one episode: [(X (T+1, dx + de), U (T, du)), ...], T >= 1.

    Args:
        extra: other streams sampled like the joint states, each (stamps (Te,) s, values
            (Te, d)): the latest value at or before each tick is appended to x (e.g. the
            object pose and the goal); ticks before a stream's first value are unusable.
    Raises:
        ValueError naming the episode when a joint of the layout was not recorded.
    """
    cols = _reorder(episode, layout.joint_names)
    tc = np.asarray(episode.command_stamps, float)
    ts = np.asarray(episode.state_stamps, float)
    if len(tc) < 2 or len(ts) == 0:
        return []
    commands = np.asarray(episode.commands, float)[:, cols]
    q = np.asarray(episode.positions, float)[:, cols]
    states = q if layout.state == "q" else np.hstack([q, episode.velocities[:, cols]])
    period = float(np.median(np.diff(tc)))
    # sample instants: every command tick, plus for the last command's x' the first state
    # after it (the next tick's, in real time and in lockstep alike)
    after = ts[ts > tc[-1]]
    sample_t = np.append(tc, after[0] if len(after) else tc[-1] + period)
    idx = np.searchsorted(ts, sample_t, side="right") - 1  # latest state at/before the tick
    valid_state = (idx >= 0) & np.all(np.isfinite(states[np.maximum(idx, 0)]), axis=1)
    x = states[np.maximum(idx, 0)]
    q_at = q[np.maximum(idx, 0)]
    if layout.command:  # row k: the command before tick k (row 0: the measured q)
        x = np.hstack([x, np.vstack([q_at[:1], commands])])
    for stamps, values in extra:
        if len(stamps) == 0:
            return []  # a stream that never arrived: no usable transition at all
        values = np.asarray(values, float).reshape(len(stamps), -1)
        at = np.searchsorted(np.asarray(stamps, float), sample_t, side="right") - 1
        sampled = values[np.maximum(at, 0)]
        valid_state &= (at >= 0) & np.all(np.isfinite(sampled), axis=1)
        x = np.hstack([x, sampled])
    if layout.action == "position":
        u = commands
    elif layout.action == "relative":
        u = (commands - q_at[:-1]) / layout.max_increment
    else:
        previous = np.vstack([q_at[:1], commands[:-1]])
        u = (commands - previous) / layout.max_increment
    # a sample is the state AT its tick only if a new state arrived since the previous tick
    # (else it is an older tick's state); transition k (x_k, u_k, x_{k+1}) is usable when
    # both samples are valid and fresh, the action is finite and the next tick came on time
    fresh = np.append(True, idx[1:] > idx[:-1])
    good = valid_state & fresh
    dt = np.diff(sample_t)
    new_states = np.diff(idx)
    typical = max(1.0, float(np.median(new_states)))
    paused = (dt > layout.max_gap * period) & (new_states > layout.max_gap * typical)
    ok = good[:-1] & good[1:] & np.all(np.isfinite(u), axis=1) & ~paused
    segments = []
    k = 0
    while k < len(ok):
        if not ok[k]:
            k += 1
            continue
        end = k
        while end < len(ok) and ok[end]:
            end += 1
        segments.append((x[k : end + 1].copy(), u[k:end].copy()))
        k = end
    return segments


def transitions_from_episodes(
    episodes: Sequence[Episode], layout: TransitionLayout, first_id: int = 0
) -> TransitionDataset:
    """All segments of `episodes` as one dataset; each segment gets its own episode id
    (first_id, first_id + 1, ...) so train/holdout splits never cut through a trajectory.
    Rewards are zero: costs are evaluated by the planner, not stored.

    Raises:
        ValueError when no episode yields a single transition, or as episode_segments.
    """
    xs, us = [], []
    for episode in episodes:
        for x, u in episode_segments(episode, layout):
            xs.append(x)
            us.append(u)
    if not xs:
        raise ValueError(
            f"no transitions in {len(episodes)} episode(s): each needs >= 2 commands with "
            "fresh, finite joint states"
        )
    return TransitionDataset.from_episodes(xs, us, first_id=first_id)


def equal_length_trajectories(
    dataset: TransitionDataset, min_length: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The dataset's trajectories cut to their common length, for time-varying models.

    Returns (X (K, T+1, dx), U (K, T, du)) with T the shortest trajectory of length >=
    min_length (shorter ones are dropped), or None when fewer than 2 trajectories qualify.
    """
    pieces = []
    for eid in dataset.episode_ids:
        part = dataset.subset(dataset.episode == eid)
        order = np.argsort(part.t)
        if len(order) >= min_length:
            x = np.vstack([part.obs[order], part.next_obs[order][-1:]])
            pieces.append((x, part.act[order]))
    if len(pieces) < 2:
        return None
    T = min(len(u) for _, u in pieces)
    return np.stack([x[: T + 1] for x, _ in pieces]), np.stack([u[:T] for _, u in pieces])

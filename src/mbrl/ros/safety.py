"""Safety rules of the controller (DESIGN.md sec. 5) as plain Python: no rclpy, testable alone.

A JointStateWatchdog judges every joint-state reading (by NAME: missing joints, NaN/Inf) and
its age (stale after N control periods); CommandLimiter clamps commands to position limits
and a maximum speed. Times are seconds of one monotonic clock chosen by the caller.
Shapes: nj controlled joints; q (nj,) rad, qdot (nj,) rad/s.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Sequence

import numpy as np

# Safety states reported on /diagnostics. Only OK lets the controller's action through;
# every other state holds the arm at its last good measured position.
OK = "ok"
NO_STATE = "no_state"  # nothing good received yet: nothing to hold, nothing is published
STALE = "stale"
NAN = "nan"
BAD_NAMES = "bad_names"
SAFETY_STATES = (OK, NO_STATE, STALE, NAN, BAD_NAMES)


@dataclasses.dataclass(frozen=True)
class SafetyStatus:
    """The watchdog's verdict at one instant.

    Attributes:
        state: one of SAFETY_STATES.
        detail: human-readable reason naming the joints/values/age (empty when OK).
        q: (nj,) last good measured positions, rad, or None before the first good reading.
        qdot: (nj,) their velocities, rad/s (from the message, else finite differences).
        received: monotonic time of the reading behind `q`, s (nan before the first).
    """

    state: str
    detail: str = ""
    q: np.ndarray | None = None
    qdot: np.ndarray | None = None
    received: float = math.nan

    @property
    def ok(self) -> bool:
        return self.state == OK


class JointStateWatchdog:
    """Judges joint-state readings by joint NAME and their age.

    Args:
        joints: the controlled joint names (nj), in the controller's order.
        stale_after: a reading older than this (s) makes the state STALE.
    """

    def __init__(self, joints: Sequence[str], stale_after: float) -> None:
        if not joints:
            raise ValueError("JointStateWatchdog needs at least one joint name")
        if not (stale_after > 0 and math.isfinite(stale_after)):
            raise ValueError(f"stale_after must be a positive number of seconds, got {stale_after}")
        self.joints = tuple(joints)
        self.stale_after = float(stale_after)
        self._good: tuple[np.ndarray, np.ndarray, float] | None = None  # q, qdot, time
        self._last_received = math.nan  # any reading, good or bad
        self._bad: tuple[str, str] | None = None  # (state, detail) of the latest reading
        # observe() and status() may run on different executor threads: one verdict must
        # never mix two readings.
        self._lock = threading.RLock()

    def observe(
        self,
        names: Sequence[str],
        positions: Sequence[float],
        velocities: Sequence[float],
        received: float,
    ) -> SafetyStatus:
        """Judge one reading (a JointState's name/position/velocity fields) received at
        `received` s; returns the verdict for this reading (age 0)."""
        with self._lock:
            return self._observe(names, positions, velocities, received)

    def _observe(self, names, positions, velocities, received: float) -> SafetyStatus:
        self._last_received = received
        index = {n: i for i, n in enumerate(names)}
        missing = [j for j in self.joints if j not in index]
        if missing or len(positions) != len(names):
            detail = (
                f"joint(s) {missing} missing from joint_states; expected {len(self.joints)} "
                f"joints {list(self.joints)}, got {list(names)}"
                if missing
                else f"joint_states has {len(names)} names but {len(positions)} positions"
            )
            self._bad = (BAD_NAMES, detail)
            return self.status(received)
        q = np.array([positions[index[j]] for j in self.joints], dtype=float)
        has_velocity = len(velocities) == len(names)
        if has_velocity:
            qdot = np.array([velocities[index[j]] for j in self.joints], dtype=float)
        else:  # no velocity field: finite difference of the last good reading
            qdot = np.zeros_like(q)
            if self._good is not None and received > self._good[2]:
                qdot = (q - self._good[0]) / (received - self._good[2])
        bad = ~np.isfinite(q) | ~np.isfinite(qdot)
        if bad.any():
            culprits = [self.joints[i] for i in np.flatnonzero(bad)]
            self._bad = (
                NAN,
                f"joint_states contains NaN/Inf for {culprits}: position {q.tolist()}, "
                f"velocity {qdot.tolist()}",
            )
            return self.status(received)
        self._bad = None
        self._good = (q, qdot, received)
        return self.status(received)

    def status(self, now: float) -> SafetyStatus:
        """The verdict at time `now` (s): the latest reading's state, or STALE by age."""
        with self._lock:
            return self._status(now)

    def _status(self, now: float) -> SafetyStatus:
        q = qdot = None
        received = math.nan
        if self._good is not None:
            q, qdot, received = self._good
        if math.isnan(self._last_received):
            return SafetyStatus(NO_STATE, "no joint_states received yet")
        age = now - self._last_received
        if age > self.stale_after:
            state, detail = (
                STALE,
                f"joint_states stale: last message {age:.3f} s ago "
                f"(limit {self.stale_after:.3f} s)",
            )
        elif self._bad is not None:
            state, detail = self._bad
        elif q is None:
            state, detail = NO_STATE, "no valid joint_states yet"
        else:
            return SafetyStatus(OK, "", q, qdot, received)
        return SafetyStatus(state, detail, q, qdot, received)


class CommandLimiter:
    """Clamps position commands to joint limits and to a maximum speed per control period.

    Args:
        lower / upper: (nj,) position limits, rad.
        max_velocity: (nj,) speed limit, rad/s.
        period: control period, s; one command may move at most max_velocity * period.
    """

    def __init__(
        self, lower: np.ndarray, upper: np.ndarray, max_velocity: np.ndarray, period: float
    ) -> None:
        self.lower = np.asarray(lower, dtype=float)
        self.upper = np.asarray(upper, dtype=float)
        vel = np.asarray(max_velocity, dtype=float)
        if not (self.lower.shape == self.upper.shape == vel.shape) or self.lower.ndim != 1:
            raise ValueError(
                f"lower {self.lower.shape}, upper {self.upper.shape}, max_velocity "
                f"{vel.shape} must all be (nj,)"
            )
        if np.any(self.lower >= self.upper) or np.any(vel <= 0) or not period > 0:
            raise ValueError("need lower < upper, max_velocity > 0 and period > 0")
        self.max_step = vel * float(period)  # (nj,) rad per command

    def clamp(self, target: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        """target (nj,) rad -> the command: within max_step of `previous` (if given), then
        within the position limits. A non-finite target raises ValueError (never sent)."""
        target = np.asarray(target, dtype=float)
        if target.shape != self.lower.shape or not np.all(np.isfinite(target)):
            raise ValueError(
                f"command {target.tolist()} must be {self.lower.shape[0]} finite positions"
            )
        if previous is not None:
            target = np.clip(target, previous - self.max_step, previous + self.max_step)
        return np.clip(target, self.lower, self.upper)

    def hold(self, q: np.ndarray) -> np.ndarray:
        """The command that holds the arm at measured q (nj,) rad: q inside the limits."""
        return np.clip(np.asarray(q, dtype=float), self.lower, self.upper)

"""Safety rules of the controller (DESIGN.md sec. 5) as plain Python: no rclpy, testable alone.

A JointStateWatchdog merges joint-state readings from any number of publishers by joint NAME
and judges each joint's latest reading (NaN/Inf, out of range, a jump faster than the joint
can move) and its age; CommandLimiter makes every command, holds included, move at most the
speed limit from the last command SENT. Times are seconds of one monotonic clock chosen by
the caller. Shapes: nj controlled joints; q (nj,) rad, qdot (nj,) rad/s.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Sequence

import numpy as np

# Safety states reported on /diagnostics. Only OK lets the controller's action through;
# every other state holds the arm at its last command.
OK = "ok"
NO_STATE = "no_state"  # nothing good received yet: nothing to hold, nothing is published
STALE = "stale"
NAN = "nan"
BAD_NAMES = "bad_names"
OUT_OF_RANGE = "out_of_range"  # finite but absurd: far outside the joint range or speed
JUMP = "jump"  # moved further since the last good reading than the joint can move
SAFETY_STATES = (OK, NO_STATE, STALE, NAN, BAD_NAMES, OUT_OF_RANGE, JUMP)
# Plausibility bounds of a measured state (the arm's own limits, with room for encoder noise
# and transients: a reading outside them is not a state the arm can be in).
RANGE_MARGIN = 0.25  # rad beyond the position limits
SPEED_FACTOR = 10.0  # |qdot| at most this times the joint's velocity limit
JUMP_FACTOR = 1.5  # a reading may move at most this times velocity limit x elapsed time...
JUMP_TOLERANCE = 0.02  # ...plus this (rad: noise, quantisation)


@dataclasses.dataclass(frozen=True)
class SafetyStatus:
    """The watchdog's verdict at one instant.

    Attributes:
        state: one of SAFETY_STATES.
        detail: human-readable reason naming the joints/values/age (empty when OK).
        q: (nj,) last good measured positions, rad, or None before every joint had one.
        qdot: (nj,) their velocities, rad/s (from the message, else finite differences).
        received: monotonic time of the oldest joint reading behind `q`, s (nan before).
    """

    state: str
    detail: str = ""
    q: np.ndarray | None = None
    qdot: np.ndarray | None = None
    received: float = math.nan

    @property
    def ok(self) -> bool:
        return self.state == OK


@dataclasses.dataclass(frozen=True)
class Plausibility:
    """What a measured state of the arm can be (disabled when not given to the watchdog).

    Attributes:
        lower / upper: (nj,) position limits, rad; readings beyond RANGE_MARGIN are absurd.
        velocity: (nj,) the joints' velocity limits, rad/s (the physical ones, not a
            command cap): bound |qdot| and how far a joint moves between two readings.
        period: control period, s: the smallest time a reading is taken to cover (in
            lockstep the sim's states come faster than wall time says they could).
        confirm_after: a jumped position that persists this long (s, over >= 3 readings,
            with no good reading between) is accepted: the arm really is there.
    """

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    period: float
    confirm_after: float


class JointStateWatchdog:
    """Merges joint-state readings by joint NAME (several publishers: an arm driver, a
    gripper driver) and judges each joint's latest reading and its age.

    Args:
        joints: the controlled joint names (nj), in the controller's order.
        stale_after: a joint whose latest reading is older than this (s) makes the state
            STALE (no message at all) or BAD_NAMES (messages come but do not name it).
        plausible: the bounds of a real state (None: only NaN/Inf and names are checked).
    """

    def __init__(
        self, joints: Sequence[str], stale_after: float, plausible: Plausibility | None = None
    ) -> None:
        if not joints:
            raise ValueError("JointStateWatchdog needs at least one joint name")
        if not (stale_after > 0 and math.isfinite(stale_after)):
            raise ValueError(f"stale_after must be a positive number of seconds, got {stale_after}")
        self.joints = tuple(joints)
        self.stale_after = float(stale_after)
        self.plausible = plausible
        n = len(self.joints)
        self._index = {j: i for i, j in enumerate(self.joints)}
        self._q = np.full(n, np.nan)  # last good reading of each joint
        self._qdot = np.full(n, np.nan)
        self._t = np.full(n, np.nan)  # ...and when it came
        self._named = np.full(n, np.nan)  # last time any reading named the joint
        self._raw = np.full(n, np.nan)  # latest reading of each joint, good or not
        self._raw_qdot = np.full(n, np.nan)
        self._bad: list[tuple[str, str] | None] = [None] * n  # verdict of the latest reading
        self._candidate: list[tuple[np.ndarray, float, float, int] | None] = [None] * n
        self._last_received = math.nan  # any message, good or bad
        self._message_bad: tuple[str, str] | None = None  # a message we could not parse
        self._latest_names: list[str] = []
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
        `received` s; returns the verdict after it (age 0)."""
        with self._lock:
            self._observe(list(names), positions, velocities, received)
            return self._status(received)

    def _observe(self, names: list[str], positions, velocities, received: float) -> None:
        self._last_received = received
        self._latest_names = names[:20]
        if len(positions) != len(names) or len(set(names)) != len(names):
            detail = (
                f"joint_states has {len(names)} names but {len(positions)} positions"
                if len(positions) != len(names)
                else f"joint_states names a joint twice: {names[:20]}"
            )
            self._message_bad = (BAD_NAMES, detail)
            return
        ours = [(i, self._index[n]) for i, n in enumerate(names) if n in self._index]
        if not ours:
            return  # another device's joints (a gripper driver): not ours to judge
        self._message_bad = None
        has_velocity = len(velocities) == len(names)
        for i, j in ours:
            q = float(positions[i])
            qdot = float(velocities[i]) if has_velocity else math.nan
            self._named[j] = received
            self._raw[j], self._raw_qdot[j] = q, qdot
            self._bad[j] = self._judge(j, q, qdot, has_velocity, received)

    def _judge(self, j: int, q: float, qdot: float, has_velocity: bool, received: float):
        """Accept joint j's reading or return (state, detail) of why not."""
        name = self.joints[j]
        if not has_velocity:  # no velocity field: finite difference of the last good reading
            dt = received - self._t[j]
            qdot = (q - self._q[j]) / dt if dt > 0 else 0.0
            qdot = qdot if math.isfinite(qdot) else 0.0
        if not (math.isfinite(q) and math.isfinite(qdot)):
            return (
                NAN,
                f"joint_states contains NaN/Inf for ['{name}']: position {q}, velocity {qdot}",
            )
        p = self.plausible
        if p is not None:
            lo, hi, v = p.lower[j] - RANGE_MARGIN, p.upper[j] + RANGE_MARGIN, p.velocity[j]
            if not (lo <= q <= hi) or abs(qdot) > SPEED_FACTOR * v:
                return OUT_OF_RANGE, (
                    f"joint_states for '{name}' is not a state the arm can be in: position "
                    f"{q:.6g} rad (range [{lo:.3f}, {hi:.3f}]), velocity {qdot:.6g} rad/s "
                    f"(limit {SPEED_FACTOR * v:.3f})"
                )
            if math.isfinite(self._t[j]):
                reach = self._reach(j, received - self._t[j])
                if abs(q - self._q[j]) > reach and not self._confirmed(j, q, received):
                    return JUMP, (
                        f"joint_states for '{name}' jumped {q - self._q[j]:+.4f} rad in "
                        f"{received - self._t[j]:.3f} s (at most {reach:.4f} rad at "
                        f"{p.velocity[j]:.3f} rad/s)"
                    )
        self._candidate[j] = None
        self._q[j], self._qdot[j], self._t[j] = q, qdot, received
        return None

    def _reach(self, j: int, dt: float) -> float:
        p = self.plausible
        return JUMP_FACTOR * p.velocity[j] * max(dt, p.period) + JUMP_TOLERANCE

    def _confirmed(self, j: int, q: float, received: float) -> bool:
        """A jumped position is the truth once it persisted confirm_after s over >= 3
        consecutive consistent readings of the joint (no good reading between them)."""
        found = self._candidate[j]
        if found is not None:
            q0, first, last, count = found
            if abs(q - q0) <= self._reach(j, received - last):
                if count + 1 >= 3 and received - first >= self.plausible.confirm_after:
                    return True
                self._candidate[j] = (q, first, received, count + 1)
                return False
        self._candidate[j] = (q, received, received, 1)
        return False

    def rebase(self) -> None:
        """Accept each joint's latest finite, in-range reading even if it jumped (called when
        the controller starts commanding: what it measures then is where the arm is)."""
        with self._lock:
            for j, bad in enumerate(self._bad):
                if bad is not None and bad[0] == JUMP:
                    self._q[j], self._t[j] = self._raw[j], self._named[j]
                    self._qdot[j] = self._raw_qdot[j] if math.isfinite(self._raw_qdot[j]) else 0.0
                    self._bad[j], self._candidate[j] = None, None

    def status(self, now: float) -> SafetyStatus:
        """The verdict at time `now` (s): bad readings first, then staleness by age."""
        with self._lock:
            return self._status(now)

    def _status(self, now: float) -> SafetyStatus:
        have = bool(np.all(np.isfinite(self._t)))
        q = self._q.copy() if have else None
        qdot = self._qdot.copy() if have else None
        received = float(np.min(self._t)) if have else math.nan
        if math.isnan(self._last_received):
            return SafetyStatus(NO_STATE, "no joint_states received yet")
        age = now - self._last_received
        bad = [b for b in self._bad if b is not None]
        silent = [self.joints[j] for j in range(len(self.joints))
                  if not now - self._named[j] <= self.stale_after]  # fmt: skip
        if age > self.stale_after:
            state, detail = (
                STALE,
                f"joint_states stale: last message {age:.3f} s ago "
                f"(limit {self.stale_after:.3f} s)",
            )
        elif self._message_bad is not None:
            state, detail = self._message_bad
        elif bad:
            state, detail = bad[0][0], "; ".join(b[1] for b in bad)
        elif silent:
            state, detail = (
                BAD_NAMES,
                f"joint(s) {silent} missing from joint_states for over "
                f"{self.stale_after:.3f} s; expected {len(self.joints)} joints "
                f"{list(self.joints)}, latest message named {self._latest_names}",
            )
        elif q is None:
            state, detail = NO_STATE, "no valid joint_states yet"
        else:
            return SafetyStatus(OK, "", q, qdot, received)
        return SafetyStatus(state, detail, q, qdot, received)


class CommandLimiter:
    """Every command within the position limits and within the speed limit of the last
    command sent: actions, holds, the first command after an enable, a mode change.

    Args:
        lower / upper: (nj,) position limits, rad.
        max_velocity: (nj,) speed limit, rad/s.
        period: control period, s; one command may move at most max_velocity * period.
        timed: real time: a command may move only max_velocity x the time since the last
            one (capped at one period), so commands sent faster than the control rate (a
            tick driven by joint states) cannot move the arm faster. Lockstep (False): each
            command is one period of the sim's time, whatever the wall clock says.
    """

    def __init__(
        self,
        lower: np.ndarray,
        upper: np.ndarray,
        max_velocity: np.ndarray,
        period: float,
        timed: bool = False,
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
        self.velocity, self.period, self.timed = vel, float(period), bool(timed)
        self.max_step = vel * float(period)  # (nj,) rad per command
        self.last: np.ndarray | None = None  # the last command sent (None: none since forget)
        self._last_time = math.nan

    def clamp(self, target: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        """target (nj,) rad -> within max_step of `previous` (if given), then within the
        position limits. A non-finite target raises ValueError (never sent). Stateless."""
        target = np.asarray(target, dtype=float)
        if target.shape != self.lower.shape or not np.all(np.isfinite(target)):
            raise ValueError(
                f"command {target.tolist()} must be {self.lower.shape[0]} finite positions"
            )
        if previous is not None:
            target = np.clip(target, previous - self.max_step, previous + self.max_step)
        return np.clip(target, self.lower, self.upper)

    def hold(self, q: np.ndarray) -> np.ndarray:
        """q (nj,) rad inside the position limits (a re-synchronised base)."""
        return np.clip(np.asarray(q, dtype=float), self.lower, self.upper)

    def command(self, target: np.ndarray, measured: np.ndarray, now: float) -> np.ndarray:
        """The command to send for `target` (nj,) rad at time `now` (s): within the speed
        limit of the last command sent, or of the `measured` (nj,) position if none was
        sent since forget(); within the position limits. Recorded as the last command."""
        reference = self.last if self.last is not None else self.hold(measured)
        step = self.max_step
        if self.timed and self.last is not None:
            step = self.velocity * min(max(now - self._last_time, 0.0), self.period)
        target = np.asarray(target, dtype=float)
        if target.shape != self.lower.shape or not np.all(np.isfinite(target)):
            raise ValueError(
                f"command {target.tolist()} must be {self.lower.shape[0]} finite positions"
            )
        out = np.clip(np.clip(target, reference - step, reference + step), self.lower, self.upper)
        self.last, self._last_time = out, now
        return out

    def hold_command(self, now: float) -> np.ndarray | None:
        """A hold: the last command sent again (the arm keeps still where it was told to
        be); None if nothing was sent since forget() (nothing safe to hold: send nothing)."""
        if self.last is None:
            return None
        self._last_time = now
        return self.last.copy()

    def forget(self) -> None:
        """The controller stopped commanding (disabled): the next command starts from the
        measured position, where the arm is then."""
        self.last, self._last_time = None, math.nan

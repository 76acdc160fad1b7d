"""The Plan every planner returns, the deadline bookkeeping they share, and plan shifting.

Shapes (glossary in mbrl.config): T horizon, dx state, du action. A Plan is plain numpy.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

Clock = Callable[[], float]


@dataclasses.dataclass(frozen=True)
class Plan:
    """A nominal trajectory, optional time-varying feedback, and how it was found.

    Attributes:
        actions: (T, du) nominal actions; actions[0] is the one to apply now.
        states: (T+1, dx) predicted states under the model, or None if not computed.
        K: (T, du, dx) feedback gains (u = actions[t] + K[t] (x - states[t]) for the
            LQR family, where k is already folded into actions), or None.
        k: (T, du) feed-forward terms of the last backward pass, or None.
        cost: the planner's estimate of the plan's cost (nan when not evaluated).
        iterations: optimisation iterations completed in this call.
        complete: False when the deadline cut planning short.
    """

    actions: np.ndarray
    states: np.ndarray | None = None
    K: np.ndarray | None = None
    k: np.ndarray | None = None
    cost: float = float("nan")
    iterations: int = 0
    complete: bool = True

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])

    def shifted(self, fill: np.ndarray | None = None) -> Plan:
        """The plan one tick later: drop the first step, repeat the last (or `fill` (du,))."""
        last = self.actions[-1] if fill is None else np.asarray(fill, dtype=self.actions.dtype)
        actions = np.concatenate([self.actions[1:], last[None]], axis=0)
        states = None
        if self.states is not None:
            states = np.concatenate([self.states[1:], self.states[-1:]], axis=0)
        K = None if self.K is None else np.concatenate([self.K[1:], self.K[-1:]], axis=0)
        k = None if self.k is None else np.concatenate([self.k[1:], self.k[-1:]], axis=0)
        return Plan(actions, states, K, k, float("nan"), 0, False)


class Planner(Protocol):
    """The planner seam (DESIGN.md sec. 3)."""

    def reset(self) -> None:
        """Forget the warm start (a new episode or goal)."""
        ...

    def plan(self, x0: np.ndarray, deadline: float | None = None) -> Plan:
        """x0 (dx,) -> Plan; returns before `deadline` (planner clock, s) if one is given."""
        ...


class IterationBudget:
    """Decides whether another iteration fits before a deadline.

    An iteration may start only if `now + estimate <= deadline`, where the estimate is the
    longest recent iteration (kept across calls, so the first iteration of a tick is also
    predicted; it decays by 0.9 per iteration). With no estimate yet, an iteration starts
    while the deadline is in the future. The clock is injectable so the logic is tested with
    a fake clock.

    Refusal decay: when not even the first iteration of a call fits, the estimate is halved,
    but not below the median of the last few iterations. Otherwise one inflated measurement
    (a page fault, a descheduled core: 100x is common on a loaded machine) would refuse
    every later call, and, because the estimate only decays when iterations run, it would
    never recover. The lock-out is now at most log2(inflation) calls, while a short deadline
    does not talk the budget into an iteration it measured to be longer (the median floor)
    for `probe_every` calls in a row; then the floor is dropped and the next call runs one
    iteration to measure again. A floor measured under a load that has passed would
    otherwise refuse every later call: in real time the arm held still for the rest of the
    run (docs/real_arm.md).
    """

    refusal_decay = 0.5
    probe_every = 5  # refused calls in a row before one probe iteration re-measures
    _RECENT = 9  # iterations whose median floors the refusal decay (needs >= 3)

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self.clock = clock
        self.estimate: float | None = None
        self._laps = 0
        self._refused = 0
        self._recent: collections.deque[float] = collections.deque(maxlen=self._RECENT)

    def start(self, deadline: float | None) -> None:
        self._deadline = deadline
        self._t = self.clock()
        self._laps = 0

    def may_start(self) -> bool:
        """True if one more iteration (of the estimated length) ends before the deadline."""
        ok = self.fits(self.estimate)
        if not ok and self._laps == 0 and self.estimate is not None:
            self._refused += 1
            if self._refused >= self.probe_every:  # measure again at the next call
                self._refused, self.estimate = 0, None
                self._recent.clear()
            else:
                floor = float(np.median(self._recent)) if len(self._recent) >= 3 else 0.0
                self.estimate = max(floor, self.estimate * self.refusal_decay)
        return ok

    def fits(self, seconds: float | None) -> bool:
        """True if work taking `seconds` (None: unknown, treated as 0) ends by the deadline."""
        if self._deadline is None:
            return True
        return self.clock() + (seconds or 0.0) <= self._deadline

    def lap(self) -> None:
        """Call after each iteration: updates the duration estimate."""
        now = self.clock()
        took = now - self._t
        self._t = now
        self._laps += 1
        self._refused = 0
        self._recent.append(took)
        self.estimate = took if self.estimate is None else max(took, 0.9 * self.estimate)

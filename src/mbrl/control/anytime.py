"""Anytime MPC: one replan per control tick under a hard deadline, with miss accounting.

The wrapped planner stops starting iterations that would not finish before the deadline
(see plan.IterationBudget). If it finished none, the previous plan shifted by one tick is
used instead and the tick counts as a miss; a plan cut short after some iterations is used
as found and counts as truncated. Time comes from an injectable clock.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from mbrl.control.plan import Clock, Plan, Planner


@dataclasses.dataclass
class DeadlineStats:
    """Counters since the last reset: ticks, misses (shifted previous plan used), truncated
    (fewer iterations than configured), late (returned after a deadline that was still
    ahead at the call; should stay 0),
    and the last/max planning time in clock seconds."""

    ticks: int = 0
    misses: int = 0
    truncated: int = 0
    late: int = 0
    last_seconds: float = 0.0
    max_seconds: float = 0.0


class AnytimeMPC:
    """Receding-horizon control around any Planner; `act(x, deadline)` gives the action."""

    def __init__(self, planner: Planner, du: int, *, clock: Clock = time.perf_counter) -> None:
        self.planner, self.du, self.clock = planner, du, clock
        self.stats = DeadlineStats()
        self._previous: Plan | None = None

    def reset(self) -> None:
        """New episode or goal: forget the warm start and the counters."""
        self.planner.reset()
        self.stats = DeadlineStats()
        self._previous = None

    def warmup(self, x: np.ndarray) -> Plan:
        """Plan once without a deadline (not counted) so the planner learns how long an
        iteration takes; until then the first iteration of a tick is not predicted."""
        plan = self.planner.plan(x, None)
        self._previous = plan
        return plan

    def plan(self, x: np.ndarray, deadline: float | None = None) -> Plan:
        """x (dx,) -> the plan to execute now; never returns later than the planner allows."""
        start = self.clock()
        plan = self.planner.plan(x, deadline)
        now = self.clock()
        s = self.stats
        s.ticks += 1
        s.last_seconds = now - start
        s.max_seconds = max(s.max_seconds, s.last_seconds)
        if deadline is not None and start <= deadline < now:
            s.late += 1
        if plan.iterations == 0:
            s.misses += 1
            if self._previous is not None:
                plan = self._previous.shifted()
        elif not plan.complete:
            s.truncated += 1
        self._previous = plan
        return plan

    def act(self, x: np.ndarray, deadline: float | None = None) -> np.ndarray:
        """x (dx,) -> action (du,) to apply now (zeros if no plan exists yet)."""
        plan = self.plan(x, deadline)
        if plan.actions.shape[0] == 0:
            return np.zeros(self.du)
        return plan.actions[0].copy()

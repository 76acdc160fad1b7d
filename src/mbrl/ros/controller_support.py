"""Bookkeeping of the mpc_controller node kept out of its tick: tick statistics for
/diagnostics, the check of an announced model's layout, the standalone episode schedule, and
which joint states start a real-time tick.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import numpy as np

from mbrl.ros.transport import MODEL_TOPIC, ModelPayload

WINDOW = 20000  # ticks kept for the tick-time / latency percentiles on /diagnostics


class AlignedTicks:
    """Real-time ticks aligned to the joint states: a tick starts on the first new state at
    or after each period boundary (up to `slack` periods early), so every command is
    planned from the freshest state and reaches the arm before its next state, whatever
    the state rate (the sim's 20 Hz, a ros2_control driver's 50 Hz). A fixed-rate timer
    beside the arm's own clock instead samples states of drifting age and lets two
    commands land between two servo updates (docs/real_arm.md).

    Args:
        period: control period, s. slack: fraction of a period a state may come early.
    """

    def __init__(self, period: float, slack: float = 0.25) -> None:
        if period <= 0 or not 0 <= slack < 1:
            raise ValueError(f"need period > 0 s and 0 <= slack < 1; got {period}, {slack}")
        self.period, self.slack = float(period), float(slack) * float(period)
        self.due = -np.inf

    def tick(self, now: float) -> bool:
        """A new joint state arrived at `now` (s, monotonic): does it start a tick?"""
        if now < self.due - self.slack:
            return False
        # on schedule: the next boundary; fell more than a period behind: restart from now
        self.due = now + self.period if now > self.due + self.period else self.due + self.period
        return True


@dataclasses.dataclass
class TickStats:
    """Counters since start and windows of recent tick times and latencies (s).

    Attributes:
        ticks: ticks that published a command.
        misses: mpc ticks where no planner iteration fitted before the deadline (the
            shifted previous plan was used), or lqr ticks with no plan covering them.
        truncated: mpc ticks whose plan was cut short by the deadline (used as found).
        holds: ticks that held the arm (unsafe joint states, or mode policy without policy).
        planned_ahead: mpc ticks whose command was planned on the previous tick, from the
            model's prediction of this tick's state (real time, `plan_ahead`).
        rejected_models: /mbrl/model messages refused (hash, truncation, layout, file).
        last_reject: the reason of the latest refusal.
    """

    ticks: int = 0
    misses: int = 0
    truncated: int = 0
    holds: int = 0
    planned_ahead: int = 0
    rejected_models: int = 0
    last_reject: str = ""
    tick_s: collections.deque = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=WINDOW)
    )
    latency_s: collections.deque = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=WINDOW)
    )

    def record(self, tick_seconds: float, latency_seconds: float) -> None:
        """One tick: its duration and the time from its joint state's receipt to the command."""
        self.ticks += 1
        self.tick_s.append(tick_seconds)
        self.latency_s.append(latency_seconds)

    def values(self) -> dict[str, str]:
        """Counters and percentiles (ms, 3 decimals) as /diagnostics key/values."""

        def pct(samples: collections.deque, q: float) -> str:
            a = np.asarray(samples) * 1e3
            return f"{np.percentile(a, q):.3f}" if a.size else "nan"

        return {
            "ticks": str(self.ticks),
            "deadline_misses": str(self.misses),
            "truncated": str(self.truncated),
            "holds": str(self.holds),
            "planned_ahead": str(self.planned_ahead),
            "tick_ms_p50": pct(self.tick_s, 50),
            "tick_ms_p99": pct(self.tick_s, 99),
            "tick_ms_max": pct(self.tick_s, 100),
            "latency_ms_p50": pct(self.latency_s, 50),
            "latency_ms_p99": pct(self.latency_s, 99),
            "rejected_models": str(self.rejected_models),
            "last_reject": self.last_reject,
        }


def check_model_payload(payload: ModelPayload, kind: str, expected: dict[str, Any]) -> None:
    """Refuse an artifact the controller's actor cannot run; ValueError names version and
    reason.

    The kind must be the agent's (mbrl.agents.registry: "ensemble" for the MPC agents,
    whose mode lqr linearises it in-node; "policy" for Algorithm 4). The header's layout
    (algorithm, task, model-state columns or observation size, joints, action convention
    and scale) must be the controller's own, key by key: an artifact of other inputs or
    outputs would act nonsense.
    """
    if payload.kind != kind:
        raise ValueError(
            f"{MODEL_TOPIC} version {payload.version} is a {payload.kind!r} artifact; this "
            f"controller's agent runs {kind!r} artifacts"
        )
    layout = payload.layout or {}
    differ = {k: (layout.get(k), v) for k, v in expected.items() if layout.get(k) != v}
    if differ:
        detail = "; ".join(f"{k}: model {a!r}, controller {b!r}" for k, (a, b) in differ.items())
        raise ValueError(f"{MODEL_TOPIC} version {payload.version}: layout differs ({detail})")


class EpisodeSchedule:
    """Standalone mode: consecutive episodes of `length` ticks, a new goal for each.

    `step()` is called once per tick and returns the events to publish, in order:
    ("end", id) for the episode just finished, ("start", id) for the one beginning.
    """

    def __init__(self, length: int) -> None:
        self.length = int(length)
        self.episode_id = 0
        self._ticks = -1  # no episode yet

    def step(self) -> list[tuple[str, int]]:
        events: list[tuple[str, int]] = []
        if self._ticks >= 0:
            self._ticks += 1
            if self._ticks < self.length:
                return events
            events.append(("end", self.episode_id))
        self.episode_id += 1
        self._ticks = 0
        events.append(("start", self.episode_id))
        return events

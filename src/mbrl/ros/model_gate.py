"""The controller's model gate (issue 16, part 3), ROS-free: a new model replaces the running
one only if it was fitted on enough data, predicts finite values, predicts the controller's own
recent transitions better than "no motion" does where the running model does, and no worse
than the running learned model, by a stated margin.

Shapes: dx model state, du = nj actions; x (N, dx), u (N, du) as the model sees them
(mbrl.agents.mpc model columns; u = the command's increment / max_increment).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
from typing import Any

import numpy as np


class ModelRefused(ValueError):
    """The gate refused a model; the message says which check failed, with its numbers."""


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """Attributes:
    min_transitions: a model fitted on fewer transitions (its metrics' num_transitions)
        is refused: five tiny episodes must not replace a good model.
    margin: the held-out check passes if the new model's one-step MSE on the recent
        transitions is at most (1 + margin) x the running learned model's, plus tol.
    min_check: recent transitions needed before the held-out check runs (fewer: only
        the data and finiteness checks).
    window: recent transitions kept (the newest; a ring buffer).
    tol: absolute slack of the held-out check (MSE units of the model state).
    floor: absolute slack of the no-motion check (rad^2 for reach: 0.01 rad rms).
    """

    min_transitions: int = 30
    margin: float = 0.5
    min_check: int = 40
    window: int = 400
    tol: float = 1e-6
    floor: float = 1e-4

    def __post_init__(self) -> None:
        if self.min_transitions < 0 or self.min_check < 1 or self.window < self.min_check:
            raise ValueError(
                f"need model_min_transitions >= 0 and 1 <= min_check <= window; got "
                f"{self.min_transitions}, {self.min_check}, {self.window}"
            )
        if not (self.margin >= 0 and math.isfinite(self.margin)):
            raise ValueError(f"model_gate_margin must be a finite number >= 0, got {self.margin}")


def one_step_mse(model: Any, x: np.ndarray, u: np.ndarray, x_next: np.ndarray) -> float:
    """Mean squared error of model.predict's mean against x_next (nan if not finite)."""
    mean, _ = model.predict(np.asarray(x, np.float32), np.asarray(u, np.float32))
    err = float(np.mean((np.asarray(mean, float) - x_next) ** 2))
    return err if math.isfinite(err) else math.nan


class ModelGate:
    """Recent transitions of the running controller and the check a new model must pass.

    Args:
        cfg: the gate's thresholds.
    """

    def __init__(self, cfg: GateConfig) -> None:
        self.cfg = cfg
        self._recent: collections.deque = collections.deque(maxlen=cfg.window)
        self._pending: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()  # the tick adds, the model thread checks
        self.refused = 0
        self.accepted = 0
        self.last = ""  # the latest verdict, for /diagnostics
        self.refused_version = 0  # the newest version refused (0 none)

    # -- the tick's side ------------------------------------------------------------------
    def observe(self, x: np.ndarray, u: np.ndarray | None) -> None:
        """The model state x (dx,) at a tick and the action u (du,) sent then (None: a hold,
        which ends the chain: no transition spans it)."""
        with self._lock:
            if self._pending is not None:
                px, pu = self._pending
                if px.shape == x.shape:
                    self._recent.append((px, pu, np.asarray(x, float).copy()))
            ok = u is not None and np.all(np.isfinite(x)) and np.all(np.isfinite(u))
            self._pending = (
                (np.asarray(x, float).copy(), np.asarray(u, float).copy()) if ok else None
            )

    def interrupt(self) -> None:
        """A gap (hold, disable, mode change): the next state does not follow the last action."""
        with self._lock:
            self._pending = None

    def recent(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The recent transitions (x (N, dx), u (N, du), x' (N, dx))."""
        with self._lock:
            rows = list(self._recent)
        if not rows:
            return np.zeros((0, 0)), np.zeros((0, 0)), np.zeros((0, 0))
        return tuple(np.stack([r[i] for r in rows]) for i in range(3))  # type: ignore[return-value]

    # -- the model thread's side ----------------------------------------------------------
    def check(
        self, version: int, metrics: dict, model: Any, running: Any | None, learned: bool = True
    ) -> dict:
        """Pass `model` (version `version`, its fit `metrics`) or raise ModelRefused.

        `running` is the model in use (None: none yet); `learned` False for the known
        kinematic model (a learned model is not held to its margin). Returns the figures of
        the checks that ran.
        """
        try:
            figures = self._check(version, metrics, model, running, learned)
        except ModelRefused as exc:
            self.refused += 1
            self.refused_version = max(self.refused_version, int(version))
            self.last = str(exc)
            raise
        self.accepted += 1
        self.last = f"version {version} accepted: {figures}"
        return figures

    def _check(self, version: int, metrics: dict, model: Any, running: Any | None,
               learned: bool) -> dict:  # fmt: skip
        cfg = self.cfg
        n = metrics.get("num_transitions")
        if not isinstance(n, int) or isinstance(n, bool) or n < cfg.min_transitions:
            raise ModelRefused(
                f"model version {version} refused: fitted on {n!r} transitions; at least "
                f"{cfg.min_transitions} required (model_min_transitions)"
            )
        figures: dict[str, Any] = {"num_transitions": n}
        if not hasattr(model, "predict"):
            return figures  # an artifact that is no dynamics model (a policy): data only
        x, u, x_next = self.recent()
        if len(x) == 0 or x.shape[1] != getattr(model, "dx", -1) or u.shape[1] != model.du:
            return figures  # no recent data in this model's state: data check only
        new = one_step_mse(model, x, u, x_next)
        if math.isnan(new):
            raise ModelRefused(
                f"model version {version} refused: non-finite predictions on {len(x)} recent "
                "transitions"
            )
        figures.update(recent=len(x), mse=round(new, 8))
        if len(x) < cfg.min_check or running is None or not hasattr(running, "predict"):
            return figures  # nothing to compare with: anything beats holding the arm
        old = one_step_mse(running, x, u, x_next)
        still = float(np.mean((x_next - x) ** 2))
        figures.update(running_mse=round(old, 8), no_motion_mse=round(still, 8))
        # The running model explains the recent motion: a model that does worse than
        # predicting no motion at all must not replace it (a well-formed file of random
        # weights over the known kinematic model).
        if old <= still + cfg.floor and new > still + cfg.floor:
            raise ModelRefused(
                f"model version {version} refused: one-step MSE {new:.3g} on the {len(x)} most "
                f"recent transitions, worse than predicting no motion ({still:.3g} + "
                f"{cfg.floor:g}) where the running model's is {old:.3g}"
            )
        if learned and math.isfinite(old) and new > (1 + cfg.margin) * old + cfg.tol:
            raise ModelRefused(
                f"model version {version} refused: one-step MSE {new:.3g} on the {len(x)} most "
                f"recent transitions, worse than the running model's {old:.3g} by more than "
                f"the margin ({cfg.margin:g}: at most {(1 + cfg.margin) * old + cfg.tol:.3g})"
            )
        return figures

    def values(self) -> dict[str, str]:
        """/diagnostics key/values of the gate."""
        with self._lock:
            recent = len(self._recent)
        return {
            "gate_accepted": str(self.accepted),
            "gate_refused": str(self.refused),
            "gate_last": self.last,
            "gate_recent_transitions": str(recent),
        }

"""The known kinematic model of a position-controlled arm: the reference model for planners.

State x = joint positions q (nj) rad; action u in [-1, 1]^nj scaled by `max_increment` rad
(the ReachEnv/PushEnv action). q' = clip(q + clip(u, -1, 1) * step, lower, upper) with
step = min(max_increment, velocity_limit * control_period): the servo cannot move further
in one tick than its speed allows. Deterministic (zero variance); ensemble_size 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mbrl.models.base import FitReport, PropagationMode
from mbrl.models.io import load_model_file, save_model_file


class KinematicArmModel:
    """q' = clip(q + clip(u, -1, 1) * step, lower, upper). Arrays are (nj,) in controller order.

    Implements TorchDynamics (`step`), DynamicsModel (`predict`, `sample`, `fit`, `save`)
    and Linearizable (`linearize`).
    """

    ensemble_size = 1
    deterministic = True  # sampling planners then roll out one particle per sample

    def __init__(
        self,
        lower: np.ndarray,
        upper: np.ndarray,
        velocity_limit: np.ndarray,
        max_increment: float,
        control_period: float,
    ) -> None:
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        vel = np.asarray(velocity_limit, dtype=np.float64)
        if not (self.lower.shape == self.upper.shape == vel.shape) or self.lower.ndim != 1:
            raise ValueError(
                f"lower {self.lower.shape}, upper {self.upper.shape}, velocity_limit "
                f"{vel.shape} must all be (nj,)"
            )
        if np.any(self.lower >= self.upper) or np.any(vel <= 0):
            raise ValueError("need lower < upper and velocity_limit > 0 for every joint")
        if max_increment <= 0 or control_period <= 0:
            raise ValueError("max_increment and control_period must be > 0")
        self.velocity_limit, self.max_increment = vel, float(max_increment)
        self.control_period = float(control_period)
        self.step_size = np.minimum(self.max_increment, vel * self.control_period)  # (nj,) rad
        self.dx = self.du = int(self.lower.shape[0])
        self._torch: dict[torch.dtype, tuple[torch.Tensor, ...]] = {}

    def _consts(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        if dtype not in self._torch:
            self._torch[dtype] = tuple(
                torch.as_tensor(a, dtype=dtype) for a in (self.lower, self.upper, self.step_size)
            )
        return self._torch[dtype]

    def step(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        mode: PropagationMode = "mean",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """x (N, nj), u (N, nj) -> (N, nj); every mode is the same deterministic step."""
        lo, hi, step = self._consts(x.dtype)
        nxt = x + u.clamp(-1.0, 1.0) * step
        return torch.maximum(torch.minimum(nxt, hi), lo)

    def predict(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (N, nj), u (N, nj) -> mean (N, nj), var (N, nj) = 0."""
        mean = np.clip(x + np.clip(u, -1.0, 1.0) * self.step_size, self.lower, self.upper)
        return mean, np.zeros_like(mean)

    def sample(self, x: np.ndarray, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Deterministic: the mean."""
        return self.predict(x, u)[0]

    def linearize(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A (N, nj, nj), B (N, nj, nj), c (N, nj); saturated (clipped) entries get zero slope."""
        N, n = x.shape
        raw = x + np.clip(u, -1.0, 1.0) * self.step_size
        free = (raw > self.lower) & (raw < self.upper)  # (N, nj) position not clamped
        active = np.abs(u) < 1.0  # (N, nj) action not clamped
        A = np.zeros((N, n, n))
        B = np.zeros((N, n, n))
        idx = np.arange(n)
        A[:, idx, idx] = free
        B[:, idx, idx] = free * active * self.step_size
        mean = self.predict(x, u)[0]
        c = mean - np.einsum("nij,nj->ni", A, x) - np.einsum("nij,nj->ni", B, u)
        return A, B, c

    def fit(self, dataset=None) -> FitReport:
        """Nothing to learn: the model is known. Returns an empty report."""
        return FitReport(num_transitions=0 if dataset is None else len(dataset))

    def save(self, path: str | Path) -> None:
        """Write the limits (no pickle; see mbrl.models.io)."""
        save_model_file(
            path,
            "KinematicArmModel",
            {"max_increment": self.max_increment, "control_period": self.control_period},
            {"lower": self.lower, "upper": self.upper, "velocity_limit": self.velocity_limit},
        )

    @classmethod
    def load(cls, path: str | Path) -> KinematicArmModel:
        meta, arrays = load_model_file(path, "KinematicArmModel")
        return cls(
            arrays["lower"],
            arrays["upper"],
            arrays["velocity_limit"],
            meta["max_increment"],
            meta["control_period"],
        )

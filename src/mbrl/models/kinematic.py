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


class KinematicPendingModel:
    """The known model of an ideal position servo over the state x = [q, qdot, pending]
    (3 nj; mbrl.agents.mpc model_state "q_qd_pending", pending = previous command - q).

    The command of an action is c = base + u * max_increment (base: q + pending, the previous
    command; or q, increment_from "measured"), kept within one increment of q (no wind-up,
    mbrl.costs.tasks.next_command); the joints move toward it as KinematicArmModel allows:
    q' = clip(q + clip(c - q, -step, step), lower, upper); qdot' = (q' - q) / control_period;
    pending' = c - q'. Deterministic (zero variance); ensemble_size 1.
    """

    ensemble_size = 1
    deterministic = True

    def __init__(self, joints: KinematicArmModel, increment_from: str = "command") -> None:
        if increment_from not in ("command", "measured"):
            raise ValueError(f"increment_from {increment_from!r}; expected command or measured")
        self.joints, self.increment_from = joints, increment_from
        self.nj = joints.dx
        self.dx, self.du = 3 * self.nj, self.nj

    def step(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        mode: PropagationMode = "mean",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """x (N, 3 nj), u (N, nj) -> (N, 3 nj); every mode is the same deterministic step."""
        n, inc = self.nj, self.joints.max_increment
        lo, hi, step = self.joints._consts(x.dtype)
        q, pending = x[:, :n], x[:, 2 * n : 3 * n]
        base = q + pending if self.increment_from == "command" else q
        command = torch.minimum(torch.maximum(base + u.clamp(-1.0, 1.0) * inc, q - inc), q + inc)
        moved = q + torch.minimum(torch.maximum(command - q, -step), step)
        q_next = torch.maximum(torch.minimum(moved, hi), lo)
        qdot = (q_next - q) / self.joints.control_period
        return torch.cat([q_next, qdot, command - q_next], dim=-1)

    def predict(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (N, 3 nj), u (N, nj) -> mean (N, 3 nj), var (N, 3 nj) = 0."""
        with torch.no_grad():
            mean = self.step(torch.as_tensor(x, dtype=torch.float64),
                             torch.as_tensor(u, dtype=torch.float64)).numpy()  # fmt: skip
        return mean, np.zeros_like(mean)

    def sample(self, x: np.ndarray, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Deterministic: the mean."""
        return self.predict(x, u)[0]

    def linearize(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A (N, 3 nj, 3 nj), B (N, 3 nj, nj), c (N, 3 nj) by autograd (clipped entries get
        zero slope)."""

        def one(xi: torch.Tensor, ui: torch.Tensor) -> torch.Tensor:
            return self.step(xi[None], ui[None])[0]

        xt = torch.as_tensor(x, dtype=torch.float64)
        ut = torch.as_tensor(u, dtype=torch.float64)
        A, B = torch.func.vmap(torch.func.jacrev(one, argnums=(0, 1)))(xt, ut)
        mean = self.predict(x, u)[0]
        A, B = A.numpy(), B.numpy()
        c = mean - np.einsum("nij,nj->ni", A, x) - np.einsum("nij,nj->ni", B, u)
        return A, B, c

    def fit(self, dataset=None) -> FitReport:
        """Nothing to learn: the model is known. Returns an empty report."""
        return FitReport(num_transitions=0 if dataset is None else len(dataset))

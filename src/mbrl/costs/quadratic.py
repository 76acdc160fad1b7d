"""Quadratic tracking cost, with its exact quadratisation (for LQR and the analytic tests).

stage = e^T Q e / 2 + u^T R u / 2 and terminal = e^T Qf e / 2, with e = x - x_goal.
"""

from __future__ import annotations

import numpy as np
import torch

from mbrl.costs.base import Quadratic, Tensor


class QuadraticCost:
    """Quadratic cost around a goal state; Q (dx, dx), R (du, du), Qf (dx, dx), x_goal (dx,).

    Q and Qf need not be positive definite (tests use indefinite ones on purpose).
    """

    def __init__(
        self,
        Q: np.ndarray,
        R: np.ndarray,
        Qf: np.ndarray | None = None,
        x_goal: np.ndarray | None = None,
    ) -> None:
        self.Q = np.atleast_2d(np.asarray(Q, dtype=np.float64))
        self.R = np.atleast_2d(np.asarray(R, dtype=np.float64))
        self.Qf = self.Q if Qf is None else np.atleast_2d(np.asarray(Qf, dtype=np.float64))
        dx = self.Q.shape[0]
        self.x_goal = np.zeros(dx) if x_goal is None else np.asarray(x_goal, dtype=np.float64)
        if self.Q.shape != (dx, dx) or self.Qf.shape != (dx, dx) or self.x_goal.shape != (dx,):
            raise ValueError(
                f"QuadraticCost: Q {self.Q.shape}, Qf {self.Qf.shape}, x_goal "
                f"{self.x_goal.shape}; expected ({dx}, {dx}), ({dx}, {dx}), ({dx},)"
            )

    def _t(self, a: np.ndarray, like: Tensor) -> Tensor:
        return torch.as_tensor(a, dtype=like.dtype, device=like.device)

    def stage(self, x: Tensor, u: Tensor) -> Tensor:
        """x (N, T, dx), u (N, T, du) -> (N, T)."""
        e = x - self._t(self.x_goal, x)
        # (e @ Q * e).sum is several times faster than a three-operand einsum here.
        return 0.5 * (
            ((e @ self._t(self.Q, x)) * e).sum(-1) + ((u @ self._t(self.R, u)) * u).sum(-1)
        )

    def terminal(self, x: Tensor) -> Tensor:
        """x (N, dx) -> (N,)."""
        e = x - self._t(self.x_goal, x)
        return 0.5 * ((e @ self._t(self.Qf, x)) * e).sum(-1)

    def quadratize(self, x: np.ndarray, u: np.ndarray) -> Quadratic:
        """Exact expansion; x (T+1, dx), u (T, du) -> lx, lu, lxx, luu, lux (see costs.base)."""
        T = u.shape[0]
        e = x - self.x_goal
        lx = np.concatenate([e[:-1] @ self.Q.T, (e[-1] @ self.Qf.T)[None]], axis=0)
        lxx = np.concatenate([np.broadcast_to(self.Q, (T, *self.Q.shape)), self.Qf[None]])
        luu = np.broadcast_to(self.R, (T, *self.R.shape)).copy()
        lux = np.zeros((T, self.R.shape[0], self.Q.shape[0]))
        return lx, u @ self.R.T, lxx, luu, lux

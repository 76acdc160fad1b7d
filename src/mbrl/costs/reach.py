"""PETS-style reach cost: end-effector distance to the goal, action size and rate, and a
joint-limit barrier; batched over (N, T) and differentiable.

The end effector comes from forward kinematics of the joint positions in the state, or from
state entries that already hold it (learned models predicting the observation).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from mbrl.costs.base import Tensor
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.costs.layout import StateLayout


@dataclasses.dataclass(frozen=True)
class ReachCostConfig:
    """Weights (per step unless noted).

    Attributes:
        distance: weight of ||ee - goal|| (m) in each stage.
        terminal: weight of ||ee - goal|| (m) at the final state.
        action: weight of ||u||^2 (normalised action units).
        rate: weight of ||u_t - u_{t-1}||^2 inside a planned sequence.
        limit: weight of the joint-limit barrier ((depth into the margin) / margin)^2.
        limit_margin: width of the barrier band inside each joint limit, rad.
        smoothing: epsilon in sqrt(d^2 + eps^2), m; keeps the distance differentiable at 0.
    """

    distance: float = 1.0
    terminal: float = 5.0
    action: float = 1e-3
    rate: float = 0.0
    limit: float = 1.0
    limit_margin: float = 0.05
    smoothing: float = 1e-3


def limit_barrier(q: Tensor, lower: Tensor, upper: Tensor, margin: float) -> Tensor:
    """q (..., nj) -> (...): sum over joints of (depth into the margin band / margin)^2."""
    below = torch.relu(lower + margin - q)
    above = torch.relu(q - (upper - margin))
    return ((below**2 + above**2) / margin**2).sum(-1)


class ReachCost:
    """Cost of reaching `goal` (3,) m. Set a new goal with `set_goal` (no re-construction).

    Args:
        layout: where q / ee / goal are in the state x.
        fk: forward kinematics (needed if layout.ee is None).
        goal: (3,) m; ignored if layout.goal is given (goal read from the state).
        lower / upper: (nj,) joint limits for the barrier (default: fk's limits; none if
            neither is given).
    """

    def __init__(
        self,
        layout: StateLayout,
        fk: ForwardKinematics | None = None,
        goal: np.ndarray | None = None,
        config: ReachCostConfig = ReachCostConfig(),
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ) -> None:
        if layout.ee is None and (fk is None or layout.q is None):
            raise ValueError("ReachCost needs layout.ee, or fk together with layout.q")
        self.layout, self.fk, self.config = layout, fk, config
        if lower is None and fk is not None:
            lower, upper = fk.lower.numpy(), fk.upper.numpy()
        self.lower = None if lower is None else torch.as_tensor(np.asarray(lower, float))
        self.upper = None if upper is None else torch.as_tensor(np.asarray(upper, float))
        self.goal = torch.zeros(3, dtype=torch.float64)
        if goal is not None:
            self.set_goal(goal)

    def set_goal(self, goal: np.ndarray) -> None:
        g = np.asarray(goal, dtype=np.float64)
        if g.shape != (3,) or not np.all(np.isfinite(g)):
            raise ValueError(f"goal must be 3 finite numbers (m), got {goal!r}")
        self.goal = torch.as_tensor(g)

    def ee(self, x: Tensor) -> Tensor:
        """x (..., dx) -> (..., 3) end-effector position, m."""
        if self.layout.ee is not None:
            return StateLayout.take(x, self.layout.ee)
        return self.fk(StateLayout.take(x, self.layout.q))

    def _goal(self, x: Tensor) -> Tensor:
        if self.layout.goal is not None:
            return StateLayout.take(x, self.layout.goal)
        return self.goal.to(x.dtype)

    def _distance(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.sqrt(((a - b) ** 2).sum(-1) + self.config.smoothing**2)

    def _barrier(self, x: Tensor) -> Tensor:
        if self.lower is None or self.layout.q is None or self.config.limit == 0:
            return torch.zeros(x.shape[:-1], dtype=x.dtype)
        q = StateLayout.take(x, self.layout.q)
        lo, hi = self.lower.to(x.dtype), self.upper.to(x.dtype)
        return self.config.limit * limit_barrier(q, lo, hi, self.config.limit_margin)

    def _action_terms(self, u: Tensor) -> Tensor:
        c = self.config
        out = c.action * (u**2).sum(-1)
        if c.rate > 0 and u.shape[-2] > 1:
            rate = ((u[..., 1:, :] - u[..., :-1, :]) ** 2).sum(-1)
            out = out + c.rate * torch.nn.functional.pad(rate, (1, 0))
        return out

    def stage(self, x: Tensor, u: Tensor) -> Tensor:
        """x (N, T, dx), u (N, T, du) -> (N, T)."""
        d = self._distance(self.ee(x), self._goal(x))
        return self.config.distance * d + self._action_terms(u) + self._barrier(x)

    def terminal(self, x: Tensor) -> Tensor:
        """x (N, dx) -> (N,)."""
        return self.config.terminal * self._distance(self.ee(x), self._goal(x)) + self._barrier(x)

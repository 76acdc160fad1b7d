"""iLQR / iLQG trajectory optimisation on the linearisations of any Linearizable model.

Tassa, Erez & Todorov 2012 (backward pass with Levenberg-Marquardt regularisation mu on
Vxx, eq. 10; backtracking line search on the feed-forward term with the expected-reduction
test, eq. 13). iLQG here is the maximum-entropy reading of the same pass (Todorov & Li
2005; Levine & Koltun 2013): the controller N(u_t + K_t dx, Quu_t^-1), returned in
`ILQRPlanner.last_solution.Quu`. Shapes: x (T+1, dx), u (T, du), K (T, du, dx).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Protocol

import numpy as np
import torch

from mbrl.control.lqr import LQRSolution, NotPositiveDefinite, backward_pass
from mbrl.control.plan import Clock, IterationBudget, Plan
from mbrl.costs.base import Cost, autodiff_quadratize, trajectory_cost
from mbrl.models.base import Linearizable


@dataclasses.dataclass(frozen=True)
class ILQRConfig:
    """iLQR settings.

    Attributes:
        horizon: T.
        iterations: maximum backward/forward iterations per replan.
        mu_init / mu_min / mu_max: LM regularisation start, floor once raised, give-up bound.
        mu_factor: growth factor of the LM schedule (Tassa 2012, sec. II-F).
        line_search: step sizes alpha tried in order.
        accept_ratio: accept a step when actual / expected cost reduction exceeds this.
        tolerance: stop when the relative cost improvement falls below this.
        action_low / action_high: actions are clipped to these bounds in the forward pass.
    """

    horizon: int = 25
    iterations: int = 20
    mu_init: float = 0.0
    mu_min: float = 1e-6
    mu_max: float = 1e10
    mu_factor: float = 2.0
    line_search: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1, 0.03, 0.01, 0.003, 0.001)
    accept_ratio: float = 1e-4
    tolerance: float = 1e-7
    action_low: float = -np.inf
    action_high: float = np.inf


class LinearizableModel(Linearizable, Protocol):
    """A model iLQR can roll out (predict's mean) and linearise."""

    def predict(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class ILQRPlanner:
    """iLQR as a Planner: warm-started by shifting the previous nominal actions."""

    def __init__(
        self,
        dynamics: LinearizableModel,
        cost: Cost,
        du: int,
        config: ILQRConfig = ILQRConfig(),
        *,
        clock: Clock = time.perf_counter,
    ) -> None:
        self.dynamics, self.cost, self.du, self.config = dynamics, cost, du, config
        self.budget = IterationBudget(clock)
        self.last_solution: LQRSolution | None = None
        self.reset()

    def reset(self) -> None:
        self._warm: np.ndarray | None = None

    def _quadratize(self, x: np.ndarray, u: np.ndarray):
        if hasattr(self.cost, "quadratize"):
            return self.cost.quadratize(x, u)
        return autodiff_quadratize(self.cost, x, u)

    def total_cost(self, x: np.ndarray, u: np.ndarray) -> float:
        """x (T+1, dx), u (T, du) -> the trajectory cost."""
        xt = torch.as_tensor(x[None], dtype=torch.float64)
        ut = torch.as_tensor(u[None], dtype=torch.float64)
        with torch.no_grad():
            return float(trajectory_cost(self.cost, xt, ut)[0])

    def rollout(
        self,
        x0: np.ndarray,
        u: np.ndarray,
        x_nom: np.ndarray | None = None,
        K: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Closed-loop forward pass u_t + K_t (x_t - x_nom_t), clipped; returns (x, u)."""
        T = u.shape[0]
        x = np.zeros((T + 1, x0.shape[0]))
        u_out = np.zeros_like(u)
        x[0] = x0
        for t in range(T):
            ut = u[t] if K is None else u[t] + K[t] @ (x[t] - x_nom[t])
            u_out[t] = np.clip(ut, self.config.action_low, self.config.action_high)
            x[t + 1] = self.dynamics.predict(x[t][None], u_out[t][None])[0][0]
        return x, u_out

    def plan(self, x0: np.ndarray, deadline: float | None = None) -> Plan:
        """x0 (dx,) -> Plan with nominal (x, u), gains K (T, du, dx) and k (T, du)."""
        cfg = self.config
        x0 = np.asarray(x0, dtype=np.float64)
        u = self._warm if self._warm is not None else np.zeros((cfg.horizon, self.du))
        x, u = self.rollout(x0, u)
        J = self.total_cost(x, u)
        mu = cfg.mu_init
        sol: LQRSolution | None = None
        self.budget.start(deadline)
        done, cut = 0, False
        expansion = None  # (A, B, cost terms) of the current nominal; kept across retries
        while done < cfg.iterations:
            if not self.budget.may_start():
                cut = True
                break
            if expansion is None:
                A, B, _ = self.dynamics.linearize(x[:-1], u)
                expansion = (A, B, *self._quadratize(x, u))
            A, B, lx, lu, lxx, luu, lux = expansion
            try:
                sol = backward_pass(A, B, lx, lu, lxx, luu, lux, mu=mu)
            except NotPositiveDefinite:
                mu = max(cfg.mu_min, mu * cfg.mu_factor)
                if mu > cfg.mu_max:
                    break  # no descent direction at any regularisation: keep the nominal
                continue
            accepted = False
            for alpha in cfg.line_search:
                u_try = u + alpha * sol.k
                x_new, u_new = self.rollout(x0, u_try, x, sol.K)
                J_new = self.total_cost(x_new, u_new)
                expected = -(alpha * sol.dV[0] + alpha**2 * sol.dV[1])
                if np.isfinite(J_new) and (J - J_new) > cfg.accept_ratio * max(expected, 0.0):
                    accepted = True
                    break
            self.budget.lap()
            done += 1
            if not accepted:
                mu = max(cfg.mu_min, mu * cfg.mu_factor)
                if mu > cfg.mu_max:
                    break
                continue
            improvement = (J - J_new) / max(abs(J), 1e-12)
            x, u, J = x_new, u_new, J_new
            expansion = None
            mu = mu / cfg.mu_factor if mu > cfg.mu_min else 0.0
            if improvement < cfg.tolerance:
                break
        self.last_solution = sol
        self._warm = np.concatenate([u[1:], u[-1:]], axis=0)
        K = None if sol is None else sol.K
        k = None if sol is None else sol.k
        return Plan(u.copy(), x, K, k, J, done, not cut)

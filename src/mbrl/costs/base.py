"""The Cost protocol planners use, and a generic quadratisation by automatic differentiation.

Costs are torch functions, batched over samples and horizon, so sampling planners call them
on whole populations and gradient-based planners differentiate them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

Tensor = torch.Tensor


@runtime_checkable
class Cost(Protocol):
    """A trajectory cost sum_t stage(x_t, u_t) + terminal(x_T).

    `stage` sees whole action sequences so that it may penalise the action rate
    u_t - u_{t-1} inside the sequence; with T = 1 that term is zero.
    """

    def stage(self, x: Tensor, u: Tensor) -> Tensor:
        """x (N, T, dx), u (N, T, du) -> (N, T) stage costs (x_t is the state u_t acts on)."""
        ...

    def terminal(self, x: Tensor) -> Tensor:
        """x (N, dx) -> (N,) terminal cost."""
        ...


Quadratic = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def trajectory_cost(cost: Cost, x: Tensor, u: Tensor) -> Tensor:
    """x (N, T+1, dx), u (N, T, du) -> (N,) total cost."""
    return cost.stage(x[:, :-1], u).sum(dim=1) + cost.terminal(x[:, -1])


def _batched_hessian(f, z: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient (M, d) and Hessian (M, d, d) of a row-separable f: (M, d) -> (M,).

    Rows do not interact, so grad of sum(f) is the per-row gradient, and d double-backward
    passes give the Hessian of every row at once (no Python loop over rows).
    """
    z = z.detach().clone().requires_grad_(True)
    g = torch.autograd.grad(f(z).sum(), z, create_graph=True)[0]
    d = z.shape[1]
    rows = []
    for i in range(d):
        hi = torch.autograd.grad(g[:, i].sum(), z, retain_graph=i < d - 1, allow_unused=True)[0]
        rows.append(torch.zeros_like(z) if hi is None else hi)
    return g.detach(), torch.stack(rows, dim=1).detach()


def autodiff_quadratize(cost: Cost, x: np.ndarray, u: np.ndarray) -> Quadratic:
    """Second-order expansion of a torch cost along a nominal trajectory, in float64.

    x (T+1, dx), u (T, du) -> lx (T+1, dx), lu (T, du), lxx (T+1, dx, dx), luu (T, du, du),
    lux (T, du, dx). Each stage is expanded on its own (T = 1), so an action-rate term,
    which couples neighbouring steps, is left out: a block-diagonal approximation.
    """
    x_t = torch.as_tensor(x, dtype=torch.float64)
    u_t = torch.as_tensor(u, dtype=torch.float64)
    T, du = u_t.shape
    dx = x_t.shape[1]

    def stage(z: Tensor) -> Tensor:
        return cost.stage(z[:, None, :dx], z[:, None, dx:])[:, 0]

    g, H = _batched_hessian(stage, torch.cat([x_t[:-1], u_t], dim=1))
    gT, HT = _batched_hessian(cost.terminal, x_t[-1:])
    lx = torch.cat([g[:, :dx], gT], dim=0).numpy()
    lxx = torch.cat([H[:, :dx, :dx], HT], dim=0).numpy()
    return lx, g[:, dx:].numpy(), lxx, H[:, dx:, dx:].numpy(), H[:, dx:, :dx].numpy()

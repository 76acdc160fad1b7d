"""PILCO's saturating cost c(e) = 1 - exp(-||e - g||^2 / (2 sigma_c^2)) and its exact
expectation under a Gaussian e ~ N(m, S) (Deisenroth & Rasmussen 2011, eq. 25;
Deisenroth 2010, thesis eqs. 3.44-3.45):

    E[c] = 1 - |I + S / sigma_c^2|^(-1/2) exp(-1/2 (m - g)^T (S + sigma_c^2 I)^(-1) (m - g)).

The cost is bounded in [0, 1], so a wide predictive distribution far from the goal costs
little more than a narrow one there: this is what makes PILCO explore (Deisenroth 2010,
sec. 3.5). Units: positions in m, sigma_c in m.
"""

from __future__ import annotations

import torch
from torch import Tensor


def saturating_cost(e: Tensor, goal: Tensor, width: float) -> Tensor:
    """Deterministic cost: e (..., 3) m, goal (3,) m, width sigma_c (m) -> (...) in [0, 1]."""
    if width <= 0:
        raise ValueError(f"saturating cost width must be > 0 m, got {width}")
    d2 = ((e - goal) ** 2).sum(-1)
    return 1.0 - torch.exp(-0.5 * d2 / width**2)


def expected_saturating_cost(m: Tensor, S: Tensor, goal: Tensor, width: float) -> Tensor:
    """E[c(e)] for e ~ N(m (..., 3), S (..., 3, 3)) (m, m^2), goal (..., 3) m -> (...) in
    [0, 1], differentiable in m and S."""
    if width <= 0:
        raise ValueError(f"saturating cost width must be > 0 m, got {width}")
    n = m.shape[-1]
    eye = torch.eye(n, dtype=m.dtype)
    w2 = width**2
    diff = m - goal
    # |I + S/w^2|^(-1/2) via slogdet: stays finite for the near-singular S of a sharp start.
    _, logdet = torch.linalg.slogdet(eye + S / w2)
    quad = (diff * torch.linalg.solve(S + w2 * eye, diff[..., None])[..., 0]).sum(-1)
    return 1.0 - torch.exp(-0.5 * logdet - 0.5 * quad)

"""Per-member training losses of the probabilistic ensemble, in normalised delta units.

- "nll": Gaussian NLL, (m - y)^2 exp(-lv) + lv (Chua et al. 2018; the constant dropped).
  A rare large target (a cube shoved 2 cm among thousands of still ticks) can be explained
  as variance: the mean stays near zero and the loss is still low.
- "beta_nll": the NLL of each element weighted by var.detach()^beta (Seitzer et al. 2022,
  "On the pitfalls of heteroscedastic uncertainty estimation", eq. 4): beta = 0 is the NLL,
  beta = 1 gives the mean the gradient of the MSE; 0.5 is their suggestion.
- "mse": the mean is fitted by the squared error alone and the log-variance by the NLL of
  the detached mean, so the variance head still learns the residual (calibrated variance,
  mean not pulled by it).
`dims` restricts the chosen loss to some output dimensions (e.g. the object's); the others
keep the NLL.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

LOSSES = ("nll", "beta_nll", "mse")


def check_loss(loss: str, beta: float, dims: Sequence[int], dx: int) -> None:
    """Raise ValueError naming the bad FitConfig field."""
    if loss not in LOSSES:
        raise ValueError(f"FitConfig.loss={loss!r}; expected one of {LOSSES}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"FitConfig.beta must be in [0, 1], got {beta}")
    bad = [d for d in dims if not 0 <= int(d) < dx]
    if bad:
        raise ValueError(f"FitConfig.loss_dims {bad} outside the {dx} output dimensions")


def member_loss(
    mean: Tensor, lv: Tensor, y: Tensor, loss: str = "nll", beta: float = 0.5, dims=()
) -> Tensor:
    """mean, lv (log-variance), y: (E, B, dx) normalised -> (E,) loss of each member."""
    sq = (mean - y) ** 2
    nll = sq * torch.exp(-lv) + lv
    if loss == "nll":
        return nll.mean(dim=(1, 2))
    if loss == "beta_nll":
        other = nll * torch.exp(beta * lv.detach())
    elif loss == "mse":
        other = sq + (sq.detach() * torch.exp(-lv) + lv)
    else:
        raise ValueError(f"loss {loss!r} unknown; expected one of {LOSSES}")
    if len(dims):
        mask = torch.zeros(y.shape[-1], dtype=torch.bool)
        mask[list(dims)] = True
        other = torch.where(mask, other, nll)
    return other.mean(dim=(1, 2))

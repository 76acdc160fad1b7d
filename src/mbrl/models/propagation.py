"""Multi-step particle propagation through a TorchDynamics model (Chua et al. 2018, sec. 5).

Modes are those of `TorchDynamics.step` ("ts1", "tsinf", "expectation", "mean") plus "mm":
moment matching over the ensemble, where after each tsinf step the particle cloud is
replaced by fresh samples of the Gaussian with the cloud's mean and covariance.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from mbrl.models.base import TorchDynamics

RolloutMode = Literal["ts1", "tsinf", "expectation", "mean", "mm"]


def _resample_gaussian(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """x (P, dx) -> P new samples of N(mean(x), cov(x)); jitter keeps the Cholesky defined."""
    mean = x.mean(0)
    diff = x - mean
    cov = diff.T @ diff / max(len(x) - 1, 1)
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    jitter = 1e-9 * float(cov.diagonal().mean().clamp_min(1e-12))
    L, info = torch.linalg.cholesky_ex(cov + jitter * eye)
    while bool(info):
        jitter *= 100
        L, info = torch.linalg.cholesky_ex(cov + jitter * eye)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return mean + noise @ L.T


@torch.no_grad()
def rollout(
    model: TorchDynamics,
    x0: Tensor,
    actions: Tensor,
    mode: RolloutMode = "ts1",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Open-loop particle rollout.

    Args:
        model: a TorchDynamics (e.g. ProbabilisticEnsemble).
        x0: (P, dx) initial particles; P must be a multiple of model.ensemble_size.
        actions: (T, du) shared by all particles, or (T, P, du) per particle.
        mode: propagation mode (see module docstring).
        generator: torch.Generator for all sampling.
    Returns:
        (T+1, P, dx) particles, x0 first.
    """
    P = x0.shape[0]
    if actions.dim() == 2:
        actions = actions[:, None, :].expand(actions.shape[0], P, actions.shape[1])
    out = [x0]
    x = x0
    for t in range(actions.shape[0]):
        step_mode = "tsinf" if mode == "mm" else mode
        x = model.step(x, actions[t], step_mode, generator)
        if mode == "mm":
            x = _resample_gaussian(x, generator)
        out.append(x)
    return torch.stack(out)

"""Model-predictive path integral control (MPPI; Williams et al. 2017, "Information
theoretic MPC for model-based reinforcement learning", Alg. 2 and eq. 29).

Each iteration perturbs the nominal sequence with Gaussian noise eps, scores each sample by
S = cost + lambda * sum_t u_t^T Sigma^-1 eps_t, and moves the nominal by the softmax(-S /
lambda)-weighted average of the noise.
"""

from __future__ import annotations

import dataclasses

import torch

from mbrl.control.sampling import SamplingConfig, SamplingPlanner


@dataclasses.dataclass(frozen=True)
class MPPIConfig(SamplingConfig):
    """MPPI settings on top of SamplingConfig (init_std is the noise std, fraction of range).

    Attributes:
        temperature: lambda, the inverse of how greedily low-cost samples are weighted.
        control_cost: include the lambda * u^T Sigma^-1 eps term of Williams et al. 2017.
    """

    iterations: int = 1
    temperature: float = 1.0
    control_cost: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temperature <= 0:
            raise ValueError("MPPIConfig.temperature must be > 0")


class MPPIPlanner(SamplingPlanner):
    """MPPI; Plan.actions is the weighted-average nominal sequence."""

    config: MPPIConfig

    def _begin(self, mean: torch.Tensor) -> None:
        self._mean = mean
        self._sigma = self.config.init_std * self.half_range  # (du,)

    def _iteration(self, i: int, x0: torch.Tensor) -> None:
        cfg = self.config
        noise = torch.randn(
            (cfg.num_samples, *self._mean.shape), generator=self.generator, dtype=self.dtype
        )
        samples = self._clip(self._mean + self._sigma * noise)
        eps = samples - self._mean  # the perturbation actually applied after clipping
        S = self.rollout(x0, samples)
        if cfg.control_cost:
            S = S + cfg.temperature * (self._mean / self._sigma**2 * eps).sum((1, 2))
        w = torch.softmax(-(S - S.min()) / cfg.temperature, dim=0)
        self._mean = self._clip(self._mean + torch.einsum("n,ntd->td", w, eps))

    def _result(self) -> torch.Tensor:
        return self._mean

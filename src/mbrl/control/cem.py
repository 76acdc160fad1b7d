"""Cross-entropy method planner (Rubinstein 1999; as used in PETS, Chua et al. 2018, sec. 5).

Samples N action sequences from a diagonal Gaussian, refits the Gaussian to the K elites
(lowest expected cost) with momentum, and returns the mean of the elites.
"""

from __future__ import annotations

import dataclasses

import torch

from mbrl.control.sampling import SamplingConfig, SamplingPlanner


@dataclasses.dataclass(frozen=True)
class CEMConfig(SamplingConfig):
    """CEM settings on top of SamplingConfig.

    Attributes:
        num_elites: K, lowest-cost samples the Gaussian is refitted to.
        momentum: alpha in mean <- alpha * mean + (1 - alpha) * elite_mean (same for std).
        min_std: floor on the sampling std, in action units (avoids early collapse).
    """

    num_elites: int = 50
    momentum: float = 0.1
    min_std: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (1 <= self.num_elites <= self.num_samples):
            raise ValueError(f"CEMConfig.num_elites must be in [1, num_samples={self.num_samples}]")
        if not (0.0 <= self.momentum < 1.0):
            raise ValueError("CEMConfig.momentum must be in [0, 1)")


class CEMPlanner(SamplingPlanner):
    """CEM over (T, du) action sequences; Plan.actions is the final elite mean."""

    config: CEMConfig

    def _begin(self, mean: torch.Tensor) -> None:
        self._mean = mean
        self._std = (self.config.init_std * self.half_range).expand_as(mean).clone()

    def _iteration(self, i: int, x0: torch.Tensor) -> None:
        cfg = self.config
        noise = torch.randn(
            (cfg.num_samples, *self._mean.shape), generator=self.generator, dtype=self.dtype
        )
        samples = self._clip(self._mean + self._std * noise)
        costs = self.rollout(x0, samples)
        elites = samples[torch.topk(costs, cfg.num_elites, largest=False).indices]
        a = cfg.momentum
        self._mean = a * self._mean + (1 - a) * elites.mean(0)
        self._std = (a * self._std + (1 - a) * elites.std(0, unbiased=False)).clamp_min(cfg.min_std)

    def _result(self) -> torch.Tensor:
        return self._mean

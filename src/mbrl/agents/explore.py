"""Exploration: the random base policy of Algorithm 1 / PETS' first episode, shared by the
loop drivers and the controller node's mode `explore`."""

from __future__ import annotations

import numpy as np


class SmoothedRandom:
    """Uniform actions in [-1, 1]^du, smoothed along time: a_t = beta a_{t-1} + (1 - beta)
    noise_t, so the arm wanders further than under white noise.

    Args:
        du: action size; rng: the run's Generator; smoothing: beta in [0, 1).
    """

    def __init__(self, du: int, rng: np.random.Generator, smoothing: float = 0.0) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.du, self.rng, self.smoothing = int(du), rng, float(smoothing)
        self._last = np.zeros(self.du)

    def reset(self) -> None:
        self._last = np.zeros(self.du)

    def act(self, obs: np.ndarray | None = None) -> np.ndarray:
        """The next action (du,) in [-1, 1] (the observation is not used)."""
        noise = self.rng.uniform(-1.0, 1.0, self.du)
        self._last = self.smoothing * self._last + (1.0 - self.smoothing) * noise
        return np.clip(self._last, -1.0, 1.0)

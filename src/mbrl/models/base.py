"""The one protocol every dynamics model implements, and the torch-side seam planners use.

Shapes (glossary in mbrl.config): x (N, dx) states, u (N, du) actions, E ensemble members.
Models predict the next state x' ~ p(x' | x, u); `predict` returns a diagonal Gaussian.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

# How particles move through a model with E members inside a sampling planner
# (Chua et al. 2018, PETS, sec. 5):
#   "ts1"         each particle keeps the member it was assigned at t=0 (by its index);
#   "tsinf"       particles are re-assigned to random members at every step;
#   "expectation" every particle takes the mean of all members' means (no sampling);
#   "mean"        deterministic: the member means, no noise (E=1 models: the mean).
PropagationMode = Literal["ts1", "tsinf", "expectation", "mean"]


@dataclasses.dataclass(frozen=True)
class FitReport:
    """What a fit did: per-epoch/iteration losses and held-out metrics, for logs and plots."""

    train_loss: tuple[float, ...] = ()
    holdout_loss: tuple[float, ...] = ()
    num_transitions: int = 0
    seconds: float = 0.0
    extra: dict = dataclasses.field(default_factory=dict)


class ModelFileError(ValueError):
    """A checkpoint is missing, truncated, corrupt or of another model; names the file."""


@runtime_checkable
class DynamicsModel(Protocol):
    """Learned (or known) dynamics x' ~ p(x' | x, u), in numpy, for any caller."""

    dx: int
    du: int

    def fit(self, dataset) -> FitReport:  # dataset: mbrl.data.dataset.TransitionDataset
        ...

    def predict(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (N, dx), u (N, du) -> mean (N, dx), var (N, dx) of the next state."""
        ...

    def sample(self, x: np.ndarray, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """x (N, dx), u (N, du) -> one sampled next state (N, dx)."""
        ...

    def save(self, path: str | Path) -> None:
        """Write tensors + JSON metadata (no pickle); atomic where the caller needs it."""
        ...


@runtime_checkable
class Linearizable(Protocol):
    """Models that give a local linear model x' ~= A x + B u + c around (x, u)."""

    def linearize(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x (N, dx), u (N, du) -> A (N, dx, dx), B (N, dx, du), c (N, dx)."""
        ...


@runtime_checkable
class TorchDynamics(Protocol):
    """The batched torch step a sampling planner calls inside its inner loop.

    N rows are particles. For an ensemble with E members, N must be a multiple of E and
    row i belongs to member i // (N // E) under "ts1" (so a fixed row layout keeps each
    particle on its member across steps without any state in the model).
    """

    ensemble_size: int

    def step(
        self,
        x,  # torch.Tensor (N, dx)
        u,  # torch.Tensor (N, du)
        mode: PropagationMode = "ts1",
        generator=None,  # torch.Generator for the sampling noise / re-assignment
    ):  # -> torch.Tensor (N, dx)
        ...

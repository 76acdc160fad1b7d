"""Global linear-Gaussian model x' = A x + B u + c + w, w ~ N(0, Sigma): the simplest baseline.

Fitted by ridge-regularised least squares on z = [x, u, 1] (Bishop 2006, sec. 3.3, Bayesian
linear regression with a shared noise covariance), so the predictive variance also carries
parameter uncertainty: var = diag(Sigma) * (1 + z^T (Z^T Z + lam I)^-1 z). With
`mean_only=True` it is the seed's "linear expectation" model (zero predicted variance
is replaced by the residual variance so NLL stays finite; `sample` returns the mean).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import scipy.linalg

from mbrl.data.dataset import TransitionDataset
from mbrl.models.base import FitReport
from mbrl.models.io import check_arrays, load_model_file, save_model_file


class LinearGaussianModel:
    """x (N, dx), u (N, du) -> x' ~ N(A x + B u + c, Sigma). Attributes after fit:
    A (dx, dx), B (dx, du), c (dx,), Sigma (dx, dx), and the posterior precision P (D, D)
    of the regression weights with D = dx + du + 1."""

    def __init__(self, dx: int, du: int, ridge: float = 1e-6, mean_only: bool = False) -> None:
        if ridge < 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        self.dx, self.du, self.ridge, self.mean_only = int(dx), int(du), float(ridge), mean_only
        D = self.dx + self.du + 1
        self.W = np.zeros((D, self.dx))  # z W = mean of x'
        self.W[: self.dx] = np.eye(self.dx)  # identity dynamics before any fit
        self.Sigma = np.eye(self.dx)
        self.P_inv = np.eye(D)

    @property
    def A(self) -> np.ndarray:
        return self.W[: self.dx].T

    @property
    def B(self) -> np.ndarray:
        return self.W[self.dx : self.dx + self.du].T

    @property
    def c(self) -> np.ndarray:
        return self.W[-1]

    def _z(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        x, u = np.atleast_2d(x), np.atleast_2d(u)
        return np.hstack([x, u, np.ones((len(x), 1))])

    def fit(self, dataset: TransitionDataset) -> FitReport:
        """Closed-form ridge fit; raises ValueError if the dataset dims differ from the model's."""
        start = time.perf_counter()
        if (dataset.dx, dataset.du) != (self.dx, self.du):
            raise ValueError(
                f"dataset dims (dx={dataset.dx}, du={dataset.du}) != model ({self.dx}, {self.du})"
            )
        Z = self._z(dataset.obs, dataset.act)
        # Scale the ridge with the data so it regularises the same on any units; keeps the
        # normal equations positive definite even with fewer rows than columns.
        G = Z.T @ Z + self.ridge * max(1.0, np.trace(Z.T @ Z) / Z.shape[1]) * np.eye(Z.shape[1])
        cho = scipy.linalg.cho_factor(G)
        self.W = scipy.linalg.cho_solve(cho, Z.T @ dataset.next_obs)
        self.P_inv = scipy.linalg.cho_solve(cho, np.eye(Z.shape[1]))
        resid = dataset.next_obs - Z @ self.W
        dof = max(len(Z) - Z.shape[1], 1)
        self.Sigma = resid.T @ resid / dof + 1e-12 * np.eye(self.dx)
        mse = float((resid**2).mean())
        return FitReport((mse,), (), len(dataset), time.perf_counter() - start)

    def predict(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """mean (N, dx), var (N, dx) of x' (diagonal of the predictive covariance)."""
        z = self._z(x, u)
        lever = 0.0 if self.mean_only else np.einsum("nd,de,ne->n", z, self.P_inv, z)
        return z @ self.W, np.outer(1.0 + lever, np.diag(self.Sigma))

    def sample(self, x: np.ndarray, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, dx) next states with full-covariance noise (the mean for mean_only)."""
        mean = self._z(x, u) @ self.W
        if self.mean_only:
            return mean
        L = np.linalg.cholesky(self.Sigma)
        return mean + rng.standard_normal(mean.shape) @ L.T

    def linearize(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A (N, dx, dx), B (N, dx, du), c (N, dx): the same everywhere."""
        n = len(np.atleast_2d(x))
        return (
            np.broadcast_to(self.A, (n, self.dx, self.dx)).copy(),
            np.broadcast_to(self.B, (n, self.dx, self.du)).copy(),
            np.broadcast_to(self.c, (n, self.dx)).copy(),
        )

    def save(self, path: str | Path) -> None:
        meta = dict(dx=self.dx, du=self.du, ridge=self.ridge, mean_only=self.mean_only)
        arrays = dict(W=self.W, Sigma=self.Sigma, P_inv=self.P_inv)
        save_model_file(path, "LinearGaussianModel", meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> LinearGaussianModel:
        meta, arrays = load_model_file(path, "LinearGaussianModel")
        m = cls(meta["dx"], meta["du"], meta["ridge"], meta["mean_only"])
        D = m.dx + m.du + 1
        shapes = {"W": (D, m.dx), "Sigma": (m.dx, m.dx), "P_inv": (D, D)}
        check_arrays(path, arrays, shapes)
        for name in shapes:
            setattr(m, name, arrays[name])
        return m

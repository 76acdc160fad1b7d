"""Time-varying linear-Gaussian local dynamics for guided policy search (Levine & Abbeel 2014).

From K trajectories of length T, for every t: x_{t+1} ~ N(A_t x_t + B_t u_t + c_t, Sigma_t),
obtained by fitting a joint Gaussian over [x_t, u_t, x_{t+1}] (MAP under the GMM prior of
mbrl.models.gmm_prior when given) and conditioning on [x_t, u_t].
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mbrl.data.dataset import TransitionDataset
from mbrl.models.base import FitReport
from mbrl.models.gmm_prior import GMMPrior, condition, map_joint_gaussian
from mbrl.models.io import check_arrays, load_model_file, save_model_file


class TimeVaryingLinearGaussian:
    """Per-step linear-Gaussian model. After fit: A (T, dx, dx), B (T, dx, du), c (T, dx),
    Sigma (T, dx, dx) (positive definite by construction).

    Args:
        dx, du, T: state/action dims and horizon.
        reg: diagonal added to each joint covariance (keeps the no-prior fit well-posed).
        min_eig: floor on the eigenvalues of every Sigma_t.
    """

    def __init__(self, dx: int, du: int, T: int, reg: float = 1e-6, min_eig: float = 1e-9):
        self.dx, self.du, self.T, self.reg, self.min_eig = dx, du, T, reg, min_eig
        self.A = np.tile(np.eye(dx), (T, 1, 1))
        self.B = np.zeros((T, dx, du))
        self.c = np.zeros((T, dx))
        self.Sigma = np.tile(np.eye(dx), (T, 1, 1))

    def fit_trajectories(
        self, X: np.ndarray, U: np.ndarray, prior: GMMPrior | None = None
    ) -> FitReport:
        """X (K, T+1, dx) states, U (K, T, du) actions, optional fitted GMMPrior."""
        start = time.perf_counter()
        K, T1, dx = X.shape
        if T1 != self.T + 1 or dx != self.dx or U.shape != (K, self.T, self.du):
            raise ValueError(
                f"X {X.shape}, U {U.shape}; expected (K, {self.T + 1}, {self.dx}) and "
                f"(K, {self.T}, {self.du})"
            )
        d_in = self.dx + self.du
        for t in range(self.T):
            z = np.hstack([X[:, t], U[:, t], X[:, t + 1]])
            niw = None if prior is None else prior.prior(z)
            mu, S = map_joint_gaussian(z, niw, self.reg)
            F, f, Q = condition(mu, S, d_in, self.min_eig)
            self.A[t], self.B[t], self.c[t], self.Sigma[t] = F[:, : self.dx], F[:, self.dx :], f, Q
        return FitReport(
            num_transitions=K * self.T,
            seconds=time.perf_counter() - start,
            extra={"trajectories": K, "prior": prior is not None},
        )

    def fit(self, dataset: TransitionDataset, prior: GMMPrior | None = None) -> FitReport:
        """Fit from a dataset of equal-length episodes (see TransitionDataset.trajectories)."""
        X, U = dataset.trajectories()
        return self.fit_trajectories(X, U, prior)

    def _check_t(self, t: np.ndarray | int, n: int) -> np.ndarray:
        t = np.broadcast_to(np.asarray(t, dtype=int), (n,))
        if np.any((t < 0) | (t >= self.T)):
            raise ValueError(f"time index out of range [0, {self.T}): {np.unique(t)}")
        return t

    def predict(
        self, x: np.ndarray, u: np.ndarray, t: np.ndarray | int
    ) -> tuple[np.ndarray, np.ndarray]:
        """x (N, dx), u (N, du), t (N,) or int -> mean (N, dx), var (N, dx) of x_{t+1}."""
        t = self._check_t(t, len(x))
        mean = (
            np.einsum("nij,nj->ni", self.A[t], x)
            + np.einsum("nij,nj->ni", self.B[t], u)
            + self.c[t]
        )
        return mean, np.diagonal(self.Sigma[t], axis1=1, axis2=2).copy()

    def sample(
        self, x: np.ndarray, u: np.ndarray, t: np.ndarray | int, rng: np.random.Generator
    ) -> np.ndarray:
        """(N, dx) next states with the full Sigma_t noise."""
        t = self._check_t(t, len(x))
        mean, _ = self.predict(x, u, t)
        L = np.linalg.cholesky(self.Sigma[t])
        return mean + np.einsum("nij,nj->ni", L, rng.standard_normal(mean.shape))

    def linearize(self, x: np.ndarray, u: np.ndarray, t: np.ndarray | int):
        """A (N, dx, dx), B (N, dx, du), c (N, dx) at the given time indices."""
        t = self._check_t(t, len(x))
        return self.A[t].copy(), self.B[t].copy(), self.c[t].copy()

    def save(self, path: str | Path) -> None:
        meta = dict(dx=self.dx, du=self.du, T=self.T, reg=self.reg, min_eig=self.min_eig)
        arrays = dict(A=self.A, B=self.B, c=self.c, Sigma=self.Sigma)
        save_model_file(path, "TimeVaryingLinearGaussian", meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> TimeVaryingLinearGaussian:
        meta, arrays = load_model_file(path, "TimeVaryingLinearGaussian")
        m = cls(meta["dx"], meta["du"], meta["T"], meta["reg"], meta["min_eig"])
        T, dx, du = m.T, m.dx, m.du
        shapes = {"A": (T, dx, dx), "B": (T, dx, du), "c": (T, dx), "Sigma": (T, dx, dx)}
        check_arrays(path, arrays, shapes)
        for k in shapes:
            setattr(m, k, arrays[k])
        return m

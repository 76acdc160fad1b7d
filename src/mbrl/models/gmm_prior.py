"""Gaussian-mixture prior for linear-Gaussian dynamics fits (Levine & Abbeel 2014, sec. 3.1).

A GaussianMixture (sklearn) is fitted on all past points z = [x_t, u_t, x_{t+1}] (d = 2 dx + du).
For a new batch of points the mixture's responsibilities, averaged over the batch, give the
moments (mu0, Sigma0) of the matching region; these become a Normal-inverse-Wishart prior
with pseudo-counts m (mean) and n0 (covariance): Phi = n0 * Sigma0. The MAP joint covariance
of K points with empirical mean zbar and covariance S is (Levine & Abbeel 2014, eq. 2)

    Sigma = (Phi + K S + K m / (K + m) (zbar - mu0)(zbar - mu0)^T) / (K + n0),

which stays positive definite for any K, even K << d.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits


@dataclasses.dataclass(frozen=True)
class NIWPrior:
    """Normal-inverse-Wishart prior on a joint Gaussian over z (d,).

    Attributes:
        mu0: (d,) prior mean; Phi: (d, d) scale matrix; m: mean pseudo-count;
        n0: covariance pseudo-count.
    """

    mu0: np.ndarray
    Phi: np.ndarray
    m: float
    n0: float


def map_joint_gaussian(
    z: np.ndarray, prior: NIWPrior | None, reg: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """MAP mean (d,) and covariance (d, d) of K points z (K, d) under an optional NIW prior.

    Without a prior this is the empirical (maximum-likelihood) covariance plus reg * I, which
    is rank-deficient up to the regulariser when K <= d (the baseline the prior fixes).
    """
    K, d = z.shape
    zbar = z.mean(0)
    diff = z - zbar
    S = diff.T @ diff / K
    if prior is None:
        Sigma = S
    else:
        dev = zbar - prior.mu0
        Sigma = (prior.Phi + K * S + (K * prior.m / (K + prior.m)) * np.outer(dev, dev)) / (
            K + prior.n0
        )
    Sigma = 0.5 * (Sigma + Sigma.T) + reg * np.eye(d)
    return zbar, Sigma


class GMMPrior:
    """Mixture fitted on (x_t, u_t, x_{t+1}) rows; `prior(z)` gives the NIW prior for a batch.

    Args:
        n_components: mixture size (capped by the number of points / (2 d) at fit time).
        strength: pseudo-count m = n0 given to the prior (how many samples it is worth).
        reg_covar: sklearn's diagonal added to every component covariance.
        max_rows: fit on at most this many rows, the most recent ones (the GPS code keeps
            the last `max_samples` trajectories for the same reason: EM on everything seen
            grew to most of an iteration's time, and old rows describe old controllers).
        max_iter: EM iterations at most; a refit with the same number of components starts
            from the previous mixture (warm start), so few are needed.
    """

    def __init__(
        self,
        n_components: int = 8,
        strength: float = 1.0,
        reg_covar: float = 1e-6,
        max_rows: int = 20_000,
        max_iter: int = 100,
    ):
        if n_components < 1 or strength <= 0 or max_rows < 1 or max_iter < 1:
            raise ValueError(
                f"need n_components, max_rows, max_iter >= 1 and strength > 0; got "
                f"{n_components}, {max_rows}, {max_iter}, {strength}"
            )
        self.n_components, self.strength, self.reg_covar = n_components, strength, reg_covar
        self.max_rows, self.max_iter = int(max_rows), int(max_iter)
        self.gmm: GaussianMixture | None = None

    def fit(self, z: np.ndarray, rng: np.random.Generator) -> GMMPrior:
        """z (N, d) rows [x_t, u_t, x_{t+1}] from all past data, oldest first."""
        z = z[-self.max_rows :]
        N, d = z.shape
        k = int(max(1, min(self.n_components, N // (2 * d))))
        gmm = GaussianMixture(
            k,
            covariance_type="full",
            reg_covar=self.reg_covar,
            random_state=int(rng.integers(2**31 - 1)),
            max_iter=self.max_iter,
        )
        if self.gmm is not None and self.gmm.n_components == k and self.gmm.means_.shape[1] == d:
            gmm.weights_init = self.gmm.weights_
            gmm.means_init = self.gmm.means_
            gmm.precisions_init = self.gmm.precisions_
        # One BLAS thread: EM on (N, 31) rows is many small triangular solves, which
        # OpenBLAS's threads made ~20x slower on a loaded 2-core machine (26 ms a solve).
        with threadpool_limits(1):
            self.gmm = gmm.fit(z)
        return self

    def prior(self, z: np.ndarray) -> NIWPrior:
        """NIW prior for the points z (K, d): responsibility-weighted mixture moments."""
        if self.gmm is None:
            raise RuntimeError("GMMPrior.prior called before fit")
        w = self.gmm.predict_proba(z).mean(0)  # (k,) averaged posterior cluster weights
        mus, covs = self.gmm.means_, self.gmm.covariances_
        mu0 = w @ mus
        dev = mus - mu0
        Sigma0 = np.einsum("k,kij->ij", w, covs) + np.einsum("k,ki,kj->ij", w, dev, dev)
        n = self.strength
        return NIWPrior(mu0=mu0, Phi=n * Sigma0, m=n, n0=n)


def condition(
    mu: np.ndarray, Sigma: np.ndarray, d_in: int, min_eig: float = 1e-9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Condition a joint N(mu, Sigma) over [in (d_in), out] on the input block.

    Returns gain F (d_out, d_in), offset f (d_out,), covariance Q (d_out, d_out) such that
    out | in ~ N(F in + f, Q) (Bishop 2006, eq. 2.81-2.82). The input block's Cholesky gets
    growing jitter if it fails; Q is symmetrised and its eigenvalues floored at `min_eig`, so
    it is always positive definite.

    Raises:
        np.linalg.LinAlgError: the input covariance is not finite (the fit diverged).
    """
    Sii, Sio, Soo = Sigma[:d_in, :d_in], Sigma[:d_in, d_in:], Sigma[d_in:, d_in:]
    if not np.all(np.isfinite(Sigma)):
        raise np.linalg.LinAlgError("joint covariance contains NaN/Inf; cannot condition")
    jitter = 0.0
    scale = max(float(np.trace(Sii)) / d_in, 1e-12)
    for _ in range(8):
        try:
            cho = scipy.linalg.cho_factor(Sii + jitter * np.eye(d_in))
            break
        except np.linalg.LinAlgError:
            jitter = scale * 1e-9 if jitter == 0.0 else jitter * 100
    else:
        raise np.linalg.LinAlgError(
            f"input covariance ({d_in}x{d_in}) not positive definite even with jitter {jitter}"
        )
    F = scipy.linalg.cho_solve(cho, Sio).T
    f = mu[d_in:] - F @ mu[:d_in]
    Q = Soo - F @ Sio
    Q = 0.5 * (Q + Q.T)
    evals, evecs = np.linalg.eigh(Q)
    Q = (evecs * np.maximum(evals, min_eig)) @ evecs.T
    return F, f, 0.5 * (Q + Q.T)

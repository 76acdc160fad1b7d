"""Gaussian-process dynamics (PILCO, Deisenroth & Rasmussen 2011): one GP per state dimension.

Inputs z = [x, u] (D = dx + du), targets the delta x' - x minus its mean (`fit`), or any E
targets given with `fit_arrays` (PILCO's learned end effector: E = 3 absolute positions).
Each output a has an ARD squared-exponential kernel
k_a(z, z') = sf_a^2 exp(-1/2 (z - z')^T L_a^-1 (z - z')), L_a = diag(ell_a^2), and noise
sn_a^2; hyper-parameters maximise the log marginal likelihood
(Rasmussen & Williams 2006, eq. 5.8) with L-BFGS-B. Prediction for any variant uses a basis
Xb (M, D), weights beta (E, M) and a matrix iK (E, M, M):
    mean_a = k_a(z, Xb) beta_a,   var_a = sf_a^2 - k_a(z, Xb) iK_a k_a(Xb, z) + sn_a^2.
Exact GP: Xb = X, iK = (K + sn^2 I)^-1. Sparse (DTC / projected process, R&W sec. 8.3.3)
with M inducing inputs: iK = Kmm^-1 - (Kmm + sn^-2 Kmn Knm)^-1, beta = sn^-2 (.)^-1 Kmn y.
The same (Xb, beta, iK) feed exact moment matching in mbrl.models.gp_mm.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import scipy.optimize
import torch

from mbrl.data.dataset import TransitionDataset
from mbrl.models.base import FitReport
from mbrl.models.io import check_arrays, load_model_file, save_model_file


class GPFitError(RuntimeError):
    """Hyper-parameter optimisation or factorisation failed beyond recovery."""


def robust_cholesky(K: torch.Tensor, max_tries: int = 6) -> tuple[torch.Tensor, float]:
    """Cholesky of (..., n, n) with growing diagonal jitter; returns (L, jitter used).

    Raises:
        GPFitError: K has NaN/Inf or stays indefinite at jitter 1e-2 * mean diagonal.
    """
    if not torch.isfinite(K).all():
        raise GPFitError("kernel matrix contains NaN/Inf (diverged hyper-parameters?)")
    scale = float(K.diagonal(dim1=-2, dim2=-1).mean())
    eye = torch.eye(K.shape[-1], dtype=K.dtype)
    jitter = 0.0
    for i in range(max_tries):
        L, info = torch.linalg.cholesky_ex(K + jitter * eye)
        if not bool(info.any()):
            return L, jitter
        jitter = scale * 10.0 ** (-12 + 2 * i)
    raise GPFitError(
        f"kernel matrix ({K.shape[-1]}x{K.shape[-1]}) not positive definite even "
        f"with jitter {jitter:.3g}"
    )


def se_kernel(
    X1: torch.Tensor, X2: torch.Tensor, log_ell: torch.Tensor, log_sf: torch.Tensor
) -> torch.Tensor:
    """ARD SE kernel, E outputs: X1 (N, D), X2 (M, D), log_ell (E, D), log_sf (E,) -> (E, N, M)."""
    a = X1[None] / log_ell.exp()[:, None]
    b = X2[None] / log_ell.exp()[:, None]
    d2 = (a * a).sum(-1)[..., None] + (b * b).sum(-1)[:, None] - 2 * a @ b.transpose(1, 2)
    return (2 * log_sf)[:, None, None].exp() * torch.exp(-0.5 * d2.clamp_min(0))


class GPModel:
    """Exact (or sparse, `num_inducing > 0`) GP dynamics; implements DynamicsModel.

    Args:
        dx, du: dims. num_inducing: M inducing inputs (0 = exact GP).
        outputs: E, the number of targets (default dx: one GP per state delta). With
            E != dx only `fit_arrays` and `predict_delta` apply (not a dynamics model).
        max_hyp_points: hyper-parameters are fitted on at most this many random rows (the
            exact marginal likelihood is O(N^3)). max_iter: L-BFGS-B iterations.
        min_noise_ratio: lower bound on sn / std(target), keeps K well conditioned.
    """

    def __init__(
        self,
        dx: int,
        du: int,
        num_inducing: int = 0,
        max_hyp_points: int = 400,
        max_iter: int = 150,
        min_noise_ratio: float = 1e-3,
        outputs: int | None = None,
    ) -> None:
        self.dx, self.du, self.D = dx, du, dx + du
        self.E = dx if outputs is None else int(outputs)
        if self.E < 1:
            raise ValueError(f"GPModel needs at least one output, got outputs={outputs}")
        self.num_inducing, self.max_hyp_points = num_inducing, max_hyp_points
        self.max_iter, self.min_noise_ratio = max_iter, min_noise_ratio
        E, D = self.E, self.D
        self.log_ell, self.log_sf, self.log_sn = np.zeros((E, D)), np.zeros(E), np.full(E, -2.0)
        self.y_mean = np.zeros(E)
        self.Xb, self.beta, self.iK = np.zeros((1, D)), np.zeros((E, 1)), np.zeros((E, 1, 1))

    # ---- fitting ----------------------------------------------------------------------------
    def _optimise(self, X: torch.Tensor, Y: torch.Tensor) -> dict:
        E, D = self.E, self.D
        ystd = Y.std(0).clamp_min(1e-9)
        init = np.concatenate(
            [
                np.log(X.std(0).clamp_min(1e-6).numpy())[None].repeat(E, 0).ravel(),
                np.log(ystd.numpy()),
                np.log(0.1 * ystd.numpy()),
            ]
        )
        lo_sn = np.log(self.min_noise_ratio * ystd.numpy())
        bounds = [(-7.0, 7.0)] * (E * D) + [(-10.0, 5.0)] * E + [(a, 5.0) for a in lo_sn]

        def nlml(theta: np.ndarray) -> tuple[float, np.ndarray]:
            th = torch.tensor(theta, requires_grad=True)
            ell, sf, sn = th[: E * D].view(E, D), th[E * D : E * D + E], th[E * D + E :]
            K = se_kernel(X, X, ell, sf) + (2 * sn).exp()[:, None, None] * torch.eye(len(X))
            L, info = torch.linalg.cholesky_ex(K)
            if bool(info.any()):
                return 1e25, np.zeros_like(theta)  # makes the line search back off
            alpha = torch.cholesky_solve(Y.T[..., None], L)
            val = 0.5 * (Y.T[..., None] * alpha).sum() + L.diagonal(dim1=1, dim2=2).log().sum()
            val.backward()
            return float(val.detach()) / len(X), th.grad.numpy() / len(X)

        # Matrices here are a few hundred rows: intra-op threading costs more than it gains
        # (10x slower measured on a loaded 2-core machine), so run single-threaded.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            res = scipy.optimize.minimize(
                nlml,
                init,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": self.max_iter},
            )
        finally:
            torch.set_num_threads(threads)
        theta, fallback = res.x, False
        if not np.isfinite(res.fun) or res.fun >= 1e24:
            theta, fallback = init, True  # optimiser failed: keep data-driven initial values
        self.log_ell = theta[: E * D].reshape(E, D)
        self.log_sf, self.log_sn = theta[E * D : E * D + E], theta[E * D + E :]
        return {
            "nlml_per_point": float(res.fun),
            "optimiser_fallback": fallback,
            "optimiser_message": str(res.message),
        }

    def fit(self, dataset: TransitionDataset, rng: np.random.Generator | None = None) -> FitReport:
        """Fit hyper-parameters (on <= max_hyp_points rows) then the posterior on all rows."""
        if self.E != self.dx:
            raise ValueError(
                f"fit(dataset) models state deltas (E = dx = {self.dx}); this GP "
                f"has {self.E} outputs: use fit_arrays"
            )
        return self.fit_arrays(
            np.hstack([dataset.obs, dataset.act]), dataset.next_obs - dataset.obs, rng
        )

    def fit_arrays(
        self,
        Xn: np.ndarray,
        Yn: np.ndarray,
        rng: np.random.Generator | None = None,
        hyper_from: GPModel | None = None,
    ) -> FitReport:
        """Fit on inputs Xn (N, D) and targets Yn (N, E); targets are centred by their mean.
        hyper_from: take that GP's hyper-parameters (same D and E) instead of optimising
        them; only the posterior is computed (e.g. a larger basis on the same kernel).

        Raises:
            ValueError: wrong shapes or non-finite values (named).
            GPFitError: the posterior's factorisation fails even with jitter.
        """
        start = time.perf_counter()
        rng = np.random.default_rng(0) if rng is None else rng
        Xn, Yn = np.asarray(Xn, np.float64), np.asarray(Yn, np.float64)
        if Xn.ndim != 2 or Xn.shape[1] != self.D or Yn.shape != (len(Xn), self.E):
            raise ValueError(
                f"GP inputs must be (N, {self.D}) and targets (N, {self.E}); got "
                f"{Xn.shape} and {Yn.shape}"
            )
        if len(Xn) < 2:
            raise ValueError(f"a GP needs at least 2 rows to fit, got {len(Xn)}")
        if not (np.isfinite(Xn).all() and np.isfinite(Yn).all()):
            raise ValueError("GP inputs or targets contain NaN/Inf")
        self.y_mean = Yn.mean(0)
        X, Y = torch.as_tensor(Xn), torch.as_tensor(Yn - self.y_mean)
        if self.num_inducing == 0 and len(X) > 3000:
            raise ValueError(f"exact GP on {len(X)} points is too slow; set num_inducing")
        if hyper_from is None:
            sub = rng.choice(len(X), min(len(X), self.max_hyp_points), replace=False)
            info = self._optimise(X[sub], Y[sub])
        else:
            if hyper_from.log_ell.shape != (self.E, self.D):
                raise ValueError(
                    f"hyper_from has kernels {hyper_from.log_ell.shape}; need {(self.E, self.D)}"
                )
            self.log_ell, self.log_sf = hyper_from.log_ell.copy(), hyper_from.log_sf.copy()
            self.log_sn = hyper_from.log_sn.copy()
            info = {"nlml_per_point": float("nan"), "optimiser_fallback": False,
                    "optimiser_message": "hyper-parameters copied"}  # fmt: skip
        ell, sf, sn2 = (
            torch.as_tensor(self.log_ell),
            torch.as_tensor(self.log_sf),
            torch.as_tensor(np.exp(2 * self.log_sn)),
        )
        if self.num_inducing == 0:
            K = se_kernel(X, X, ell, sf) + sn2[:, None, None] * torch.eye(len(X))
            L, jitter = robust_cholesky(K)
            self.Xb = Xn
            self.beta = torch.cholesky_solve(Y.T[..., None], L)[..., 0].numpy()
            self.iK = torch.cholesky_inverse(L).numpy()
        else:
            M = min(self.num_inducing, len(X))
            Xm = X[rng.choice(len(X), M, replace=False)]
            # A jitter floor on Kmm keeps Kmm^-1 (used in iK) from amplifying round-off.
            Kmm = se_kernel(Xm, Xm, ell, sf) + 1e-6 * (2 * sf).exp()[:, None, None] * torch.eye(M)
            Kmn = se_kernel(Xm, X, ell, sf)
            Lm, jitter = robust_cholesky(Kmm)
            A = Kmm + Kmn @ Kmn.transpose(1, 2) / sn2[:, None, None]
            La, j2 = robust_cholesky(A)
            jitter = max(jitter, j2)
            Sigma = torch.cholesky_inverse(La)
            self.Xb = Xm.numpy()
            self.beta = ((Sigma @ (Kmn @ Y.T[..., None]))[..., 0] / sn2[:, None]).numpy()
            self.iK = (torch.cholesky_inverse(Lm) - Sigma).numpy()
        # Contiguous float64 so a loaded model (always C-ordered) predicts bit-identically.
        self.Xb, self.beta, self.iK = (
            np.ascontiguousarray(a, np.float64) for a in (self.Xb, self.beta, self.iK)
        )
        info["jitter"] = jitter
        return FitReport(num_transitions=len(Xn), seconds=time.perf_counter() - start, extra=info)

    # ---- prediction -----------------------------------------------------------------------
    def predict_delta(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """z (N, D) inputs [x, u] -> mean (N, E), var (N, E) of the delta (noise included)."""
        Z = np.atleast_2d(z)
        means, vars_ = [], []
        for s in range(0, len(Z), 8192):  # rows in chunks: k is (E, rows, M)
            k = se_kernel(
                torch.as_tensor(Z[s : s + 8192], dtype=torch.float64),
                torch.as_tensor(self.Xb),
                torch.as_tensor(self.log_ell),
                torch.as_tensor(self.log_sf),
            ).numpy()
            means.append((k @ self.beta[..., None])[..., 0].T)
            vars_.append(((k @ self.iK) * k).sum(-1).T)
        mean = np.vstack(means) + self.y_mean
        var = np.exp(2 * self.log_sf) - np.vstack(vars_) + np.exp(2 * self.log_sn)
        return mean, np.maximum(var, np.exp(2 * self.log_sn))

    def predict(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (N, dx), u (N, du) -> mean (N, dx), var (N, dx) of x'."""
        if self.E != self.dx:
            raise ValueError(f"this GP has {self.E} outputs, not state deltas: use predict_delta")
        mean, var = self.predict_delta(np.hstack([np.atleast_2d(x), np.atleast_2d(u)]))
        return np.atleast_2d(x) + mean, var

    def sample(self, x: np.ndarray, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, dx) next states, independent per row and output (marginal samples)."""
        mean, var = self.predict(x, u)
        return mean + np.sqrt(var) * rng.standard_normal(mean.shape)

    # ---- files ------------------------------------------------------------------------------
    _ARRAYS = ("log_ell", "log_sf", "log_sn", "y_mean", "Xb", "beta", "iK")

    def save(self, path: str | Path) -> None:
        meta = dict(
            dx=self.dx,
            du=self.du,
            num_inducing=self.num_inducing,
            max_hyp_points=self.max_hyp_points,
            max_iter=self.max_iter,
            min_noise_ratio=self.min_noise_ratio,
            outputs=self.E,
            M=len(self.Xb),
        )
        save_model_file(path, "GPModel", meta, {k: getattr(self, k) for k in self._ARRAYS})

    @classmethod
    def load(cls, path: str | Path) -> GPModel:
        meta, arrays = load_model_file(path, "GPModel")
        M = meta.pop("M")
        m = cls(**meta)
        E, D = m.E, m.D
        check_arrays(
            path,
            arrays,
            {
                "log_ell": (E, D),
                "log_sf": (E,),
                "log_sn": (E,),
                "y_mean": (E,),
                "Xb": (M, D),
                "beta": (E, M),
                "iK": (E, M, M),
            },
        )
        for k in cls._ARRAYS:
            setattr(m, k, arrays[k])
        return m

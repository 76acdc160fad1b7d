"""The guided-policy-search trajectory update: LQG under a KL bound to the previous controller.

Levine & Abbeel 2014 ("Learning neural network policies with guided policy search under
unknown dynamics", sec. 3.1): minimise E_p[sum_t l(x_t, u_t)] subject to
KL(p(tau) || p_prev(tau)) <= epsilon, where p(u_t | x_t) = N(K_t x_t + k_t, S_t) is a
time-varying linear-Gaussian controller and the dynamics are local linear-Gaussian
x' ~ N(A x + B u + c, W). The Lagrangian gives an LQR with cost l / eta - log p_prev(u | x)
whose maximum-entropy solution is the new controller (S_t = Quu_t^-1); the dual variable
eta is found by bisection in log eta on the dual derivative KL(eta) - epsilon, which is
monotone. Cost per step: l_t = 1/2 z'C_t z + cv_t'z with z = [x; u], shapes C (T, dz, dz),
cv (T, dz), dz = dx + du; KL is summed over the T steps.

Where the public GPS code stops with "failed to find PD solution", this module falls back
explicitly: (1) a Cholesky failure at eta marks eta as too small and the search moves up;
(2) if even eta_max fails, each failing Quu has its eigenvalues floored at the smallest
eigenvalue of the previous controller's precision ("regularised"); (3) if that still
diverges (non-finite values), the previous controller is kept ("kept_previous", KL 0).
`KLStepResult.fallback` says which path ran.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg


@dataclasses.dataclass(frozen=True)
class LinearGaussianDynamics:
    """x_{t+1} ~ N(A_t x + B_t u + c_t, W_t); x_0 ~ N(x0_mean, x0_cov). A (T, dx, dx),
    B (T, dx, du), c (T, dx), W (T, dx, dx), x0_mean (dx,), x0_cov (dx, dx)."""

    A: np.ndarray
    B: np.ndarray
    c: np.ndarray
    W: np.ndarray
    x0_mean: np.ndarray
    x0_cov: np.ndarray


@dataclasses.dataclass(frozen=True)
class LinearGaussianPolicy:
    """u_t ~ N(K_t x_t + k_t, cov_t). K (T, du, dx), k (T, du), cov (T, du, du) (PD)."""

    K: np.ndarray
    k: np.ndarray
    cov: np.ndarray


@dataclasses.dataclass(frozen=True)
class KLStepConfig:
    """Settings of the dual search.

    Attributes:
        epsilon: KL bound (nats, summed over the T steps).
        eta_min / eta_max: search interval of the dual variable.
        tolerance: stop when |KL - epsilon| <= tolerance * epsilon (feasible side).
        max_iterations: bisection steps at most.
        min_eig: absolute eigenvalue floor of Quu in the last-resort regularisation.
    """

    epsilon: float = 1.0
    eta_min: float = 1e-6
    eta_max: float = 1e16
    tolerance: float = 0.1
    max_iterations: int = 60
    min_eig: float = 1e-6


@dataclasses.dataclass(frozen=True)
class KLStepResult:
    """policy: the new controller; eta: the dual variable used; kl: its KL to the previous
    controller; fallback: "none", "increased_eta", "regularised" or "kept_previous";
    iterations: dual steps."""

    policy: LinearGaussianPolicy
    eta: float
    kl: float
    fallback: str
    iterations: int


class _NotPD(Exception):
    pass


def _prev_policy_cost(prev: LinearGaussianPolicy) -> tuple[np.ndarray, np.ndarray]:
    """-log p_prev(u | x) as 1/2 z'M z + m'z (+ const): M (T, dz, dz), m (T, dz)."""
    P = np.linalg.inv(prev.cov)
    KtP = np.einsum("tux,tuv->txv", prev.K, P)
    M = np.block([[KtP @ prev.K, -KtP], [-np.einsum("tuv,tvx->tux", P, prev.K), P]])
    m = np.concatenate(
        [np.einsum("txu,tu->tx", KtP, prev.k), -np.einsum("tuv,tv->tu", P, prev.k)], 1
    )
    return M, m


def _backward(
    dyn: LinearGaussianDynamics,
    C: np.ndarray,
    cv: np.ndarray,
    M: np.ndarray,
    m: np.ndarray,
    eta: float,
    regularise: bool,
    min_eig: float,
) -> LinearGaussianPolicy:
    T, dx, du = dyn.B.shape
    Vxx, Vx = np.zeros((dx, dx)), np.zeros(dx)
    K, k, cov = np.zeros((T, du, dx)), np.zeros((T, du)), np.zeros((T, du, du))
    for t in range(T - 1, -1, -1):
        F = np.concatenate([dyn.A[t], dyn.B[t]], axis=1)  # (dx, dz)
        Qzz = C[t] / eta + M[t] + F.T @ Vxx @ F
        Qz = cv[t] / eta + m[t] + F.T @ (Vxx @ dyn.c[t] + Vx)
        Qzz = 0.5 * (Qzz + Qzz.T)
        Quu, Qux = Qzz[dx:, dx:], Qzz[dx:, :dx]
        try:
            L = scipy.linalg.cholesky(Quu, lower=True)
        except np.linalg.LinAlgError:
            if not regularise:
                raise _NotPD() from None
            # Floor the curvature at the previous controller's precision P_prev = M_uu, so
            # the regularised step is no bolder than the previous controller.
            floor = max(min_eig, float(np.linalg.eigvalsh(M[t][dx:, dx:]).min()))
            w, V = np.linalg.eigh(Quu)
            Quu = (V * np.maximum(w, floor)) @ V.T
            L = scipy.linalg.cholesky(0.5 * (Quu + Quu.T), lower=True)
        sol = scipy.linalg.cho_solve((L, True), np.column_stack([Qux, Qz[dx:], np.eye(du)]))
        K[t], k[t], cov[t] = -sol[:, :dx], -sol[:, dx], sol[:, dx + 1 :]
        Vxx = Qzz[:dx, :dx] + Qux.T @ K[t]
        Vxx = 0.5 * (Vxx + Vxx.T)
        Vx = Qz[:dx] + Qux.T @ k[t]
    return LinearGaussianPolicy(K, k, 0.5 * (cov + np.swapaxes(cov, 1, 2)))


def state_marginals(
    dyn: LinearGaussianDynamics, policy: LinearGaussianPolicy
) -> tuple[np.ndarray, np.ndarray]:
    """Forward pass: means (T, dx) and covariances (T, dx, dx) of x_t under the policy."""
    T, dx, _ = dyn.B.shape
    mu, S = np.zeros((T, dx)), np.zeros((T, dx, dx))
    mu[0], S[0] = dyn.x0_mean, dyn.x0_cov
    for t in range(T - 1):
        F = np.concatenate([dyn.A[t], dyn.B[t]], axis=1)
        Kt = policy.K[t]
        mz = np.concatenate([mu[t], Kt @ mu[t] + policy.k[t]])
        Szz = np.block([[S[t], S[t] @ Kt.T], [Kt @ S[t], Kt @ S[t] @ Kt.T + policy.cov[t]]])
        mu[t + 1] = F @ mz + dyn.c[t]
        S[t + 1] = F @ Szz @ F.T + dyn.W[t]
        S[t + 1] = 0.5 * (S[t + 1] + S[t + 1].T)
    return mu, S


def policy_kl(
    dyn: LinearGaussianDynamics, new: LinearGaussianPolicy, prev: LinearGaussianPolicy
) -> float:
    """sum_t E_{x_t ~ p}[KL(new(u | x_t) || prev(u | x_t))], in nats (trajectory KL under
    shared dynamics; Levine & Abbeel 2014, sec. 3.1)."""
    mu, S = state_marginals(dyn, new)
    du = new.k.shape[1]
    total = 0.0
    for t in range(mu.shape[0]):
        P = np.linalg.inv(prev.cov[t])
        dK, dk = new.K[t] - prev.K[t], new.k[t] - prev.k[t]
        dm = dK @ mu[t] + dk
        _, logdet_prev = np.linalg.slogdet(prev.cov[t])
        _, logdet_new = np.linalg.slogdet(new.cov[t])
        total += 0.5 * (
            np.trace(P @ new.cov[t])
            - du
            + logdet_prev
            - logdet_new
            + dm @ P @ dm
            + np.trace(dK.T @ P @ dK @ S[t])
        )
    return float(total)


def kl_step(
    dyn: LinearGaussianDynamics,
    prev: LinearGaussianPolicy,
    C: np.ndarray,
    cv: np.ndarray,
    config: KLStepConfig = KLStepConfig(),
) -> KLStepResult:
    """One KL-constrained trajectory update; never raises on an indefinite cost (see module)."""
    if not np.all(np.linalg.eigvalsh(prev.cov) > 0):
        raise ValueError("kl_step: previous policy covariance must be positive definite")
    M, m = _prev_policy_cost(prev)
    fallback = "none"

    def solve(eta: float, regularise: bool = False):
        pol = _backward(dyn, C, cv, M, m, eta, regularise, config.min_eig)
        try:
            return pol, policy_kl(dyn, pol, prev)
        except (np.linalg.LinAlgError, ValueError):
            return pol, float("inf")

    eps = config.epsilon
    lo, hi = config.eta_min, config.eta_max
    try:
        pol, kl = solve(lo)
        if kl <= eps:
            return KLStepResult(pol, lo, kl, fallback, 1)
    except _NotPD:
        fallback = "increased_eta"  # fallback (1): eta_min too small for a PD Quu
    try:
        best = (hi, *solve(hi))
    except _NotPD:
        # fallback (2): no eta in range gives a PD Quu; regularise Quu at eta_max.
        try:
            with np.errstate(all="ignore"):
                pol, kl = solve(hi, regularise=True)
        except (np.linalg.LinAlgError, ValueError):
            pol, kl = prev, float("nan")  # values overflowed to NaN inside the backward pass
        if np.isfinite(kl) and all(np.isfinite(a).all() for a in (pol.K, pol.k, pol.cov)):
            return KLStepResult(pol, hi, kl, "regularised", 2)
        # fallback (3): the regularised values diverged; keep the previous controller.
        return KLStepResult(prev, hi, 0.0, "kept_previous", 2)
    it = 2
    while it < config.max_iterations + 2:
        it += 1
        eta = float(np.sqrt(lo * hi))  # bisection in log eta
        try:
            pol, kl = solve(eta)
        except _NotPD:
            fallback = "increased_eta"
            lo = eta
            continue
        if kl > eps:
            lo = eta
        else:
            hi, best = eta, (eta, pol, kl)
            if kl >= (1 - config.tolerance) * eps:
                break
        if hi / lo < 1 + 1e-6:
            break
    eta, pol, kl = best
    return KLStepResult(pol, eta, kl, fallback, it)

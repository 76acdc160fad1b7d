"""Finite-horizon time-varying LQR: the Riccati backward pass shared by LQR and iLQR.

Notation (Tassa, Erez & Todorov 2012, "Synthesis and stabilization of complex behaviors
through online trajectory optimization", eqs. 4-11): dynamics x' = A x + B u + c, stage cost
l = 1/2 x'lxx x + 1/2 u'luu u + u'lux x + lx'x + lu'u; Q-function blocks Qxx, Quu, Qux,
Qx, Qu; value V(x) = 1/2 x'Vxx x + Vx'x; policy u = K x + k. For iLQR the same recursion
runs on deviations from a nominal trajectory (c = 0, l-derivatives at the nominal).
Shapes: A (T, dx, dx), B (T, dx, du), c (T, dx), K (T, du, dx), k (T, du).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg


class NotPositiveDefinite(np.linalg.LinAlgError):
    """Quu was not positive definite at step t (the caller regularises and retries)."""

    def __init__(self, t: int) -> None:
        super().__init__(f"Quu not positive definite at step t={t}")
        self.t = t


@dataclasses.dataclass(frozen=True)
class LQRSolution:
    """Gains and value function of a backward pass.

    Attributes:
        K: (T, du, dx) feedback gains.  k: (T, du) feed-forward terms.
        Vxx: (T+1, dx, dx) and Vx: (T+1, dx) value function coefficients per step.
        Quu: (T, du, du) action Hessians of the Q-function (iLQG: Quu^-1 is the policy
            covariance of the maximum-entropy controller).
        dV: (2,) expected cost change terms: sum k'Qu and 1/2 sum k'Quu k (line search).
    """

    K: np.ndarray
    k: np.ndarray
    Vxx: np.ndarray
    Vx: np.ndarray
    Quu: np.ndarray
    dV: np.ndarray


def backward_pass(
    A: np.ndarray,
    B: np.ndarray,
    lx: np.ndarray,
    lu: np.ndarray,
    lxx: np.ndarray,
    luu: np.ndarray,
    lux: np.ndarray,
    c: np.ndarray | None = None,
    mu: float = 0.0,
) -> LQRSolution:
    """Riccati recursion with Levenberg-Marquardt regularisation mu on Vxx (Tassa 2012, eq. 10).

    lx (T+1, dx) and lxx (T+1, dx, dx) include the terminal step; lu (T, du), luu (T, du,
    du), lux (T, du, dx). Raises NotPositiveDefinite if a regularised Quu has no Cholesky
    factor; callers decide how to regularise further (iLQR raises mu).
    """
    T, dx, du = B.shape
    c = np.zeros((T, dx)) if c is None else c
    K = np.zeros((T, du, dx))
    k = np.zeros((T, du))
    Vxx = np.zeros((T + 1, dx, dx))
    Vx = np.zeros((T + 1, dx))
    Quu_all = np.zeros((T, du, du))
    Vxx[T], Vx[T] = lxx[T], lx[T]
    dV = np.zeros(2)
    I = np.eye(dx)
    for t in range(T - 1, -1, -1):
        At, Bt, V, v = A[t], B[t], Vxx[t + 1], Vx[t + 1]
        v_c = v + V @ c[t]
        Qx = lx[t] + At.T @ v_c
        Qu = lu[t] + Bt.T @ v_c
        Qxx = lxx[t] + At.T @ V @ At
        Quu = luu[t] + Bt.T @ V @ Bt
        Qux = lux[t] + Bt.T @ V @ At
        Quu = 0.5 * (Quu + Quu.T)
        # Gains from the regularised Q (Tassa 2012, eq. 10: mu penalises state deviation)...
        Vreg = mu * I
        Quu_r = Quu + Bt.T @ Vreg @ Bt
        Qux_r = Qux + Bt.T @ Vreg @ At
        try:
            cho = scipy.linalg.cho_factor(Quu_r, lower=True, check_finite=True)
        except (np.linalg.LinAlgError, ValueError) as exc:
            raise NotPositiveDefinite(t) from exc
        kK = -scipy.linalg.cho_solve(cho, np.column_stack([Qu, Qux_r]))
        k[t], K[t] = kK[:, 0], kK[:, 1:]
        Quu_all[t] = Quu_r
        # ...the value update from the unregularised Q in the form that stays exact for
        # any gains (Tassa 2012, eq. 11); regularised Q here would drive Vxx towards -mu.
        Vx[t] = Qx + K[t].T @ Quu @ k[t] + K[t].T @ Qu + Qux.T @ k[t]
        Vt = Qxx + K[t].T @ Quu @ K[t] + K[t].T @ Qux + Qux.T @ K[t]
        Vxx[t] = 0.5 * (Vt + Vt.T)
        dV += np.array([k[t] @ Qu, 0.5 * k[t] @ Quu @ k[t]])
    return LQRSolution(K, k, Vxx, Vx, Quu_all, dV)


def lqr(
    A: np.ndarray,
    B: np.ndarray,
    Q: np.ndarray,
    R: np.ndarray,
    Qf: np.ndarray,
    c: np.ndarray | None = None,
) -> LQRSolution:
    """Finite-horizon LQR for x' = A_t x + B_t u + c_t, cost sum 1/2(x'Q x + u'R u) + 1/2 x'Qf x.

    A (T, dx, dx) or (dx, dx) (time-invariant), B likewise, Q (dx, dx), R (du, du),
    Qf (dx, dx). Returns the optimal affine policy u_t = K_t x + k_t.
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if A.ndim == 2:
        raise ValueError("lqr: pass A as (T, dx, dx); use np.repeat(A[None], T, 0) for LTI")
    T, dx, du = B.shape
    lxx = np.concatenate([np.repeat(np.asarray(Q)[None], T, 0), np.asarray(Qf)[None]])
    return backward_pass(
        A,
        B,
        lx=np.zeros((T + 1, dx)),
        lu=np.zeros((T, du)),
        lxx=lxx,
        luu=np.repeat(np.asarray(R)[None], T, 0),
        lux=np.zeros((T, du, dx)),
        c=c,
    )

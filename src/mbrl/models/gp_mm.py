"""Exact moment matching of a GP with SE kernels under a Gaussian input (PILCO).

For z ~ N(m, S) (D,), returns the exact mean and covariance of the GP prediction and the
input-output covariance (Deisenroth & Rasmussen 2011, sec. 2.2; Deisenroth 2010, thesis
eqs. 2.34-2.57; Candela et al. 2003). With nu_i = Xb_i - m and L_a = diag(ell_a^2):
    q_ai      = sf_a^2 |S L_a^-1 + I|^-1/2 exp(-1/2 nu_i^T (S + L_a)^-1 nu_i)
    mu_a      = beta_a^T q_a
    R         = S (L_a^-1 + L_b^-1) + I
    Q_ij      = k_a(Xb_i, m) k_b(Xb_j, m) |R|^-1/2 exp(1/2 z_ij^T R^-1 S z_ij),
                z_ij = L_a^-1 nu_i + L_b^-1 nu_j
    Cov_ab    = beta_a^T Q beta_b - mu_a mu_b + delta_ab (sf_a^2 - tr(iK_a Q) + sn_a^2)
    Cov[z, d_a] = S (S + L_a)^-1 sum_i beta_ai q_ai nu_i
"""

from __future__ import annotations

import numpy as np

from mbrl.models.gp import GPModel


def moment_match(
    gp: GPModel, m: np.ndarray, S: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Delta moments under a Gaussian input.

    Args:
        gp: a fitted GPModel. m: (D,) input mean. S: (D, D) input covariance (PSD; may be
            singular, e.g. a deterministic action block).
    Returns:
        mu (E,) mean of the delta, Sigma (E, E) its covariance (noise included),
        C (D, E) covariance between the input z and the delta.
    """
    E, D = gp.E, gp.D
    nu = gp.Xb - m  # (M, D)
    iL = np.exp(-2 * gp.log_ell)  # (E, D) diagonals of L_a^-1
    sf2, sn2 = np.exp(2 * gp.log_sf), np.exp(2 * gp.log_sn)
    I = np.eye(D)
    mu = np.empty(E)
    C = np.empty((D, E))
    logk = np.empty((E, len(nu)))
    for a in range(E):
        SL = S + np.diag(1.0 / iL[a])  # S + L_a
        inv_nu = np.linalg.solve(SL, nu.T).T  # (M, D) rows (S + L_a)^-1 nu_i
        _, logdet = np.linalg.slogdet(S * iL[a][None, :] + I)
        q = sf2[a] * np.exp(-0.5 * logdet - 0.5 * (nu * inv_nu).sum(1))
        bq = gp.beta[a] * q
        mu[a] = bq.sum()
        C[:, a] = S @ (inv_nu.T @ bq)
        logk[a] = np.log(sf2[a]) - 0.5 * (nu * nu * iL[a]).sum(1)
    Sigma = np.empty((E, E))
    for a in range(E):
        na = nu * iL[a]  # (M, D) rows L_a^-1 nu_i
        for b in range(a, E):
            nb = nu * iL[b]
            R = S * (iL[a] + iL[b])[None, :] + I
            T = np.linalg.solve(R, S)
            T = 0.5 * (T + T.T)
            _, logdetR = np.linalg.slogdet(R)
            qa = np.einsum("id,de,ie->i", na, T, na)
            qb = np.einsum("jd,de,je->j", nb, T, nb)
            cross = na @ T @ nb.T
            logQ = (
                logk[a][:, None]
                + logk[b][None, :]
                + 0.5 * (qa[:, None] + qb[None, :] + 2 * cross)
                - 0.5 * logdetR
            )
            Q = np.exp(logQ)
            val = gp.beta[a] @ Q @ gp.beta[b] - mu[a] * mu[b]
            if a == b:
                val += sf2[a] - np.sum(gp.iK[a] * Q) + sn2[a]
            Sigma[a, b] = Sigma[b, a] = val
    return mu + gp.y_mean, 0.5 * (Sigma + Sigma.T), C


def propagate_state(
    gp: GPModel, mx: np.ndarray, Sx: np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """x ~ N(mx (dx,), Sx (dx, dx)), known u (du,) -> mean (dx,), cov (dx, dx) of x' = x + d.

    Cov[x'] = Sx + Sigma_d + C_x + C_x^T, with C_x the state rows of Cov[z, d].
    """
    dx, du = gp.dx, gp.du
    S = np.zeros((dx + du, dx + du))
    S[:dx, :dx] = Sx
    mu, Sd, C = moment_match(gp, np.concatenate([mx, u]), S)
    Cx = C[:dx]
    cov = Sx + Sd + Cx + Cx.T
    return mx + mu, 0.5 * (cov + cov.T)

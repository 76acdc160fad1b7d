"""PILCO's analytic long-term prediction in torch (Deisenroth & Rasmussen 2011, sec. 2-3).

A Gaussian state x_t ~ N(m_t, S_t) (dx,) is pushed through
  1. the policy u = u_max sin(W x + b) (a linear policy squashed by a sine, PILCO's
     `gSin`: exact mean, covariance and input-output covariance of sin of a Gaussian,
     Deisenroth 2010, thesis appendix A.1),
  2. the GP dynamics under the joint Gaussian over [x, u] (exact moment matching, the
     same equations as mbrl.models.gp_mm but batched over outputs and differentiable),
  3. x_{t+1} = x_t + delta with Cov[x'] = S + Sigma_d + Cov[x, d] + Cov[x, d]^T,
and the expected saturating cost of the end effector is summed over the horizon.
The gradient of that sum with respect to the policy parameters is the exact derivative of
these closed-form moments; PILCO derives it by hand (thesis sec. 3.4), here torch autograd
computes the same quantity (no sampling, no finite differences).

End-effector moments come from one of two sources (`EEModel`):
- `gp_ee` (the default of mbrl.loop.pilco): a second GP, fitted on the measured end
  effector, maps q to ee; its moments under the predicted q ~ N(m, S) are exact moment
  matching again. Nothing about the arm's geometry is used.
- `fk_ee` (the kinematic variant): the arm's known FK linearised at the state mean,
  e ~ N(fk(m), J S J^T).
Every function takes a leading batch B of independent problems (one per goal, so the
policies for many goals are optimised in one vectorised objective).
Shapes: B batch, E = dx GP outputs, M basis points, D = dx + du GP inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from mbrl.costs.saturating import expected_saturating_cost
from mbrl.models.gp import GPModel


@dataclasses.dataclass(frozen=True)
class GPTensors:
    """A fitted GPModel as float64 tensors (constants of the policy objective).

    Attributes: Xb (M, D) basis, beta (E, M) weights, iK (E, M, M), iL (E, D) inverse
    squared length-scales, sf2 (E,) signal and sn2 (E,) noise variances, y_mean (E,).
    """

    Xb: Tensor
    beta: Tensor
    iK: Tensor
    iL: Tensor
    sf2: Tensor
    sn2: Tensor
    y_mean: Tensor

    @classmethod
    def from_model(cls, gp: GPModel) -> GPTensors:
        t = lambda a: torch.as_tensor(np.asarray(a, np.float64))  # noqa: E731
        return cls(
            Xb=t(gp.Xb),
            beta=t(gp.beta),
            iK=t(gp.iK),
            iL=t(np.exp(-2 * gp.log_ell)),
            sf2=t(np.exp(2 * gp.log_sf)),
            sn2=t(np.exp(2 * gp.log_sn)),
            y_mean=t(gp.y_mean),
        )


def moment_match(g: GPTensors, m: Tensor, S: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Delta moments for z ~ N(m (B, D), S (B, D, D)).

    Returns mean (B, E), covariance (B, E, E) (noise included) and Cov[z, d] (B, D, E);
    equations as in mbrl.models.gp_mm (Deisenroth 2010, eqs. 2.34-2.57), all outputs at once.
    """
    E, D = g.iL.shape
    eye = torch.eye(D, dtype=m.dtype)
    iL = g.iL[None, :, None, :]  # (1, E, 1, D)
    nu = g.Xb[None] - m[:, None]  # (B, M, D)
    SL = S[:, None] + torch.diag_embed(1.0 / g.iL)[None]  # (B, E, D, D) S + L_a
    rhs = nu.transpose(1, 2)[:, None].expand(-1, E, -1, -1)  # (B, E, D, M)
    inv_nu = torch.linalg.solve(SL, rhs).transpose(-1, -2)  # (B, E, M, D)
    logdet = torch.linalg.slogdet(S[:, None] * iL + eye)[1]  # (B, E)
    quad = (nu[:, None] * inv_nu).sum(-1)  # (B, E, M)
    q = g.sf2[None, :, None] * torch.exp(-0.5 * logdet[..., None] - 0.5 * quad)
    bq = g.beta[None] * q  # (B, E, M)
    mu = bq.sum(-1)  # (B, E)
    C = S @ (inv_nu.transpose(-1, -2) @ bq[..., None])[..., 0].transpose(1, 2)  # (B, D, E)
    na = nu[:, None] * iL  # (B, E, M, D) rows L_a^-1 nu_i
    logk = torch.log(g.sf2)[None, :, None] - 0.5 * (nu[:, None] * na).sum(-1)  # (B, E, M)
    R = S[:, None, None] * (iL[:, :, None] + iL[:, None, :]) + eye  # (B, E, E, D, D)
    T = torch.linalg.solve(R, S[:, None, None].expand(-1, E, E, -1, -1))
    T = 0.5 * (T + T.transpose(-1, -2))
    logdetR = torch.linalg.slogdet(R)[1]  # (B, E, E)
    naT = na[:, :, None] @ T  # (B, E, E, M, D) rows (L_a^-1 nu_i)^T T_ab
    nbT = na[:, None] @ T  # (B, E, E, M, D) rows (L_b^-1 nu_j)^T T_ab
    qa = (naT * na[:, :, None]).sum(-1)  # (B, E, E, M)
    qb = (nbT * na[:, None]).sum(-1)  # (B, E, E, M)
    cross = naT @ na[:, None].transpose(-1, -2)  # (B, E, E, M, M)
    logQ = (
        logk[:, :, None, :, None]
        + logk[:, None, :, None, :]
        + 0.5 * (qa[..., :, None] + qb[..., None, :] + 2 * cross)
        - 0.5 * logdetR[..., None, None]
    )
    Q = torch.exp(logQ)
    Sigma = torch.einsum("ai,zabij,bj->zab", g.beta, Q, g.beta) - mu[:, :, None] * mu[:, None]
    diagQ = Q[:, torch.arange(E), torch.arange(E)]  # (B, E, M, M)
    Sigma = Sigma + torch.diag_embed(g.sf2 - (g.iK[None] * diagQ).sum((-1, -2)) + g.sn2)
    return mu + g.y_mean, 0.5 * (Sigma + Sigma.transpose(1, 2)), C


def gp_predict(g: GPTensors, z: Tensor) -> tuple[Tensor, Tensor]:
    """The GP at deterministic inputs z (B, D) -> mean (B, E) (targets' mean included) and
    variance (B, E) (noise included), differentiable in z."""
    d = z[:, None, None, :] - g.Xb[None, None]  # (B, 1, M, D)
    k = g.sf2[None, :, None] * torch.exp(-0.5 * (d * d * g.iL[None, :, None]).sum(-1))  # (B, E, M)
    mean = (k * g.beta[None]).sum(-1) + g.y_mean
    var = g.sf2 - ((k[..., None, :] @ g.iK[None])[..., 0, :] * k).sum(-1) + g.sn2
    return mean, var.clamp_min(1e-12)


def sin_policy_moments(
    W: Tensor, b: Tensor, m: Tensor, S: Tensor, u_max: float = 1.0
) -> tuple[Tensor, Tensor, Tensor]:
    """u = u_max sin(W x + b) for x ~ N(m (B, dx), S (B, dx, dx)); W (B, du, dx), b (B, du).

    Returns mean (B, du), covariance (B, du, du) and Cov[x, u] (B, dx, du), exact for the
    sine of a Gaussian: with a = W x + b ~ N(ma, Sa),
      E[sin a_i] = exp(-Sa_ii/2) sin(ma_i),
      E[sin a_i sin a_j] = 1/2 (exp(-(Sa_ii + Sa_jj - 2 Sa_ij)/2) cos(ma_i - ma_j)
                               - exp(-(Sa_ii + Sa_jj + 2 Sa_ij)/2) cos(ma_i + ma_j)),
      Cov[x, sin a_i] = Cov[x, a_i] E[cos a_i] (Stein's lemma).
    """
    ma = (W @ m[..., None])[..., 0] + b  # (B, du)
    SWt = S @ W.transpose(1, 2)  # (B, dx, du) = Cov[x, a]
    Sa = W @ SWt
    sa = Sa.diagonal(dim1=1, dim2=2)
    decay = torch.exp(-0.5 * sa)
    mu = u_max * decay * torch.sin(ma)
    sii = sa[:, :, None] + sa[:, None, :]
    e_ss = 0.5 * (
        torch.exp(-0.5 * (sii - 2 * Sa)) * torch.cos(ma[:, :, None] - ma[:, None, :])
        - torch.exp(-0.5 * (sii + 2 * Sa)) * torch.cos(ma[:, :, None] + ma[:, None, :])
    )
    Su = u_max**2 * e_ss - mu[:, :, None] * mu[:, None, :]
    C = SWt * (u_max * decay * torch.cos(ma))[:, None, :]
    return mu, 0.5 * (Su + Su.transpose(1, 2)), C


def step_moments(
    g: GPTensors, W: Tensor, b: Tensor, m: Tensor, S: Tensor, u_max: float = 1.0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One closed-loop step: x ~ N(m (B, dx), S (B, dx, dx)) -> mean, cov of x' (same
    shapes), and the joint Gaussian over z = [x, u] it came from: mean (B, D), cov (B, D, D)."""
    dx = m.shape[-1]
    mu_u, Su, Cxu = sin_policy_moments(W, b, m, S, u_max)
    mz = torch.cat([m, mu_u], -1)
    Sz = torch.cat([torch.cat([S, Cxu], 2), torch.cat([Cxu.transpose(1, 2), Su], 2)], 1)
    mu_d, Sd, Czd = moment_match(g, mz, Sz)
    Cx = Czd[:, :dx]
    S_next = S + Sd + Cx + Cx.transpose(1, 2)
    return m + mu_d, 0.5 * (S_next + S_next.transpose(1, 2)), mz, Sz


# (x' mean (B, dx), x' cov (B, dx, dx), z mean (B, D), z cov (B, D, D)) -> end effector
# after the step: mean (B, 3) m, cov (B, 3, 3) m^2.
EEModel = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


def gp_ee(g_ee: GPTensors) -> EEModel:
    """The learned end effector: ee from the GP on q (absolute targets), moment matched
    under the predicted state's Gaussian (the mean includes the targets' mean)."""
    if g_ee.iL.shape[0] != 3:
        raise ValueError(f"the end-effector GP needs 3 outputs, has {g_ee.iL.shape[0]}")

    def ee(m: Tensor, S: Tensor, mz: Tensor, Sz: Tensor) -> tuple[Tensor, Tensor]:
        mu, Sigma, _ = moment_match(g_ee, m, S)
        return mu, Sigma

    return ee


def fk_ee(fk: Callable[[Tensor], Tensor]) -> EEModel:
    """The kinematic variant: FK of the predicted joints, linearised at their mean."""

    def ee(m: Tensor, S: Tensor, mz: Tensor, Sz: Tensor) -> tuple[Tensor, Tensor]:
        return ee_moments(fk, m, S)

    return ee


def ee_moments(fk: Callable[[Tensor], Tensor], m: Tensor, S: Tensor) -> tuple[Tensor, Tensor]:
    """End effector under q ~ N(m (B, nj), S): FK linearised at m -> mean (B, 3), cov (B, 3, 3)."""
    # Rows are independent, so the Jacobian of the row sum is every row's Jacobian at once.
    J = torch.autograd.functional.jacobian(lambda q: fk(q).sum(0), m, create_graph=True)
    J = J.permute(1, 0, 2)  # (B, 3, nj)
    return fk(m), J @ S @ J.transpose(1, 2)


def predicted_cost(
    g: GPTensors,
    W: Tensor,
    b: Tensor,
    m0: Tensor,
    S0: Tensor,
    horizon: int,
    ee: EEModel,
    goal: Tensor,
    width: float,
    u_max: float = 1.0,
    terminal_weight: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Expected saturating cost of the end effector summed over t = 1..horizon, plus
    terminal_weight x the last step's (the episode goes on after the horizon), per problem.

    Args:
        W (B, du, dx), b (B, du): policy parameters; m0 (B, dx), S0 (B, dx, dx): start
        distribution; ee: where the end-effector moments come from (`gp_ee`, `fk_ee`);
        goal (B, 3) m; width sigma_c, m; u_max: action bound.
    Returns:
        cost (B,), state means (horizon + 1, B, dx) and covariances (horizon + 1, B, dx, dx).
    """
    m, S = m0, S0
    total = torch.zeros(m0.shape[0], dtype=m0.dtype)
    means, covs = [m], [S]
    for t in range(horizon):
        m, S, mz, Sz = step_moments(g, W, b, m, S, u_max)
        e_m, e_S = ee(m, S, mz, Sz)
        weight = 1.0 + (terminal_weight if t == horizon - 1 else 0.0)
        total = total + weight * expected_saturating_cost(e_m, e_S, goal, width)
        means.append(m)
        covs.append(S)
    return total, torch.stack(means), torch.stack(covs)

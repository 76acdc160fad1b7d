"""The KL-constrained LQG step respects its bound and survives indefinite costs."""

from __future__ import annotations

import numpy as np
import pytest

from mbrl.control.gps_kl import (
    KLStepConfig,
    LinearGaussianDynamics,
    LinearGaussianPolicy,
    kl_step,
    policy_kl,
    state_marginals,
)

T, dx, du = 12, 2, 1


def _problem(cost_sign: float = 1.0):
    A = np.repeat(np.array([[1.0, 0.1], [0.0, 1.0]])[None], T, 0)
    B = np.repeat(np.array([[0.005], [0.1]])[None], T, 0)
    dyn = LinearGaussianDynamics(
        A,
        B,
        np.zeros((T, dx)),
        np.repeat(1e-4 * np.eye(dx)[None], T, 0),
        np.array([1.0, 0.0]),
        1e-2 * np.eye(dx),
    )
    prev = LinearGaussianPolicy(
        np.zeros((T, du, dx)), np.zeros((T, du)), np.repeat(np.eye(du)[None], T, 0)
    )
    C = np.zeros((T, dx + du, dx + du))
    C[:, :dx, :dx] = cost_sign * np.diag([10.0, 1.0])
    C[:, dx:, dx:] = 0.01 * cost_sign
    return dyn, prev, C, np.zeros((T, dx + du))


def _expected_cost(dyn, pol, C):
    mu, S = state_marginals(dyn, pol)
    total = 0.0
    for t in range(T):
        Kt = pol.K[t]
        mz = np.concatenate([mu[t], Kt @ mu[t] + pol.k[t]])
        Szz = np.block([[S[t], S[t] @ Kt.T], [Kt @ S[t], Kt @ S[t] @ Kt.T + pol.cov[t]]])
        total += 0.5 * (mz @ C[t] @ mz + np.trace(C[t] @ Szz))
    return total


@pytest.mark.parametrize("epsilon", [0.1, 1.0, 5.0])
def test_kl_step_meets_its_bound_and_lowers_expected_cost(epsilon):
    dyn, prev, C, cv = _problem()
    res = kl_step(dyn, prev, C, cv, KLStepConfig(epsilon=epsilon))
    assert res.kl <= epsilon * (1 + 1e-9)
    np.testing.assert_allclose(policy_kl(dyn, res.policy, prev), res.kl)
    assert res.kl >= 0.9 * epsilon * 0.99  # the bound is active: it is a step of size epsilon
    assert _expected_cost(dyn, res.policy, C) < _expected_cost(dyn, prev, C)
    assert res.fallback == "none"
    assert np.all(np.linalg.eigvalsh(res.policy.cov) > 0)


def test_larger_bound_gives_lower_cost():
    dyn, prev, C, cv = _problem()
    small = kl_step(dyn, prev, C, cv, KLStepConfig(epsilon=0.1))
    large = kl_step(dyn, prev, C, cv, KLStepConfig(epsilon=5.0))
    assert _expected_cost(dyn, large.policy, C) < _expected_cost(dyn, small.policy, C)
    assert large.eta < small.eta


def test_indefinite_cost_falls_back_to_larger_eta_without_raising():
    # A negative-definite cost rewards large |u|: Quu < 0 for small eta, where the GPS code
    # stops with "failed to find PD solution". Here eta moves up until Quu is PD.
    dyn, prev, C, cv = _problem(cost_sign=-1.0)
    res = kl_step(dyn, prev, C, cv, KLStepConfig(epsilon=0.5))
    assert res.fallback == "increased_eta"
    assert res.kl <= 0.5 * (1 + 1e-9)
    assert np.all(np.isfinite(res.policy.K)) and np.all(np.linalg.eigvalsh(res.policy.cov) > 0)


def test_no_pd_eta_in_range_regularises_quu_without_raising():
    dyn, prev, C, cv = _problem()
    C[:, dx:, dx:] = -5.0  # only the action cost is indefinite: the values stay finite
    res = kl_step(dyn, prev, C, cv, KLStepConfig(epsilon=0.5, eta_max=1.0))
    assert res.fallback == "regularised"
    assert np.all(np.isfinite(res.policy.K)) and np.all(np.isfinite(res.policy.k))
    assert np.all(np.linalg.eigvalsh(res.policy.cov) > 0)


def test_previous_policy_with_singular_covariance_is_rejected():
    dyn, prev, C, cv = _problem()
    bad = LinearGaussianPolicy(prev.K, prev.k, np.zeros_like(prev.cov))
    with pytest.raises(ValueError, match="positive definite"):
        kl_step(dyn, bad, C, cv)


def test_diverging_regularised_step_keeps_the_previous_controller():
    dyn, prev, C, cv = _problem(cost_sign=-1.0)
    res = kl_step(dyn, prev, C, cv, KLStepConfig(epsilon=0.5, eta_max=1e-3))
    assert res.fallback == "kept_previous" and res.kl == 0.0
    assert res.policy is prev

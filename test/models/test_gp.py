"""GP dynamics: fit quality, exact moment matching against Monte-Carlo, failure paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbrl.models.gp import GPFitError, GPModel, robust_cholesky
from mbrl.models.gp_mm import moment_match, propagate_state

# Monte-Carlo with 100k input samples: standard error of the mean ~ 0.3% of the output
# spread; tolerances below are 1% of the moment (mean: of the spread) plus that margin.
MC_SAMPLES = 100_000


@pytest.fixture(scope="module", params=[0, 60], ids=["exact", "sparse"])
def gp(request, nonlinear_data):
    model = GPModel(2, 1, num_inducing=request.param, max_iter=100)
    # The exact GP on 10 episodes (200 points) keeps the Monte-Carlo reference cheap.
    data = nonlinear_data.select_episodes(np.arange(10)) if request.param == 0 else nonlinear_data
    report = model.fit(data, np.random.default_rng(0))
    assert not report.extra["optimiser_fallback"]
    return model


def test_gp_fits_the_nonlinear_system(gp, nonlinear_data):
    mean, var = gp.predict(nonlinear_data.obs[:100], nonlinear_data.act[:100])
    err = mean - nonlinear_data.next_obs[:100]
    assert np.sqrt(np.mean(err**2)) < 0.01  # noise std is 0.005
    assert np.all(var > 0)


def test_moment_matching_agrees_with_monte_carlo(gp):
    rng = np.random.default_rng(1)
    m = np.array([0.2, -0.3, 0.5])
    S = np.array([[0.05**2, 0.001, 0.0], [0.001, 0.1**2, 0.0], [0.0, 0.0, 0.02**2]])
    mu, Sigma, C = moment_match(gp, m, S)
    z = rng.multivariate_normal(m, S, size=MC_SAMPLES)
    pm, pv = gp.predict_delta(z)
    mc_Sigma = np.cov(pm.T) + np.diag(pv.mean(0))
    mc_C = (z - z.mean(0)).T @ (pm - pm.mean(0)) / len(z)
    spread = np.sqrt(np.diag(mc_Sigma))
    np.testing.assert_allclose(mu, pm.mean(0), atol=0.02 * spread.max())
    np.testing.assert_allclose(Sigma, mc_Sigma, rtol=0.03, atol=0.03 * mc_Sigma.max())
    np.testing.assert_allclose(C, mc_C, rtol=0.03, atol=0.03 * np.abs(mc_C).max())


def test_propagate_state_matches_monte_carlo(gp):
    rng = np.random.default_rng(2)
    mx, Sx, u = np.array([0.1, 0.4]), np.diag([0.04, 0.06]) ** 2, np.array([-0.3])
    mean, cov = propagate_state(gp, mx, Sx, u)
    x = rng.multivariate_normal(mx, Sx, size=MC_SAMPLES)
    nxt = gp.sample(x, np.repeat(u[None], MC_SAMPLES, 0), rng)
    np.testing.assert_allclose(mean, nxt.mean(0), atol=0.02 * np.sqrt(cov.diagonal()).max())
    np.testing.assert_allclose(cov, np.cov(nxt.T), rtol=0.03, atol=0.03 * cov.max())


def test_robust_cholesky_adds_jitter_then_fails_clearly():
    v = torch.randn(5, 1, dtype=torch.float64)
    L, jitter = robust_cholesky(v @ v.T)  # rank 1
    assert jitter > 0 and torch.isfinite(L).all()
    with pytest.raises(GPFitError, match="not positive definite"):
        robust_cholesky(-torch.eye(3, dtype=torch.float64))
    with pytest.raises(GPFitError, match="NaN"):
        robust_cholesky(torch.full((2, 2), float("nan"), dtype=torch.float64))


def test_exact_gp_refuses_huge_datasets(nonlinear_data):
    from mbrl.data.dataset import TransitionDataset

    big = TransitionDataset.concat([nonlinear_data] * 6)
    with pytest.raises(ValueError, match="num_inducing"):
        GPModel(2, 1).fit(big)

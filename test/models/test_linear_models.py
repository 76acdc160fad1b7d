"""Analytic checks of the linear-Gaussian models: global and time-varying with GMM prior."""

from __future__ import annotations

import numpy as np
import pytest

from mbrl.data.dataset import TransitionDataset
from mbrl.models.gmm_prior import GMMPrior, condition, map_joint_gaussian
from mbrl.models.linear import LinearGaussianModel
from mbrl.models.local_lg import TimeVaryingLinearGaussian

from ._systems import linear_system, rollouts


def test_global_linear_gaussian_recovers_A_B_c_and_noise():
    A, B, c = linear_system(6, 3, seed=1)
    rng = np.random.default_rng(1)
    X, U = rollouts(lambda x, u: x @ A.T + u @ B.T + c, 6, 3, K=40, T=25, rng=rng, noise=0.01)
    model = LinearGaussianModel(6, 3)
    model.fit(TransitionDataset.from_episodes(list(X), list(U)))
    np.testing.assert_allclose(model.A, A, atol=5e-3)
    np.testing.assert_allclose(model.B, B, atol=5e-3)
    np.testing.assert_allclose(model.c, c, atol=5e-3)
    np.testing.assert_allclose(np.diag(model.Sigma), 1e-4, rtol=0.15)
    A_, B_, c_ = model.linearize(X[0, :4], U[0, :4])
    assert A_.shape == (4, 6, 6) and B_.shape == (4, 6, 3) and c_.shape == (4, 6)


def test_local_lg_recovers_time_varying_system():
    dx, du, T = 3, 2, 6
    rng = np.random.default_rng(2)
    As = [linear_system(dx, du, seed=10 + t)[0] for t in range(T)]
    Bs = [linear_system(dx, du, seed=10 + t)[1] for t in range(T)]
    X = np.zeros((200, T + 1, dx))
    U = rng.standard_normal((200, T, du))
    X[:, 0] = rng.standard_normal((200, dx))
    for t in range(T):
        X[:, t + 1] = X[:, t] @ As[t].T + U[:, t] @ Bs[t].T + 0.01 * rng.standard_normal((200, dx))
    model = TimeVaryingLinearGaussian(dx, du, T)
    model.fit_trajectories(X, U)
    for t in range(T):
        np.testing.assert_allclose(model.A[t], As[t], atol=0.01)
        np.testing.assert_allclose(model.B[t], Bs[t], atol=0.01)


def _tv_error(model: TimeVaryingLinearGaussian, X: np.ndarray, U: np.ndarray) -> float:
    errs = [
        ((model.predict(X[:, t], U[:, t], t)[0] - X[:, t + 1]) ** 2).mean() for t in range(model.T)
    ]
    return float(np.mean(errs))


def test_gmm_prior_beats_no_prior_with_five_trajectories_in_15d():
    """Levine & Abbeel 2014: 5 samples of a 15-D state (d = 35 > K) need the prior."""
    dx, du, T = 15, 5, 12
    A, B, c = linear_system(dx, du, seed=3)
    rng = np.random.default_rng(3)
    f = lambda x, u: x @ A.T + u @ B.T + c  # noqa: E731
    past_X, past_U = rollouts(f, dx, du, K=60, T=T, rng=rng, noise=0.01)
    z = np.concatenate(
        [np.hstack([past_X[:, t], past_U[:, t], past_X[:, t + 1]]) for t in range(T)]
    )
    prior = GMMPrior(n_components=4).fit(z, rng)
    X, U = rollouts(f, dx, du, K=5, T=T, rng=rng, noise=0.01)
    test_X, test_U = rollouts(f, dx, du, K=50, T=T, rng=rng, noise=0.01)
    plain = TimeVaryingLinearGaussian(dx, du, T)
    plain.fit_trajectories(X, U)
    with_prior = TimeVaryingLinearGaussian(dx, du, T)
    with_prior.fit_trajectories(X, U, prior)
    e_plain, e_prior = _tv_error(plain, test_X, test_U), _tv_error(with_prior, test_X, test_U)
    assert e_prior < 0.1 * e_plain, (e_prior, e_plain)
    assert e_prior < 1e-3  # close to the noise floor 1e-4
    for model in (plain, with_prior):
        assert np.linalg.eigvalsh(model.Sigma).min() > 0  # positive definite at every t
        np.linalg.cholesky(model.Sigma)


def test_map_joint_gaussian_is_positive_definite_with_one_sample():
    z = np.random.default_rng(0).standard_normal((1, 8))
    _, S = map_joint_gaussian(z, None, reg=1e-6)
    assert np.linalg.eigvalsh(S).min() > 0


def test_condition_failure_paths():
    rng = np.random.default_rng(0)
    # Rank-deficient input block (duplicate input dimension): jitter makes it solvable.
    z = rng.standard_normal((50, 3))
    z = np.hstack([z[:, :1], z[:, :1], z[:, 1:]])
    mu, S = z.mean(0), np.cov(z.T)
    F, f, Q = condition(mu, S, d_in=2)
    assert np.all(np.isfinite(F)) and np.linalg.eigvalsh(Q).min() > 0
    S_bad = S.copy()
    S_bad[0, 0] = np.nan
    with pytest.raises(np.linalg.LinAlgError, match="NaN"):
        condition(mu, S_bad, d_in=2)


def test_local_lg_rejects_wrong_shapes_and_time_index():
    model = TimeVaryingLinearGaussian(2, 1, 4)
    with pytest.raises(ValueError, match="expected"):
        model.fit_trajectories(np.zeros((3, 4, 2)), np.zeros((3, 4, 1)))
    with pytest.raises(ValueError, match="time index"):
        model.predict(np.zeros((1, 2)), np.zeros((1, 1)), 4)


def test_gmm_prior_fits_the_most_recent_rows_and_warm_starts():
    """max_rows keeps the newest rows (old rows describe old controllers), and a refit with
    the same number of components starts from the previous mixture."""
    rng = np.random.default_rng(0)
    old, new = rng.normal(0.0, 1.0, (2000, 4)), rng.normal(5.0, 1.0, (400, 4))
    prior = GMMPrior(n_components=1, max_rows=400).fit(np.vstack([old, new]), rng)
    np.testing.assert_allclose(prior.gmm.means_[0], new.mean(0))
    first = prior.gmm
    prior.fit(np.vstack([old, new]), rng)
    assert prior.gmm is not first and prior.gmm.n_iter_ <= first.n_iter_
    with pytest.raises(ValueError, match="max_rows"):
        GMMPrior(max_rows=0)

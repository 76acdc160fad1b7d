"""Probabilistic ensemble: batched step semantics, uncertainty away from data, linearize."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbrl.models.base import DynamicsModel, Linearizable, TorchDynamics
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.models.ensemble_fit import FitConfig
from mbrl.models.propagation import rollout


@pytest.fixture(scope="module")
def ensemble(nonlinear_data):
    model = ProbabilisticEnsemble(
        2,
        1,
        ensemble_size=5,
        hidden=(64, 64),
        fit_config=FitConfig(max_epochs=60, batch_size=32),
        seed=0,
    )
    model.fit(nonlinear_data, np.random.default_rng(0), progress=False)
    return model


def test_protocols():
    model = ProbabilisticEnsemble(3, 2, ensemble_size=4, hidden=(8,))
    assert isinstance(model, DynamicsModel)
    assert isinstance(model, Linearizable)
    assert isinstance(model, TorchDynamics)
    assert model.ensemble_size == 4


def test_fit_learns_the_system(ensemble, nonlinear_data):
    mean, var = ensemble.predict(nonlinear_data.obs, nonlinear_data.act)
    rmse = np.sqrt(np.mean((mean - nonlinear_data.next_obs) ** 2))
    delta_sd = (nonlinear_data.next_obs - nonlinear_data.obs).std()
    assert rmse < 0.25 * delta_sd, (rmse, delta_sd)


def test_variance_grows_away_from_training_data(ensemble, nonlinear_data):
    # Training states lie in [-1, 1]^2 (random actions, short episodes); probe along a ray.
    u = np.zeros((1, 1))
    stds, epistemic = [], []
    for r in (0.0, 2.0, 4.0, 8.0):
        x = np.array([[r, r]])
        _, var = ensemble.predict(x, u)
        stds.append(np.sqrt(var).mean())
        member_means, _ = ensemble.member_predict(x, u)
        epistemic.append(member_means.std(0).mean())  # disagreement between members
    assert all(a < b for a, b in zip(stds, stds[1:])), stds
    assert stds[-1] > 3 * stds[0], stds
    assert epistemic[-1] > 10 * epistemic[0], epistemic


def test_ts1_rows_follow_their_member(ensemble, nonlinear_data):
    E, N = ensemble.ensemble_size, 20
    x = torch.as_tensor(nonlinear_data.obs[:N], dtype=torch.float32)
    u = torch.as_tensor(nonlinear_data.act[:N], dtype=torch.float32)
    with torch.no_grad():
        nxt = ensemble.step(x, u, "mean").numpy()
    member_means, _ = ensemble.member_predict(x.numpy(), u.numpy())
    for i in range(N):
        np.testing.assert_allclose(nxt[i], member_means[i // (N // E), i], atol=1e-5)


def test_expectation_is_mean_of_member_means(ensemble, nonlinear_data):
    x = torch.as_tensor(nonlinear_data.obs[:7], dtype=torch.float32)  # any N
    u = torch.as_tensor(nonlinear_data.act[:7], dtype=torch.float32)
    with torch.no_grad():
        out = ensemble.step(x, u, "expectation").numpy()
    np.testing.assert_allclose(out, ensemble.predict(x.numpy(), u.numpy())[0], atol=1e-5)


def test_sampling_modes_are_seeded_and_spread_like_predicted(ensemble, nonlinear_data):
    x = torch.as_tensor(np.repeat(nonlinear_data.obs[:1], 5000, 0), dtype=torch.float32)
    u = torch.as_tensor(np.repeat(nonlinear_data.act[:1], 5000, 0), dtype=torch.float32)
    _, var = ensemble.predict(x[:1].numpy(), u[:1].numpy())
    for mode in ("ts1", "tsinf"):
        with torch.no_grad():
            a = ensemble.step(x, u, mode, torch.Generator().manual_seed(1))
            b = ensemble.step(x, u, mode, torch.Generator().manual_seed(1))
        assert torch.equal(a, b)
        np.testing.assert_allclose(a.numpy().var(0), var[0], rtol=0.15)


def test_step_rejects_bad_particle_counts_and_modes(ensemble):
    x, u = torch.zeros(7, 2), torch.zeros(7, 1)
    with pytest.raises(ValueError, match="multiple of ensemble_size"):
        ensemble.step(x, u, "ts1")
    with pytest.raises(ValueError, match="unknown propagation mode"):
        ensemble.step(torch.zeros(5, 2), torch.zeros(5, 1), "bogus")


def test_linearize_matches_finite_differences(ensemble, nonlinear_data):
    x, u = nonlinear_data.obs[:3], nonlinear_data.act[:3]
    A, B, c = ensemble.linearize(x, u)
    eps = 1e-2
    for j in range(2):
        dxp = x.copy()
        dxp[:, j] += eps
        dxm = x.copy()
        dxm[:, j] -= eps
        fd = (ensemble.predict(dxp, u)[0] - ensemble.predict(dxm, u)[0]) / (2 * eps)
        np.testing.assert_allclose(A[:, :, j], fd, atol=2e-3)
    np.testing.assert_allclose(
        np.einsum("nij,nj->ni", A, x) + np.einsum("nij,nj->ni", B, u) + c,
        ensemble.predict(x, u)[0],
        atol=1e-5,
    )


def test_rollout_modes(ensemble):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.zeros(50, 2)
    actions = torch.full((6, 1), 0.5)
    for mode in ("ts1", "tsinf", "expectation", "mean", "mm"):
        traj = rollout(ensemble, x0, actions, mode, gen)
        assert traj.shape == (7, 50, 2) and torch.isfinite(traj).all()
    det = rollout(ensemble, x0, actions, "expectation")
    assert torch.allclose(det[-1], det[-1, :1].expand(50, 2))  # no randomness
    spread = rollout(ensemble, x0, actions, "mm", gen)[-1].std(0)
    assert (spread > 0).all()

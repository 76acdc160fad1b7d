"""The ensemble's training loop: it learns a known function, holdout evaluation every k
epochs, exact re-normalisation, and warm-started refits (the FitConfig.refit rule)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mbrl.data.dataset import NormStats, TransitionDataset
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.models.ensemble_fit import FitConfig

from ._systems import nonlinear_f, rollouts

SMALL = dict(ensemble_size=5, hidden=(64, 64))


@pytest.fixture(scope="module")
def test_episodes() -> TransitionDataset:
    """Episodes of the same system that no fit sees."""
    X, U = rollouts(nonlinear_f, 2, 1, K=10, T=20, rng=np.random.default_rng(7), noise=0.005)
    return TransitionDataset.from_episodes(list(X), list(U))


def delta_nrmse(model: ProbabilisticEnsemble, data: TransitionDataset) -> float:
    """RMSE of the predicted change x' - x over the std of the true change (1 = no skill)."""
    mean, _ = model.predict(data.obs, data.act)
    true = data.next_obs - data.obs
    return float(np.sqrt(np.mean(((mean - data.obs) - true) ** 2) / np.mean(true.var(0))))


def test_fit_learns_a_known_function_and_its_loss_falls(nonlinear_data, test_episodes):
    model = ProbabilisticEnsemble(
        2, 1, **SMALL, fit_config=FitConfig(max_epochs=40, batch_size=32, eval_every=4), seed=0
    )
    untrained = delta_nrmse(model, test_episodes)
    report = model.fit(nonlinear_data, np.random.default_rng(0), progress=False)
    assert untrained > 0.9  # the initial network predicts no useful change
    assert delta_nrmse(model, test_episodes) < 0.15
    assert report.train_loss[-1] < report.train_loss[0] - 3.0  # NLL per dim, nats
    assert report.holdout_loss[-1] < 0.3 * report.holdout_loss[0]  # first: after 4 epochs
    # Holdout evaluated every 4 epochs (and after the last): one entry per evaluation.
    assert len(report.holdout_loss) == -(-report.extra["epochs"] // 4)


def test_renormalise_keeps_the_predicted_distribution():
    model = ProbabilisticEnsemble(3, 2, 4, (16, 16), seed=0)
    rng = np.random.default_rng(1)

    def stats() -> NormStats:
        return NormStats(
            rng.normal(size=5), rng.uniform(0.5, 2, 5), rng.normal(size=3), rng.uniform(0.5, 2, 3)
        )

    old, new = stats(), stats()
    model.stats = old
    model._refresh_cache()
    x, u = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    mean0, var0 = model.member_predict(x, u)
    model.net.renormalise(old, new)
    model.stats = new
    model._refresh_cache()
    mean1, var1 = model.member_predict(x, u)
    np.testing.assert_allclose(mean1, mean0, atol=1e-5)
    np.testing.assert_allclose(np.log(var1), np.log(var0), atol=1e-4)


def test_warm_refit_takes_fewer_epochs_to_a_similar_error(nonlinear_data, test_episodes):
    ids = nonlinear_data.episode_ids
    first = nonlinear_data.select_episodes(ids[:24])  # then 6 new episodes arrive
    cfg = FitConfig(max_epochs=80, patience=8, batch_size=32, refit="warm")
    warm = ProbabilisticEnsemble(2, 1, **SMALL, fit_config=cfg, seed=0)
    warm.fit(first, np.random.default_rng(0), progress=False)
    old_train, old_hold = set(warm._train_ids), set(warm._hold_ids)
    r_warm = warm.fit(nonlinear_data, np.random.default_rng(1), progress=False)
    cold = ProbabilisticEnsemble(2, 1, **SMALL, fit_config=cfg, seed=1)
    r_cold = cold.fit(nonlinear_data, np.random.default_rng(1), progress=False)
    assert r_warm.extra["refit"] == "warm" and r_cold.extra["refit"] == "cold"
    assert r_warm.extra["epochs"] <= cfg.warm_max_epochs < r_cold.extra["epochs"]
    err_warm, err_cold = delta_nrmse(warm, test_episodes), delta_nrmse(cold, test_episodes)
    assert err_warm < 1.25 * err_cold + 0.01, (err_warm, err_cold)
    # Episodes it has trained on never become holdout; new ones fill the holdout share.
    assert old_train <= warm._train_ids and old_hold <= warm._hold_ids
    assert len(warm._hold_ids) == round(0.2 * len(ids))


def test_refit_rule_says_when_to_start_again(nonlinear_data, tmp_path):
    cfg = FitConfig(max_epochs=2, batch_size=64, refit="warm", warm_max_epochs=1, reinit_every=3)
    model = ProbabilisticEnsemble(2, 1, 2, (8,), fit_config=cfg, seed=0)

    def fit(data) -> tuple[str, str]:
        r = model.fit(data, np.random.default_rng(0), progress=False)
        return r.extra["refit"], r.extra["refit_reason"]

    assert fit(nonlinear_data) == ("cold", "first fit")
    net = model.net
    assert fit(nonlinear_data)[0] == "warm" and model.net is net  # trained on in place
    assert fit(nonlinear_data)[0] == "warm"
    kind, reason = fit(nonlinear_data)
    assert kind == "cold" and "every 3 fits" in reason and model.net is not net
    # Moved data: the statistics the weights were trained under no longer describe it.
    moved = dataclasses.replace(
        nonlinear_data, obs=nonlinear_data.obs + 5, next_obs=nonlinear_data.next_obs + 5
    )
    kind, reason = fit(moved)
    assert kind == "cold" and "normalisation drift" in reason
    # The count and the split survive save/load, so a reloaded fitter refits warm.
    model.save(tmp_path / "m.npz")
    loaded = ProbabilisticEnsemble.load(tmp_path / "m.npz")
    assert loaded.fits == model.fits == 5
    assert loaded._train_ids == model._train_ids and loaded._hold_ids == model._hold_ids
    continuing = ProbabilisticEnsemble(2, 1, 2, (8,), fit_config=FitConfig(max_epochs=1))
    continuing.fit(nonlinear_data, progress=False)
    assert continuing.fit(nonlinear_data, progress=False).extra["refit"] == "continue"


def test_bfloat16_training_learns_as_well_and_keeps_float32_weights(nonlinear_data, test_episodes):
    """FitConfig.precision="bfloat16": the products run in bfloat16 under autocast; weights,
    optimizer and holdout stay float32, and the model learns the function as well."""
    errors, weights = {}, {}
    for precision in ("float32", "bfloat16"):
        cfg = FitConfig(max_epochs=30, batch_size=32, eval_every=5, precision=precision)
        model = ProbabilisticEnsemble(2, 1, 2, (64, 64), fit_config=cfg, seed=0)
        model.fit(nonlinear_data, np.random.default_rng(0), progress=False)
        assert all(p.dtype == torch.float32 for p in model.net.parameters())
        errors[precision] = delta_nrmse(model, test_episodes)
        weights[precision] = model.net.weights[1].detach().clone()
    # the same seed and data: only the products' rounding differs, and it did differ
    assert not torch.equal(weights["float32"], weights["bfloat16"])
    assert errors["bfloat16"] < 0.25, errors  # untrained: > 0.9
    assert errors["bfloat16"] < 1.3 * errors["float32"] + 0.01, errors


@pytest.mark.parametrize(
    "field, value",
    [("refit", "sometimes"), ("eval_every", 0), ("warm_patience", 0), ("precision", "fp8")],
)
def test_bad_fit_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"FitConfig.{field}"):
        FitConfig(**{field: value})

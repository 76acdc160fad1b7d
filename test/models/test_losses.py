"""Ensemble training losses (mbrl.models.losses): the default is the Gaussian NLL the
ensemble always used; beta-NLL and "mse" give the mean the squared-error gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbrl.data.dataset import TransitionDataset
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.models.ensemble_fit import FitConfig
from mbrl.models.losses import member_loss


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(3, 16, 4, generator=g, requires_grad=True)
    lv = torch.randn(3, 16, 4, generator=g).mul(0.5).requires_grad_(True)
    y = torch.randn(3, 16, 4, generator=g)
    return mean, lv, y


def test_default_is_the_gaussian_nll_and_beta_zero_equals_it():
    mean, lv, y = _batch()
    nll = (((mean - y) ** 2) * torch.exp(-lv) + lv).mean(dim=(1, 2))
    torch.testing.assert_close(member_loss(mean, lv, y), nll)
    torch.testing.assert_close(member_loss(mean, lv, y, "beta_nll", beta=0.0), nll)


@pytest.mark.parametrize("loss", ["mse", "beta_nll"])
def test_mean_gets_the_squared_error_gradient(loss):
    mean, lv, y = _batch(1)
    member_loss(mean, lv, y, loss, beta=1.0).sum().backward()
    # d/dm of mean((m - y)^2) over B * dx elements, whatever the predicted variance.
    expected = 2 * (mean - y).detach() / (16 * 4)
    torch.testing.assert_close(mean.grad, expected)
    assert lv.grad is not None and lv.grad.abs().sum() > 0  # the variance still learns


def test_loss_dims_keep_the_nll_elsewhere():
    mean, lv, y = _batch(2)
    member_loss(mean, lv, y, "mse", dims=(1,)).sum().backward()
    nll_grad = 2 * ((mean - y) * torch.exp(-lv)).detach() / (16 * 4)
    torch.testing.assert_close(mean.grad[..., 0], nll_grad[..., 0])
    torch.testing.assert_close(mean.grad[..., 1], 2 * (mean - y).detach()[..., 1] / (16 * 4))


def test_bad_loss_settings_name_the_field():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 11, 2))
    data = TransitionDataset.from_episodes(list(x), [rng.normal(size=(10, 1))] * 2)
    for cfg, field in [
        (FitConfig(loss="huber", max_epochs=1), "FitConfig.loss"),
        (FitConfig(loss="beta_nll", beta=2.0, max_epochs=1), "FitConfig.beta"),
        (FitConfig(loss="mse", loss_dims=(5,), max_epochs=1), "FitConfig.loss_dims"),
    ]:
        model = ProbabilisticEnsemble(2, 1, 2, (8,), fit_config=cfg)
        with pytest.raises(ValueError, match=field):
            model.fit(data, progress=False)

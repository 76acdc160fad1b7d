"""Evaluation metrics: calibrated Gaussians score as such; k-step and the plot run."""

from __future__ import annotations

import numpy as np

from mbrl.models.eval import gaussian_metrics, k_step, one_step, plot_rollout
from mbrl.models.linear import LinearGaussianModel


def test_gaussian_metrics_on_a_calibrated_predictor():
    rng = np.random.default_rng(0)
    mean = rng.standard_normal((20000, 3))
    var = np.full_like(mean, 0.25)
    truth = mean + 0.5 * rng.standard_normal(mean.shape)
    m = gaussian_metrics(mean, var, truth)
    assert abs(m["cover1"] - 0.683) < 0.01 and abs(m["cover2"] - 0.954) < 0.01
    assert abs(m["rmse"] - 0.5) < 0.01
    assert abs(m["nll"] - 0.5 * (np.log(2 * np.pi * 0.25) + 1)) < 0.02
    scaled = gaussian_metrics(mean, var, truth, scale=np.array([0.5, 1.0, 2.0]))
    expected = np.sqrt(np.mean(((truth - mean) / [0.5, 1.0, 2.0]) ** 2))
    assert abs(scaled["nrmse"] - expected) < 1e-12 and scaled["nrmse"] != m["nrmse"]
    over = gaussian_metrics(mean, var * 100, truth)  # overconfident -> under-covers
    assert over["cover1"] > 0.99 and over["nll"] > m["nll"]


def test_one_and_k_step_on_linear_model(nonlinear_data, tmp_path):
    model = LinearGaussianModel(2, 1)
    model.fit(nonlinear_data)
    rng = np.random.default_rng(0)
    one = one_step(model, nonlinear_data)
    ten = k_step(model, nonlinear_data, 10, rng)
    assert one["rmse"] < ten["rmse"]  # open-loop error compounds
    assert 0.3 < ten["cover2"] <= 1.0
    png = plot_rollout({"linear": model}, nonlinear_data, 0, [0, 1], tmp_path / "r.png", rng)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

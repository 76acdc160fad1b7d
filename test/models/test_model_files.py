"""Save/load round-trips exactly for every model; truncated or foreign files are rejected."""

from __future__ import annotations

import numpy as np
import pytest

from mbrl.data.dataset import DatasetFileError, TransitionDataset
from mbrl.models.base import ModelFileError
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.models.ensemble_fit import FitConfig
from mbrl.models.gp import GPModel
from mbrl.models.linear import LinearGaussianModel
from mbrl.models.local_lg import TimeVaryingLinearGaussian


def _fitted(kind: str, data: TransitionDataset):
    if kind == "ensemble":
        m = ProbabilisticEnsemble(
            2, 1, 3, (16, 16), num_elites=2, fit_config=FitConfig(max_epochs=3)
        )
        m.fit(data, np.random.default_rng(0), progress=False)
    elif kind == "gp":
        m = GPModel(2, 1, num_inducing=30, max_hyp_points=100, max_iter=20)
        m.fit(data, np.random.default_rng(0))
    elif kind == "linear":
        m = LinearGaussianModel(2, 1)
        m.fit(data)
    else:
        m = TimeVaryingLinearGaussian(2, 1, 20)
        m.fit(data)
    return m


def _pred(m, data):
    if isinstance(m, TimeVaryingLinearGaussian):
        return m.predict(data.obs, data.act, data.t)
    return m.predict(data.obs, data.act)


@pytest.mark.parametrize("kind", ["ensemble", "gp", "linear", "local"])
def test_round_trip_is_exact(kind, nonlinear_data, tmp_path):
    m = _fitted(kind, nonlinear_data)
    path = tmp_path / f"{kind}.npz"
    m.save(path)
    loaded = type(m).load(path)
    for a, b in zip(_pred(m, nonlinear_data), _pred(loaded, nonlinear_data)):
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left no temp file


@pytest.mark.parametrize("kind", ["ensemble", "linear"])
def test_truncated_file_is_rejected_with_its_name(kind, nonlinear_data, tmp_path):
    path = tmp_path / "model.npz"
    _fitted(kind, nonlinear_data).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="model.npz"):
        type(_fitted(kind, nonlinear_data)).load(path)


def test_foreign_and_mismatched_files_are_rejected(nonlinear_data, tmp_path):
    linear = tmp_path / "linear.npz"
    _fitted("linear", nonlinear_data).save(linear)
    with pytest.raises(ModelFileError, match="LinearGaussianModel.*expected a 'Probabilistic"):
        ProbabilisticEnsemble.load(linear)
    plain = tmp_path / "plain.npz"
    np.savez(plain, W=np.zeros(3))
    with pytest.raises(ModelFileError, match="plain.npz: no mbrl header"):
        LinearGaussianModel.load(plain)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="notes.txt"):
        GPModel.load(text)
    with pytest.raises(ModelFileError, match="does not exist"):
        GPModel.load(tmp_path / "missing.npz")


def test_shape_mismatch_names_the_array(nonlinear_data, tmp_path):
    from mbrl.models.io import save_model_file

    path = tmp_path / "bad.npz"
    meta = dict(dx=2, du=1, ridge=1e-6, mean_only=False)
    save_model_file(
        path,
        "LinearGaussianModel",
        meta,
        dict(W=np.zeros((5, 2)), Sigma=np.eye(2), P_inv=np.eye(4)),
    )
    with pytest.raises(ModelFileError, match="'W' has shape \\(5, 2\\); expected \\(4, 2\\)"):
        LinearGaussianModel.load(path)


def test_dataset_split_stats_and_files(nonlinear_data, tmp_path):
    train, hold = nonlinear_data.split(0.2, np.random.default_rng(0))
    assert len(train) + len(hold) == len(nonlinear_data)
    assert not set(train.episode_ids) & set(hold.episode_ids)
    assert len(hold.episode_ids) == 6
    st = nonlinear_data.norm_stats()
    assert st.in_mean.shape == (3,) and st.delta_std.shape == (2,)
    X, U = nonlinear_data.trajectories()
    assert X.shape == (30, 21, 2) and U.shape == (30, 20, 1)
    np.testing.assert_array_equal(X[:, 1:], X[:, 1:])
    path = tmp_path / "d.npz"
    nonlinear_data.save(path)
    back = TransitionDataset.load(path)
    for f in ("obs", "act", "next_obs", "reward", "episode", "t"):
        np.testing.assert_array_equal(getattr(back, f), getattr(nonlinear_data, f))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetFileError, match="d.npz"):
        TransitionDataset.load(path)


def test_dataset_rejects_inconsistent_arrays():
    with pytest.raises(ValueError, match="episode 0: 3 states for 3 actions"):
        TransitionDataset.from_episodes([np.zeros((3, 2))], [np.zeros((3, 1))])
    with pytest.raises(ValueError, match="NaN"):
        TransitionDataset.from_episodes([np.full((3, 2), np.nan)], [np.zeros((2, 1))])

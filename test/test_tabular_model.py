"""The table-lookup model: exact estimates on the lecture's AB data, sampling, files."""

from __future__ import annotations

import numpy as np
import pytest

from mbrl.loop.tabular import A_STATE, AB_EPISODES, B_STATE, T_STATE
from mbrl.models.base import ModelFileError
from mbrl.models.tabular import TableLookupModel


@pytest.fixture
def ab_model():
    return TableLookupModel.from_episodes(AB_EPISODES, n_states=3, n_actions=1)


def test_ab_estimates_are_exact(ab_model):
    model, start = ab_model
    assert model.num_transitions == 9
    np.testing.assert_array_equal(model.counts[:, 0], [1, 8, 0])
    P = model.transition_probs[:, 0, :]
    np.testing.assert_array_equal(P[A_STATE], [0, 1, 0])  # A -> B always
    np.testing.assert_array_equal(P[B_STATE], [0, 0, 1])  # B -> terminal always
    np.testing.assert_array_equal(P[T_STATE], [0, 0, 0])  # no data from the terminal
    # Mean reward over the N(s, a) visits: R(A) = 0, R(B) = 6 / 8.
    np.testing.assert_array_equal(model.mean_rewards[:, 0], [0.0, 0.75, 0.0])
    np.testing.assert_array_equal(model.terminal_states, [False, False, True])
    np.testing.assert_array_equal(start, [1 / 8, 7 / 8, 0])


def test_empirical_sampling_keeps_reward_spread_and_matches_estimates(ab_model, rng):
    model, _ = ab_model
    s_next, r, done = model.sample(np.full(20_000, B_STATE), np.zeros(20_000, int), rng)
    assert set(np.unique(r)) == {0.0, 1.0}  # B pays 1 or 0, as in the lecture's samples
    assert abs(r.mean() - 0.75) < 0.015  # 4.9 standard errors of 20000 Bernoulli(0.75)
    assert np.all(s_next == T_STATE) and np.all(done)
    s_next, r, done = model.sample([A_STATE] * 5, [0] * 5, rng)
    np.testing.assert_array_equal(s_next, [B_STATE] * 5)
    assert not done.any() and np.all(r == 0)
    _, r_mean, _ = model.sample([B_STATE, A_STATE], [0, 0], rng, reward="mean")
    np.testing.assert_array_equal(r_mean, [0.75, 0.0])


def test_stochastic_transitions_are_estimated_from_counts(rng):
    model = TableLookupModel(4, 2)
    model.update(
        [0, 0, 0, 0, 1],
        [1, 1, 1, 0, 1],
        [1.0, 2.0, 3.0, -1.0, 0.5],
        [2, 2, 3, 1, 3],
        [False, False, True, False, True],
    )
    np.testing.assert_allclose(model.transition_probs[0, 1], [0, 0, 2 / 3, 1 / 3])
    assert model.mean_rewards[0, 1] == pytest.approx(2.0)
    assert model.counts[0, 1] == 3 and model.counts[1, 0] == 0
    s_next, _, done = model.sample(np.zeros(30_000, int), np.ones(30_000, int), rng)
    assert abs((s_next == 2).mean() - 2 / 3) < 0.012
    np.testing.assert_array_equal(done, s_next == 3)  # the recorded (s', done) pairs stay joined


def test_bad_input_is_named():
    model = TableLookupModel(3, 2)
    with pytest.raises(ValueError, match="'a' out of range"):
        model.update([0], [2], [0.0], [1], [False])
    with pytest.raises(ValueError, match="'r' contains NaN"):
        model.update([0], [0], [np.nan], [1], [False])
    with pytest.raises(ValueError, match="shape"):
        model.update([0, 1], [0], [0.0, 0.0], [1, 1], [False, False])
    model.update([0], [0], [1.0], [1], [False])
    with pytest.raises(ValueError, match=r"no experience for \(state, action\) pairs \[\(1, 1\)\]"):
        model.sample([0, 1], [0, 1], np.random.default_rng(0))
    with pytest.raises(ValueError, match="reward mode"):
        model.sample([0], [0], np.random.default_rng(0), reward="median")
    with pytest.raises(ValueError, match="episode 0 is empty"):
        TableLookupModel.from_episodes([[]], 3, 1)


def test_save_load_round_trip_and_corrupt_file(tmp_path, ab_model):
    model, _ = ab_model
    path = tmp_path / "ab.model"
    model.save(path)
    loaded = TableLookupModel.load(path)
    np.testing.assert_array_equal(loaded.transition_counts, model.transition_counts)
    np.testing.assert_array_equal(loaded.mean_rewards, model.mean_rewards)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ModelFileError, match="ab.model"):
        TableLookupModel.load(path)
    with pytest.raises(ModelFileError, match="missing.model"):
        TableLookupModel.load(tmp_path / "missing.model")
    np.savez(tmp_path / "other.npz", format=np.array("something.else"), shape=np.array([1, 1]))
    with pytest.raises(ModelFileError, match="format 'something.else'"):
        TableLookupModel.load(tmp_path / "other.npz")

"""On a small fixed contact data set built from the real sim (scripted pushes of the cube,
mbrl.control.push_explore), the push ensemble must predict where the cube goes on contact
transitions. Today's push model (state [q, ee, cube, yaw], Gaussian NLL) predicts a cube
that barely moves; the improved one (velocities in the state, MSE on the mean) must not.
"""

from __future__ import annotations

import numpy as np
import pytest

from mbrl.control.push_explore import PushExplorer, PushExplorerConfig, explore_episodes
from mbrl.data.dataset import TransitionDataset
from mbrl.loop.presets import preset
from mbrl.models.contact_eval import one_step_contact
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.models.ensemble_fit import FitConfig
from mbrl.models.push_features import AugmentedModel, PushFeatures
from mbrl.sim.tasks import make_env

THRESHOLD = 0.002  # m per tick: a contact transition
TODAY = (PushFeatures(), "nll")
IMPROVED = (PushFeatures(joint_velocities=True, object_velocity=True), "mse")


def _episodes(n: int, seed: int, steps: int = 80):
    env = make_env("push", max_steps=steps, increment_from="measured", object_velocity=True)
    # Long, moderate pushes within the push preset's +-0.35 action bound: many contact ticks.
    config = PushExplorerConfig(action_bound=0.35, push_length=(0.06, 0.14), speed=(0.05, 0.2))
    explorer = PushExplorer.for_env(env, np.random.default_rng(seed), config)
    try:
        return explore_episodes(env, explorer, [seed * 1000 + k for k in range(n)])
    finally:
        env.close()


@pytest.fixture(scope="module")
def contact_data():
    return _episodes(16, seed=1), _episodes(4, seed=2)


def _fit_and_score(config, train, test) -> dict:
    features, loss = config
    nj = train[0][1].shape[1]
    cols = features.columns(nj)
    data = TransitionDataset.from_episodes([o[:, cols] for o, _ in train], [a for _, a in train])
    held = TransitionDataset.from_episodes([o[:, cols] for o, _ in test], [a for _, a in test])
    p = preset("mpc", "push")  # today's shipped ensemble and fit budget
    fit = FitConfig(
        lr=p["fit_lr"],
        weight_decay=p["fit_weight_decay"],
        batch_size=max(p["fit_batch_size"], len(data) // p["fit_batches_per_epoch"]),
        max_epochs=p["fit_max_epochs"],
        patience=p["fit_patience"],
        holdout_fraction=p["fit_holdout_fraction"],
        loss=loss,
    )
    inner = ProbabilisticEnsemble(
        data.dx,
        data.du,
        p["ensemble_size"],
        tuple(p["hidden"]),
        num_elites=p["num_elites"],
        fit_config=fit,
        seed=0,
    )
    model = AugmentedModel(inner, features, nj)
    model.fit(data, rng=np.random.default_rng(0))
    obj = features.layout(nj).obj[0]
    return one_step_contact(model, held.obs, held.act, held.next_obs, obj, THRESHOLD)["contact"]


def _predicts_displacement(score: dict) -> bool:
    """Contact moves get a predicted displacement that points the right way (within 60
    degrees for most) and covers a real part of the move along that direction. Today's model
    points the right way too, but predicts a tenth of the move: the second part fails it."""
    return score["within_60deg"] >= 0.6 and score["captured"] >= 0.25


def test_the_data_set_contains_contact(contact_data):
    train, test = contact_data
    nj = train[0][1].shape[1]
    moves = np.concatenate(
        [np.linalg.norm(np.diff(o[:, 2 * nj + 3 : 2 * nj + 5], axis=0), axis=1) for o, _ in test]
    )
    assert (moves > THRESHOLD).sum() >= 20


def test_improved_push_model_predicts_the_cube_displacement_on_contact(contact_data):
    score = _fit_and_score(IMPROVED, *contact_data)
    assert _predicts_displacement(score), score


@pytest.mark.expensive  # kept as the record that today's model fails the same check
def test_todays_push_model_does_not(contact_data):
    score = _fit_and_score(TODAY, *contact_data)
    assert not _predicts_displacement(score), score

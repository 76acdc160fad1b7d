"""Fixtures for the model tests."""

from __future__ import annotations

import numpy as np
import pytest

from mbrl.data.dataset import TransitionDataset

from ._systems import nonlinear_f, rollouts


@pytest.fixture(scope="session")
def nonlinear_data() -> TransitionDataset:
    rng = np.random.default_rng(0)
    X, U = rollouts(nonlinear_f, 2, 1, K=30, T=20, rng=rng, noise=0.005)
    return TransitionDataset.from_episodes(list(X), list(U))

"""Fixtures for the model tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbrl.data.dataset import TransitionDataset

from ._systems import nonlinear_f, rollouts


@pytest.fixture(scope="session")
def nonlinear_data() -> TransitionDataset:
    rng = np.random.default_rng(0)
    X, U = rollouts(nonlinear_f, 2, 1, K=30, T=20, rng=rng, noise=0.005)
    return TransitionDataset.from_episodes(list(X), list(U))


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """Small matrices: with 2 threads on a shared 2-core machine torch spends most of its time
    spinning (measured 10x slower); restore the setting after this package's tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""Shared fixtures of the loop tests."""

from __future__ import annotations

import pytest

from mbrl.loop.common import torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    """Every loop test on one torch thread (small matrices: faster, and reproducible)."""
    with torch_threads(1):
        yield

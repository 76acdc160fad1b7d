"""Shared pytest fixtures: per-run DDS isolation for tests that use ROS."""

from __future__ import annotations

import os
import random

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Every pytest run gets its own DDS domain on localhost, so parallel runs (two CI
    # jobs, a developer's demo) never see each other's topics. Child processes inherit it.
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if "MBRL_TEST_DOMAIN_ID" not in os.environ:
        # 1..232: the domains Fast DDS maps to valid UDP ports (7400 + 250 d + ...); the
        # wider the range, the rarer two concurrent runs share one (1 in 232 per pair)
        os.environ["MBRL_TEST_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 232))
    os.environ["ROS_DOMAIN_ID"] = os.environ["MBRL_TEST_DOMAIN_ID"]


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)

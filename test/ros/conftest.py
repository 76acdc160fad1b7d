"""Fixtures for the ROS tests: one rclpy context per session, sim nodes as real processes.

The sim runs as a separate OS process started by the embedded runner (the same code path as
`make demo`); the test process talks to it over DDS on the per-run ROS_DOMAIN_ID.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

rclpy = pytest.importorskip("rclpy")


@pytest.fixture(scope="session")
def ros_context() -> Iterator[None]:
    rclpy.init()
    try:
        yield
    finally:
        rclpy.try_shutdown()

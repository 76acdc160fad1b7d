"""A PyBullet connection that injects its own physicsClientId into every call.

Like `pybullet_utils.bullet_client.BulletClient`, but it connects without an `options` string
(which makes PyBullet print `argv[0]=` on stdout, spoiling JSON output) and caches the bound
functions, since the simulator calls a handful of them thousands of times per second.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pybullet


class PhysicsClient:
    """One PyBullet physics server (DIRECT or GUI); `client.stepSimulation()` etc. act on it."""

    def __init__(self, connection_mode: int = pybullet.DIRECT) -> None:
        self.id = pybullet.connect(connection_mode)
        if self.id < 0:
            raise RuntimeError(f"pybullet.connect({connection_mode}) failed (GUI without display?)")

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(pybullet, name)
        if inspect.isbuiltin(attribute):
            attribute = functools.partial(attribute, physicsClientId=self.id)
            self.__dict__[name] = attribute  # later look-ups skip __getattr__
        return attribute

    def disconnect(self) -> None:
        """Shut the physics server down (idempotent)."""
        if self.id >= 0:
            try:
                pybullet.disconnect(physicsClientId=self.id)
            except pybullet.error:
                pass
            self.id = -1

    def __del__(self) -> None:
        self.disconnect()

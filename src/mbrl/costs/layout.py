"""Where quantities sit in a state vector (torch-free: the nodes that only name a task's
layout, the sim and the collector, never import torch)."""

from __future__ import annotations

from typing import Any


class StateLayout:
    """Where quantities sit in the state vector: joint positions, EE position, object, goal.

    Each is a (start, stop) index pair or None. `q` is needed for FK and the barrier.
    """

    def __init__(self, q=None, ee=None, obj=None, goal=None) -> None:
        self.q, self.ee, self.obj, self.goal = q, ee, obj, goal

    @staticmethod
    def take(x: Any, span) -> Any:
        return x[..., span[0] : span[1]]

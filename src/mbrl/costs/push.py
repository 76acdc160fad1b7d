"""PETS-style push cost: tip to object, object to goal, action terms and joint-limit barrier.

The object position must be in the state (layout.obj); the tip comes from FK or the state.
"""

from __future__ import annotations

import dataclasses

from mbrl.costs.base import Tensor
from mbrl.costs.reach import ReachCost, ReachCostConfig, StateLayout


@dataclasses.dataclass(frozen=True)
class PushCostConfig(ReachCostConfig):
    """Reach weights plus the push terms.

    Attributes:
        tip_to_object: weight of ||ee - object|| (m) per stage (the approach term).
        object_to_goal: weight of ||object - goal|| (m) per stage; `terminal` weights it at T.
    """

    distance: float = 0.0  # ee-to-goal is not a push objective
    tip_to_object: float = 0.5
    object_to_goal: float = 1.0


class PushCost(ReachCost):
    """Cost of pushing the object at layout.obj to `goal` (3,) m (on the table)."""

    config: PushCostConfig

    def __init__(self, layout: StateLayout, *args, config: PushCostConfig = PushCostConfig(), **kw):
        if layout.obj is None:
            raise ValueError("PushCost needs layout.obj: the object position in the state")
        super().__init__(layout, *args, config=config, **kw)

    def stage(self, x: Tensor, u: Tensor) -> Tensor:
        """x (N, T, dx), u (N, T, du) -> (N, T)."""
        c = self.config
        obj = StateLayout.take(x, self.layout.obj)
        ee = self.ee(x)
        out = c.tip_to_object * self._distance(ee, obj)
        out = out + c.object_to_goal * self._distance(obj, self._goal(x))
        if c.distance:
            out = out + c.distance * self._distance(ee, self._goal(x))
        return out + self._action_terms(u) + self._barrier(x)

    def terminal(self, x: Tensor) -> Tensor:
        """x (N, dx) -> (N,)."""
        obj = StateLayout.take(x, self.layout.obj)
        return self.config.terminal * self._distance(obj, self._goal(x)) + self._barrier(x)

"""PETS-style push cost: tip to object, object to goal, action terms and joint-limit barrier.

The object position must be in the state (layout.obj); the tip comes from FK or the state.

With `approach_offset` > 0 the tip term pulls the tip to the *pushing point*: the spot
`approach_offset` m behind the object on the far side from the goal,
    p = obj - approach_offset * (goal - obj) / ||goal - obj||,
so that moving the tip through p towards the goal pushes the object the right way. With 0
(the PETS pusher cost) the tip is pulled to the object centre and may well approach it from
the goal side, pushing it away.
"""

from __future__ import annotations

import dataclasses

import torch

from mbrl.costs.base import Tensor
from mbrl.costs.reach import ReachCost, ReachCostConfig, StateLayout


@dataclasses.dataclass(frozen=True)
class PushCostConfig(ReachCostConfig):
    """Reach weights plus the push terms.

    Attributes:
        tip_to_object: weight of ||ee - pushing point|| (m) per stage (the approach term).
        object_to_goal: weight of ||object - goal|| (m) per stage; `terminal` weights it at T.
        approach_offset: distance of the pushing point behind the object centre, m (0 = the
            centre itself; about half the object's width plus a margin makes the tip push).
        approach_height: lift of the pushing point while the tip is horizontally away from it,
            m: the target is raised by min(approach_height, horizontal tip distance), so the
            tip travels over the object and comes down behind it instead of sweeping the
            object along on its way (0 = no lift).
        min_tip_height: tip height above the table (z = 0) below which the table barrier
            ((min_tip_height - z) / min_tip_height)^2 applies, m (0 = no barrier). A tip pressed
            into the table stores force in the position servos that throws the object when
            the tip reaches it.
        table: weight of the table barrier per stage.
    """

    distance: float = 0.0  # ee-to-goal is not a push objective
    tip_to_object: float = 0.5
    object_to_goal: float = 1.0
    approach_offset: float = 0.0
    approach_height: float = 0.0
    min_tip_height: float = 0.0
    table: float = 1.0


class PushCost(ReachCost):
    """Cost of pushing the object at layout.obj to `goal` (3,) m (on the table)."""

    config: PushCostConfig

    def __init__(self, layout: StateLayout, *args, config: PushCostConfig = PushCostConfig(), **kw):
        if layout.obj is None:
            raise ValueError("PushCost needs layout.obj: the object position in the state")
        for name in ("approach_offset", "approach_height", "min_tip_height"):
            if getattr(config, name) < 0:
                raise ValueError(f"{name} must be >= 0 m, got {getattr(config, name)}")
        super().__init__(layout, *args, config=config, **kw)

    def pushing_point(self, x: Tensor) -> Tensor:
        """x (..., dx) -> (..., 3): where the tip should be to push the object to the goal."""
        c = self.config
        point = StateLayout.take(x, self.layout.obj)
        if c.approach_offset > 0:
            away = point - self._goal(x)
            # Only the horizontal direction: the tip pushes at the object's height.
            away = torch.cat([away[..., :2], torch.zeros_like(away[..., 2:])], dim=-1)
            norm = torch.sqrt((away**2).sum(-1, keepdim=True) + c.smoothing**2)
            point = point + c.approach_offset * away / norm
        if c.approach_height > 0:
            gap = (self.ee(x) - point)[..., :2]
            reach = torch.sqrt((gap**2).sum(-1) + c.smoothing**2)
            lift = torch.clamp(reach, max=c.approach_height)
            point = torch.cat([point[..., :2], point[..., 2:] + lift[..., None]], dim=-1)
        return point

    def stage(self, x: Tensor, u: Tensor) -> Tensor:
        """x (N, T, dx), u (N, T, du) -> (N, T)."""
        c = self.config
        obj = StateLayout.take(x, self.layout.obj)
        ee = self.ee(x)
        out = c.tip_to_object * self._distance(ee, self.pushing_point(x))
        out = out + c.object_to_goal * self._distance(obj, self._goal(x))
        if c.distance:
            out = out + c.distance * self._distance(ee, self._goal(x))
        return out + self._action_terms(u) + self._barrier(x) + self._table_barrier(ee)

    def _table_barrier(self, ee: Tensor) -> Tensor:
        h = self.config.min_tip_height
        if h <= 0 or self.config.table == 0:
            return torch.zeros(ee.shape[:-1], dtype=ee.dtype)
        return self.config.table * (torch.relu(h - ee[..., 2]) / h) ** 2

    def terminal(self, x: Tensor) -> Tensor:
        """x (N, dx) -> (N,)."""
        obj = StateLayout.take(x, self.layout.obj)
        return self.config.terminal * self._distance(obj, self._goal(x)) + self._barrier(x)

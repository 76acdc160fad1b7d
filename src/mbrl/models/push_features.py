"""The push model's state and inputs (issue 12): which push-observation columns the ensemble
predicts, and derived inputs (the tip in the cube's yaw frame) appended to its state.

Model state, in this order (each optional block only when switched on):
    q (nj) rad, [qdot (nj) rad/s], ee (3) m, cube (3) m, sin/cos cube yaw (2),
    [cube velocity (3) m/s + yaw rate (1) rad/s], [commanded joints (nj) rad]
The first, fourth and fifth blocks are today's state (mbrl.loop.mpc_loop.model_columns).
The velocity and command blocks need the env's `object_velocity` / `command_in_obs`
extras (`PushFeatures.env_kwargs`). Derived inputs are added by `AugmentedModel`: state
features are appended to the inner ensemble's state (it predicts their deltas too, an
auxiliary target; they are recomputed from the predicted state after every step, so the
planner's state stays the one above); action features (which depend on u) are appended to
its action input.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from mbrl.costs.reach import StateLayout
from mbrl.data.dataset import TransitionDataset
from mbrl.models.base import FitReport


@dataclasses.dataclass(frozen=True)
class PushFeatures:
    """Switches for the push model state (defaults: today's state, no derived inputs).

    Attributes:
        joint_velocities: add qdot (the arm's momentum decides how hard it hits the cube).
        object_velocity: add the cube's velocity and yaw rate (a sliding cube keeps moving
            with no contact; half the > 2 mm moves start with the cube already sliding).
        command: add the commanded joint targets the servos track.
        tip_in_object_frame: derived input: tip minus cube centre rotated into the cube's yaw
            frame (3) m, the geometry that decides which face is pushed.
        commanded_tip: derived action input: where the command q + max_increment * u puts
            the tip (forward kinematics), minus the cube centre, in the cube's yaw frame (3) m
            (the env's increment_from="measured"); the network need not learn FK to know
            whether this tick's motion reaches the cube.
    """

    joint_velocities: bool = False
    object_velocity: bool = False
    command: bool = False
    tip_in_object_frame: bool = False
    commanded_tip: bool = False

    def env_kwargs(self) -> dict[str, bool]:
        """The PushEnv extras this state needs (mbrl.sim.tasks.PushEnv)."""
        return {"object_velocity": self.object_velocity, "command_in_obs": self.command}

    def columns(self, nj: int) -> np.ndarray:
        """Indices into the push observation (with `env_kwargs` extras) of the model state."""
        extras = 2 * nj + 11  # the extras follow the goal: [velocity (4)], [command (nj)]
        cols = [np.arange(nj)]
        if self.joint_velocities:
            cols.append(np.arange(nj, 2 * nj))
        cols.append(np.arange(2 * nj, 2 * nj + 8))  # ee, cube, sin/cos yaw
        if self.object_velocity:
            cols.append(np.arange(extras, extras + 4))
        if self.command:
            start = extras + (4 if self.object_velocity else 0)
            cols.append(np.arange(start, start + nj))
        return np.concatenate(cols)

    def layout(self, nj: int) -> StateLayout:
        """Where q, ee and the cube sit in the model state (for the push cost)."""
        ee = nj * (2 if self.joint_velocities else 1)
        return StateLayout(q=(0, nj), ee=(ee, ee + 3), obj=(ee + 3, ee + 6))

    def object_columns(self, nj: int) -> tuple[int, ...]:
        """Model-state indices of the cube position (3), yaw (2) and, if present, velocity."""
        start = self.layout(nj).obj[0]
        out = list(range(start, start + 5))
        if self.object_velocity:
            out += list(range(start + 5, start + 9))
        return tuple(out)

    @property
    def n_derived(self) -> int:
        return 3 if self.tip_in_object_frame else 0

    @property
    def n_action_derived(self) -> int:
        return 3 if self.commanded_tip else 0

    def _in_object_frame(self, point: torch.Tensor, x: torch.Tensor, nj: int) -> torch.Tensor:
        """point (..., 3) m -> (point - cube) rotated by -yaw (..., 3)."""
        lay = self.layout(nj)
        rel = point - x[..., lay.obj[0] : lay.obj[1]]
        s, c = x[..., lay.obj[1]], x[..., lay.obj[1] + 1]
        norm = torch.sqrt(s * s + c * c).clamp_min(1e-6)  # predicted sin/cos drift off the circle
        s, c = s / norm, c / norm
        return torch.stack(
            [c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1], rel[..., 2]],
            dim=-1,
        )

    def derive(self, x: torch.Tensor, nj: int) -> torch.Tensor:
        """x (..., dx) model state -> (..., n_derived) derived state inputs."""
        if not self.tip_in_object_frame:
            return x[..., :0]
        lay = self.layout(nj)
        return self._in_object_frame(x[..., lay.ee[0] : lay.ee[1]], x, nj)

    def derive_action(
        self, x: torch.Tensor, u: torch.Tensor, nj: int, fk, max_increment: float
    ) -> torch.Tensor:
        """x (..., dx), u (..., nj) -> (..., n_action_derived) derived action inputs."""
        if not self.commanded_tip:
            return u[..., :0]
        q = x[..., :nj] + max_increment * u.clamp(-1.0, 1.0)
        return self._in_object_frame(fk(q.to(fk.dtype)).to(x.dtype), x, nj)


class AugmentedModel:
    """A model on the push state x that runs `inner` (an ensemble) on z = [x, derive(x)].

    Implements what the planners and the evaluation use: `ensemble_size`, `step` (torch,
    TorchDynamics), `predict`, `sample`, `fit`. With no derived inputs it is a pass-through.
    Not saveable yet (the ROS model files carry plain ensembles). `fk` (a
    mbrl.costs.kinematics.ForwardKinematics) and `max_increment` (rad per unit action) are
    needed for `commanded_tip`.
    """

    def __init__(
        self,
        inner: Any,
        features: PushFeatures,
        nj: int,
        fk: Any = None,
        max_increment: float | None = None,
    ) -> None:
        if features.commanded_tip and (fk is None or max_increment is None):
            raise ValueError("PushFeatures.commanded_tip needs fk and max_increment")
        self.inner, self.features, self.nj = inner, features, nj
        self.fk, self.max_increment = fk, max_increment
        self.dx = inner.dx - features.n_derived
        self.du = inner.du - features.n_action_derived

    @property
    def ensemble_size(self) -> int:
        return self.inner.ensemble_size

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        if not self.features.n_derived:
            return x
        return torch.cat([x, self.features.derive(x, self.nj)], dim=-1)

    def _action(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        if not self.features.n_action_derived:
            return u
        extra = self.features.derive_action(x, u, self.nj, self.fk, self.max_increment)
        return torch.cat([u, extra], dim=-1)

    def _augment_np(self, x: np.ndarray) -> np.ndarray:
        xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
        return self._augment(xt).numpy()

    def _action_np(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
        ut = torch.as_tensor(np.asarray(u, dtype=np.float64))
        return self._action(xt, ut).numpy()

    def augment_dataset(self, data: TransitionDataset) -> TransitionDataset:
        """The dataset of z: derived inputs appended to obs, next_obs and act."""
        return dataclasses.replace(
            data,
            obs=self._augment_np(data.obs),
            next_obs=self._augment_np(data.next_obs),
            act=self._action_np(data.obs, data.act),
        )

    def fit(self, data: TransitionDataset, rng=None, progress: bool = False) -> FitReport:
        return self.inner.fit(self.augment_dataset(data), rng=rng, progress=progress)

    def step(self, x: torch.Tensor, u: torch.Tensor, mode="ts1", generator=None) -> torch.Tensor:
        """x (N, dx), u (N, du) float32 -> (N, dx) next states."""
        return self.inner.step(self._augment(x), self._action(x, u), mode, generator)[:, : self.dx]

    def predict(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self.inner.predict(self._augment_np(x), self._action_np(x, u))
        return mean[:, : self.dx], var[:, : self.dx]

    def member_predict(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self.inner.member_predict(self._augment_np(x), self._action_np(x, u))
        return mean[..., : self.dx], var[..., : self.dx]

    def sample(self, x: np.ndarray, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.inner.sample(self._augment_np(x), self._action_np(x, u), rng)[:, : self.dx]

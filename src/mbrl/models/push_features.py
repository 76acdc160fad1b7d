"""The push model's state and inputs (issue 12): which push-observation columns the ensemble
predicts, and derived inputs (the tip in the cube's yaw frame) appended to its state.

Model state, in this order (each optional block only when switched on):
    q (nj) rad, [qdot (nj) rad/s], ee (3) m, cube (3) m, sin/cos cube yaw (2),
    [cube velocity (3) m/s + yaw rate (1) rad/s], [commanded joints (nj) rad]
The first, fourth and fifth blocks are today's state (mbrl.loop.mpc_loop.model_columns).
The velocity and command blocks need the env's `object_velocity` / `command_in_obs`
extras (`PushFeatures.env_kwargs`). Derived inputs are appended by `AugmentedModel`: the
inner ensemble predicts their deltas too (an auxiliary target) and they are recomputed
from the predicted state after every step, so the planner's state stays the one above.
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
    """

    joint_velocities: bool = False
    object_velocity: bool = False
    command: bool = False
    tip_in_object_frame: bool = False

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

    def derive(self, x: torch.Tensor, nj: int) -> torch.Tensor:
        """x (..., dx) model state -> (..., n_derived) derived inputs."""
        if not self.tip_in_object_frame:
            return x[..., :0]
        lay = self.layout(nj)
        rel = x[..., lay.ee[0] : lay.ee[1]] - x[..., lay.obj[0] : lay.obj[1]]
        s, c = x[..., lay.obj[1]], x[..., lay.obj[1] + 1]
        norm = torch.sqrt(s * s + c * c).clamp_min(1e-6)  # predicted sin/cos drift off the circle
        s, c = s / norm, c / norm
        # Rotate by -yaw: the tip in the cube's frame.
        return torch.stack(
            [c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1], rel[..., 2]],
            dim=-1,
        )


class AugmentedModel:
    """A model on the push state x that runs `inner` (an ensemble) on z = [x, derive(x)].

    Implements what the planners and the evaluation use: `ensemble_size`, `step` (torch,
    TorchDynamics), `predict`, `sample`, `fit`. With no derived inputs it is a pass-through.
    Not saveable yet (the ROS model files carry plain ensembles).
    """

    def __init__(self, inner: Any, features: PushFeatures, nj: int) -> None:
        self.inner, self.features, self.nj = inner, features, nj
        self.dx = inner.dx - features.n_derived
        self.du = inner.du

    @property
    def ensemble_size(self) -> int:
        return self.inner.ensemble_size

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        if not self.features.n_derived:
            return x
        return torch.cat([x, self.features.derive(x, self.nj)], dim=-1)

    def _augment_np(self, x: np.ndarray) -> np.ndarray:
        xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
        return self._augment(xt).numpy()

    def augment_dataset(self, data: TransitionDataset) -> TransitionDataset:
        """The dataset of z: derived inputs appended to obs and next_obs."""
        return dataclasses.replace(
            data, obs=self._augment_np(data.obs), next_obs=self._augment_np(data.next_obs)
        )

    def fit(self, data: TransitionDataset, rng=None, progress: bool = False) -> FitReport:
        return self.inner.fit(self.augment_dataset(data), rng=rng, progress=progress)

    def step(self, x: torch.Tensor, u: torch.Tensor, mode="ts1", generator=None) -> torch.Tensor:
        """x (N, dx), u (N, du) float32 -> (N, dx) next states."""
        return self.inner.step(self._augment(x), u, mode, generator)[:, : self.dx]

    def predict(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self.inner.predict(self._augment_np(x), u)
        return mean[:, : self.dx], var[:, : self.dx]

    def member_predict(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self.inner.member_predict(self._augment_np(x), u)
        return mean[..., : self.dx], var[..., : self.dx]

    def sample(self, x: np.ndarray, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.inner.sample(self._augment_np(x), u, rng)[:, : self.dx]

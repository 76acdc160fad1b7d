"""What an agent knows of the arm: joints, limits, FK, the action scale and the rate, built
once from an ArmConfig (the arm file) for every driver and node."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from mbrl.config import ArmConfig
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.costs.tasks import TaskSampler


@dataclasses.dataclass(frozen=True, eq=False)
class ArmModel:
    """The arm seen by learners and actors.

    Attributes:
        config: the arm file's ArmConfig.
        fk: forward kinematics of config.ee_link over config.joint_names (float32).
        lower / upper / velocity: (nj,) joint limits, rad and rad/s: the arm file's
            overrides, else the URDF's.
        home: (nj,) start joints, rad: arm.home, else the middle of each range.
    """

    config: ArmConfig
    fk: ForwardKinematics
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    home: np.ndarray

    @classmethod
    def from_config(cls, arm: ArmConfig) -> ArmModel:
        fk = ForwardKinematics(arm.urdf, arm.ee_link, tuple(arm.joint_names))
        lower = np.array(arm.position_lower or fk.lower.tolist(), dtype=float)
        upper = np.array(arm.position_upper or fk.upper.tolist(), dtype=float)
        velocity = np.array(arm.velocity_limit or fk.velocity_limit.tolist(), dtype=float)
        home = np.array(arm.home, dtype=float) if arm.home else (lower + upper) / 2
        return cls(arm, fk, lower, upper, velocity, home)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(self.config.joint_names)

    @property
    def nj(self) -> int:
        return len(self.config.joint_names)

    @property
    def max_increment(self) -> float:
        return float(self.config.max_increment)

    @property
    def period(self) -> float:
        return self.config.control_period

    def ee(self, q: np.ndarray) -> np.ndarray:
        """q (..., nj) rad -> end-effector position (..., 3) m, float64, by FK."""
        with torch.no_grad():
            return self.fk(torch.as_tensor(q, dtype=self.fk.dtype)).double().numpy()

    def sampler(self, task: str, init_noise: float = 0.05) -> TaskSampler:
        """The episode sampler of `task` on this arm (mbrl.costs.tasks)."""
        return TaskSampler(task, self.fk, self.lower, self.upper, self.home, init_noise)

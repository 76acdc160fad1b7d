"""Algorithm 4's settings (mbrl.agents.policy), torch-free so that the presets (and every
node that validates an agent's parameters at start-up) can read them without importing
torch."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

# Preset keys that are not PolicyParams fields: what the shared schedule and env read.
SCHEDULE_KEYS = ("random_smoothing", "env")


@dataclasses.dataclass(frozen=True)
class PolicyParams:
    """Algorithm 4 settings for the reach task (preset ("policy", "reach")).

    Attributes:
        ensemble_size / model_hidden / model_epochs: the ensemble (E members, MLP widths,
            maximum fit epochs per episode).
        policy_hidden: widths of the policy MLP (tanh hidden units and output).
        horizon: imagined rollout length, steps (20 = 1 s at 20 Hz).
        particles: imagined rollouts per gradient step (a multiple of ensemble_size).
        policy_steps: Adam steps on the policy after each model fit (the policy carries
            over between episodes, so training accumulates).
        lr: Adam learning rate of the policy.
        random_episodes: episodes of uniformly random actions before the first policy.
        policy_form: "target" (`TargetPolicy`: u = tanh(k (r(goal) - q)), an MLP maps the
            goal to the joint target r it holds) or "mlp" (`MLPPolicy`, any map of the
            observation).
        cost_ee: where the objective reads the end effector: "model" (the learned model's
            prediction of the measured end effector, which the observation carries, and a
            learned map q -> end effector for the fixed point: the objective owes nothing to
            the arm's kinematics) or "fk" (forward kinematics of the predicted joints and of
            the target: the known-kinematics variant, reported apart).
        fixed_point_weight: "target" only: weight of the distance from ee(r(goal)) to the
            goal, the point the arm settles at after any horizon (docs/pilco.md), on
            `fixed_point_goals` goals per step; 0 = rollout cost only.
        fixed_point_steps: "target" only: extra Adam steps on the fixed-point term alone
            after each rollout step.
    """

    ensemble_size: int = 5
    model_hidden: tuple[int, ...] = (128, 128)
    model_epochs: int = 300
    policy_hidden: tuple[int, ...] = (128, 128)
    horizon: int = 20
    particles: int = 40
    policy_steps: int = 300
    lr: float = 1e-2
    random_episodes: int = 1
    policy_form: str = "target"
    cost_ee: str = "model"
    fixed_point_weight: float = 30.0
    fixed_point_goals: int = 256
    fixed_point_steps: int = 10

    def __post_init__(self) -> None:
        if self.policy_form not in ("target", "mlp"):
            raise ValueError(f"policy_form {self.policy_form!r}; expected 'target' or 'mlp'")
        if self.cost_ee not in ("model", "fk"):
            raise ValueError(f"cost_ee {self.cost_ee!r}; expected 'model' or 'fk'")
        if self.particles < 2 or self.particles % self.ensemble_size:
            raise ValueError(
                f"particles ({self.particles}) must be a multiple of ensemble_size "
                f"({self.ensemble_size}) and >= 2"
            )
        for name in ("model_epochs", "policy_steps", "horizon", "fixed_point_goals"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or self.fixed_point_weight < 0 or self.fixed_point_steps < 0:
            raise ValueError(
                f"lr must be > 0 and fixed_point_weight / fixed_point_steps >= 0; got "
                f"{self.lr}, {self.fixed_point_weight}, {self.fixed_point_steps}"
            )
        if not self.model_hidden or not self.policy_hidden:
            raise ValueError("model_hidden and policy_hidden need at least one layer")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PolicyParams:
        """From a merged preset (mbrl.agents.presets.preset("policy", "reach", ...))."""
        kw = {k: v for k, v in params.items() if k not in SCHEDULE_KEYS}
        for k in ("model_hidden", "policy_hidden"):
            if k in kw:
                kw[k] = tuple(int(h) for h in kw[k])
        return cls(**kw)

    def preset(self) -> dict[str, Any]:
        """These settings as a preset: lists for tuples, plus the schedule's keys (uniform
        random exploration, increments of the previous command as the reach env)."""
        out = {k: list(v) if isinstance(v, tuple) else v
               for k, v in dataclasses.asdict(self).items()}  # fmt: skip
        return {**out, "random_smoothing": 0.0, "env": {"increment_from": "command"}}

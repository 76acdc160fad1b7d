"""PILCO's settings (mbrl.agents.pilco), torch-free so that the presets (and every node that
validates an agent's parameters at start-up) can read them without importing torch."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

# Preset keys that are not PilcoParams fields: what the shared schedule and env read.
SCHEDULE_KEYS = ("random_smoothing", "env")


@dataclasses.dataclass(frozen=True)
class PilcoParams:
    """PILCO settings for the reach task (preset ("pilco", "reach"); `mbrl experiment --set`).

    Attributes:
        horizon: prediction horizon of the policy objective, steps (15 = 0.75 s at 20 Hz:
            at 0.1 rad per step every joint can cross 1.5 rad).
        cost_widths: sigma_c of the saturating cost (m) for successive optimisation stages,
            each warm-started from the last: a wide cost has gradients from 0.3 m away, a
            narrow one then pays for the last centimetres (a wide one barely does).
        num_inducing: sparse-GP basis size M of the dynamics GP once there are more
            transitions (moment matching is O(E^2 M^2 D) per step).
        gp_max_iter / gp_hyp_points: L-BFGS-B iterations and rows for the GP
            hyper-parameters.
        policy_iters: L-BFGS-B iterations of each optimisation stage.
        random_episodes: episodes of uniformly random actions before the first policy.
        init_gain: K = init_gain I at the start of each optimisation (with q_ref = home).
        terminal_weight: extra weight of the last predicted step's cost.
        init_from_data: start q_ref at the recorded joint positions whose FK is nearest
            each goal instead of at home (kinematics only; off in the measured runs).
        kinematics: use the arm's known forward kinematics in the objective (the old
            variant, reported apart): the end effector is FK of the predicted joints and
            the fixed-point term below is added. False (default): the end effector is the
            learned EE GP's prediction, nothing else.
        ee_num_inducing: sparse basis size of the end-effector GP (measured q -> measured
            ee, fitted on every recorded state).
        ee_min_step: rad; the EE GP keeps a recorded state only if some joint moved more
            than this since the last kept state of its episode (0 keeps every state).
        rest_weight: (learned variant) weight of the expected saturating cost of the EE
            GP's prediction at the policy's resting point q_ref (the integral servo
            u = sin(K (q_ref - q)) keeps moving the command until q = q_ref).
        rest_num_inducing: basis size of the resting-point EE GP (the EE GP's kernel; exact
            up to this many rows, 0 = always exact; equal to ee_num_inducing: the EE GP).
        fixed_point_weight: (kinematics only) weight of the saturating cost of the
            policy's fixed point fk(q_ref) (q_ref clamped to the joint limits, plus a
            quadratic pull back inside them).
        eval_goals / eval_every / num_episodes: the schedule the learner optimises
            policies for (PILCO's policy is per goal): after each fit, the next training
            episode's goal and, when an evaluation follows (every eval_every episodes and
            after the last), the eval_goals held-out goals. The loop driver sets them from
            its run; through the graph they must match the experiment node's.
    """

    horizon: int = 15
    cost_widths: tuple[float, ...] = (0.25, 0.05, 0.02)
    num_inducing: int = 50
    gp_max_iter: int = 100
    gp_hyp_points: int = 300
    policy_iters: int = 20
    random_episodes: int = 1
    init_gain: float = 3.0
    terminal_weight: float = 0.0
    init_from_data: bool = False
    kinematics: bool = False
    ee_num_inducing: int = 50
    ee_min_step: float = 0.002
    rest_weight: float = 100.0
    rest_num_inducing: int = 1000
    fixed_point_weight: float = 100.0
    eval_goals: int = 20
    eval_every: int = 5
    num_episodes: int = 10

    def __post_init__(self) -> None:
        if not self.cost_widths or min(self.cost_widths) <= 0:
            raise ValueError(f"cost_widths must be positive widths (m), got {self.cost_widths}")
        for name in ("horizon", "policy_iters", "eval_every", "num_episodes", "gp_max_iter"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rest_weight < 0 or self.fixed_point_weight < 0 or self.eval_goals < 0:
            raise ValueError("rest_weight, fixed_point_weight and eval_goals must be >= 0")
        if self.init_from_data and not self.kinematics:
            raise ValueError("init_from_data picks starts by forward kinematics: kinematics only")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PilcoParams:
        """From a merged preset (mbrl.agents.presets.preset("pilco", "reach", ...))."""
        kw = {k: v for k, v in params.items() if k not in SCHEDULE_KEYS}
        if "cost_widths" in kw:
            kw["cost_widths"] = tuple(float(w) for w in kw["cost_widths"])
        return cls(**kw)

    def preset(self) -> dict[str, Any]:
        """These settings as a preset: lists for tuples, plus the schedule's keys (uniform
        random exploration, increments of the previous command as the reach env)."""
        out = {k: list(v) if isinstance(v, tuple) else v
               for k, v in dataclasses.asdict(self).items()}  # fmt: skip
        return {**out, "random_smoothing": 0.0, "env": {"increment_from": "command"}}


def with_schedule(
    params: Mapping[str, Any],
    *,
    budget_steps: int,
    episode_steps: int,
    eval_goals: int,
    eval_every: int,
) -> dict[str, Any]:
    """`params` (preset overrides) plus the run's schedule keys, which PILCO's learner needs
    to know which goals come next (PilcoParams.eval_goals / eval_every / num_episodes).

    Raises:
        ValueError: an override sets one of them to something else than the run's.
    """
    schedule = {
        "eval_goals": int(eval_goals),
        "eval_every": int(eval_every),
        "num_episodes": -(-int(budget_steps) // int(episode_steps)),
    }
    clash = {k: params[k] for k in schedule if k in params and params[k] != schedule[k]}
    if clash:
        raise ValueError(f"pilco parameters {clash} differ from the run's schedule {schedule}")
    return {**params, **schedule}

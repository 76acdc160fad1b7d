"""Guided policy search's settings (GPSConfig) and the shipped presets per task, torch-free so
that naming the agent (mbrl.agents.presets, the nodes' parameter files) imports nothing
heavy. The learner and actors are in mbrl.agents.gps; docs/gps.md explains each setting.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class GPSConfig:
    """MDGPS settings (shipped per task in PRESETS; override through algo_params).

    Attributes:
        conditions: training initial conditions (goal, cube) drawn from the task distribution.
        samples: real episodes per condition and iteration.
        init_std: std of the initial zero-mean controller, normalised action units.
        base_kl_step: KL bound per time step, nats; epsilon = base_kl_step * T * step_mult.
        min_step_mult / max_step_mult: bounds of the adaptive step multiplier.
        prior_components / prior_strength: GMM dynamics prior (mbrl.models.gmm_prior).
        hidden: global MLP hidden widths.
        policy_steps / policy_batch / policy_lr: Adam steps of each S-step.
        anchor: what the C-step's KL bound is measured to: "global" (MDGPS, the linearised
            global policy) or "local" (the previous local controller, as in Levine & Abbeel
            2014; the global policy is then a plain supervised learner).
        l2_weight: weight of the squared-distance terms added to the task cost, per m^2 and
            step (mbrl.agents.gps_local.SquaredDistanceTerms).
        action_limit: every action (local samples, global policy) is clipped to +- this,
            normalised units (1 = 0.1 rad per tick).
        action_weight: weight of ||u||^2 per step in the cost (normalised units).
        approach_offset: push: the tip terms pull the tip to the pushing point this far
            behind the cube, m (mbrl.costs.push.PushCost.pushing_point).
        policy_memory: the S-step regresses the new local controllers' mean actions at the
            sampled states of this many most recent iterations (1 = this iteration only).
        relative_features: the global policy sees the joint state and the tip-to-target
            vectors only (mbrl.agents.gps_policy.GlobalPolicy, `relative`).
        cone_weight: scale of the task cost's distance terms (cones) in the local cost; 0
            makes the local cost exactly quadratic in the local state (the C-step's expansion
            of a cone plus a squared term aims 1 / (2 l2_weight) m past the target,
            docs/gps.md).
        l2_terminal: multiplier of the squared-distance terms at the final step.
        limit_weight: weight of the joint-limit barrier in the local cost (the env clamps
            commands to the limits anyway; a barrier band inside the limits makes goals
            whose joint solution lies in it unreachable for the local controllers).
        prior_max_rows: the GMM prior is fitted on at most this many most recent rows.
        horizon: T, steps per episode, over which the local controllers vary (the graph's
            episode length; the loop driver passes its episode_steps instead).
        condition_seed: the training conditions are condition_seeds(condition_seed,
            conditions); part of the agent's parameters so that the fitter's learner and the
            experiment node's schedule agree (the loop driver passes its run seed).
    """

    conditions: int = 4
    samples: int = 5
    init_std: float = 0.1
    base_kl_step: float = 0.5
    min_step_mult: float = 0.1
    max_step_mult: float = 2.0
    prior_components: int = 8
    prior_strength: float = 1.0
    hidden: tuple[int, ...] = (64, 64)
    policy_steps: int = 1000
    policy_batch: int = 256
    policy_lr: float = 1e-3
    anchor: str = "local"
    l2_weight: float = 10.0
    action_limit: float = 1.0
    action_weight: float = 1e-3
    approach_offset: float = 0.0
    policy_memory: int = 1
    relative_features: bool = False
    cone_weight: float = 0.0
    l2_terminal: float = 5.0
    limit_weight: float = 0.0
    prior_max_rows: int = 20_000
    horizon: int = 100
    condition_seed: int = 0

    def __post_init__(self) -> None:
        if min(self.conditions, self.samples, self.policy_memory, self.horizon) < 1:
            raise ValueError(
                f"GPSConfig needs conditions, samples, policy_memory and horizon >= 1; got "
                f"{self.conditions}, {self.samples}, {self.policy_memory}, {self.horizon}"
            )
        if self.anchor not in ("global", "local"):
            raise ValueError(f"GPSConfig.anchor must be 'global' or 'local', got {self.anchor!r}")
        if not (self.init_std > 0 and self.base_kl_step > 0):
            raise ValueError(
                f"GPSConfig needs init_std > 0 and base_kl_step > 0; got {self.init_std}, "
                f"{self.base_kl_step}"
            )
        if not 0 < self.action_limit <= 1:
            raise ValueError(f"GPSConfig.action_limit must be in (0, 1], got {self.action_limit}")


# docs/gps.md. Both: small exploration noise (the action is a joint increment, so the noise
# integrates into a random walk of the arm), the KL bound to the previous local controller
# (with the MDGPS anchor the poorly fitted global policy pulled the local controllers back),
# step multiplier at most 2, an exactly quadratic local cost without the joint-limit band.
# Reach: many conditions (the global policy generalises from the number of goals it has
# seen: 20 -> 30 conditions took the held-out success from ~0.4 to ~0.65 at iteration 8),
# two samples each with the GMM prior carrying the fits, and a policy that sees where the
# goal is relative to the tip. Push: gentle actions (+-0.35, the tip must not knock the cube
# away), the tip pulled to the pushing point behind the cube, 4 conditions x 5 samples.
PRESETS: dict[str, GPSConfig] = {
    "reach": GPSConfig(conditions=30, samples=2, base_kl_step=4.0, relative_features=True),
    "push": GPSConfig(
        conditions=4, samples=5, base_kl_step=3.0, action_limit=0.35, approach_offset=0.035
    ),
}


# Keys of the agent preset that are not GPSConfig's: the nodes' explorer and action base.
SCHEDULE_KEYS = ("random_smoothing", "env")


def gps_config(task: str, params: dict[str, Any]) -> GPSConfig:
    """The shipped preset for `task` with `params` (ExperimentConfig.algo_params) applied."""
    base = PRESETS[task]
    known = {f.name for f in dataclasses.fields(GPSConfig)}
    params = {k: v for k, v in params.items() if k not in SCHEDULE_KEYS}
    unknown = sorted(set(params) - known)
    if unknown:
        from mbrl.agents.presets import ParamError  # (presets imports this module)

        raise ParamError(f"gps: unknown algo_params {unknown}; expected some of {sorted(known)}")
    params = dict(params)
    if "hidden" in params:
        params["hidden"] = tuple(int(h) for h in params["hidden"])
    return dataclasses.replace(base, **params)


def gps_preset(task: str) -> dict[str, Any]:
    """The shipped preset of `task` as a plain mapping (mbrl.agents.presets' table)."""
    cfg = dataclasses.asdict(PRESETS[task])
    cfg["hidden"] = list(cfg["hidden"])
    # What the graph's nodes read beside the learner's settings: the explorer of the first
    # iteration (white, as the initial controller's noise) and the increment base.
    return {**cfg, "random_smoothing": 0.0, "env": {"increment_from": "command"}}


def condition_seeds(seed: int, conditions: int) -> list[int]:
    """The training conditions of a GPS run with `seed`: episode seeds (below EVAL_SEED)
    drawn from np.random.default_rng(seed). The learner and the graph's experiment node
    both call this, so they agree on the conditions without exchanging them."""
    import numpy as np

    from mbrl.costs.tasks import train_seed

    rng = np.random.default_rng([int(seed), 13])
    return [train_seed(rng) for _ in range(int(conditions))]

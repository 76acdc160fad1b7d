"""Shipped defaults per (algorithm, task) for the model-based agents, and the merge of a
run's `algo_params` overrides over them (unknown keys are an error, never silently ignored).

Figures behind the choices are in docs/loops.md and docs/results.md.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from mbrl.agents.pilco_params import PilcoParams
from mbrl.agents.policy_params import PolicyParams

# The learned model: a small PETS ensemble. ~100-500 transitions are too few for 4x200
# layers (docs/models.md); 5 x (2 x 128) fits them in a second or two on one core.
_ENSEMBLE = {
    "ensemble_size": 5,
    "hidden": [128, 128],
    "num_elites": 5,
    "fit_lr": 2e-3,
    "fit_batch_size": 32,
    "fit_max_epochs": 300,
    "fit_patience": 15,
    "fit_weight_decay": 5e-5,
    # Share of episodes held out for early stopping / elites; 0 = stop on the training error
    # (with 1-5 episodes a held-out episode would cost a fifth to a half of the data).
    "fit_holdout_fraction": 0.0,
    "fit_batches_per_epoch": 0,  # 0: fixed fit_batch_size (see _MPC_PUSH)
    # How a refit starts (mbrl.models.ensemble_fit.FitConfig.refit): "continue" trains the
    # previous weights further; "warm" re-expresses them for the new normalisation and runs a
    # short budget (reach, 3 seeds: no worse, docs/models.md); "cold" starts afresh.
    "fit_refit": "continue",
}

# MPC replans on every 20 Hz tick: the iCEM budget of mbrl.control.presets.REALTIME_20HZ
# (reaches 19/20 goals with the known kinematic model), ts1 over 5 ensemble members.
_MPC_REACH = {
    **_ENSEMBLE,
    "planner": "icem",
    "planner_config": {
        "horizon": 10,
        "num_samples": 40,
        "num_elites": 8,
        "iterations": 3,
        "particles": 5,
        "propagation": "ts1",
        "nominal_rollout": False,
    },
    "random_episodes": 1,  # episode 0 runs the random base policy (PETS does the same)
    "random_smoothing": 0.5,
    # What an action's increment is added to (mbrl.sim.tasks increment_from): the previous
    # command, as a forward_position_controller client does.
    "env": {"increment_from": "command"},
}

_MPC_PUSH = {
    **_MPC_REACH,
    "hidden": [200, 200, 200],
    # Gentle pushes: at full speed (0.1 rad per tick) the tip hits the 40 g cube at ~1 m/s and
    # it slides ~10 cm after contact, which a model without cube velocity cannot predict.
    # A third of the speed keeps the push quasi-static (the cube moves only while touched).
    "planner_config": {
        **_MPC_REACH["planner_config"],
        "horizon": 15,
        "num_samples": 60,
        "action_low": -0.35,
        "action_high": 0.35,
    },
    # Increments from the measured joint positions (mbrl.sim.tasks): pressing on the cube
    # holds the arm back, and increments of the previous command then wind it up unseen by
    # the model until the arm jumps free (measured: a cube 1.2 cm from its goal knocked
    # 11 cm away). From the measured q, (q, action) fixes the command: the state is Markov.
    "env": {"increment_from": "measured"},
    # Batch = max(fit_batch_size, n / 20): an epoch costs ~20 steps at any data size, so the
    # last of 100 refits (10k transitions) takes seconds, not a minute.
    "fit_batches_per_epoch": 20,
    "fit_max_epochs": 100,
    # mbrl.costs.push.PushCostConfig: push from behind the cube (half its 4 cm width + 1.5 cm),
    # coming down on that point from 5 cm above (over the 4 cm cube, not through it), with
    # the tip kept 1.5 cm above the table.
    "cost": {
        "approach_offset": 0.035,
        "approach_height": 0.05,
        "tip_to_object": 0.5,
        "object_to_goal": 1.0,
        "min_tip_height": 0.015,
        "table": 1.0,
    },
}

# Algorithms 1 and 2 plan once per episode, open loop: a longer horizon and a larger budget,
# then the plan is padded with zero increments (hold the last commanded position).
_OPEN_LOOP = {
    **_ENSEMBLE,
    "planner": "icem",
    "planner_config": {
        "horizon": 30,
        "num_samples": 200,
        "num_elites": 20,
        "iterations": 8,
        "particles": 5,
        "propagation": "ts1",
        "nominal_rollout": False,
    },
    "random_smoothing": 0.5,
}


class ParamError(ValueError):
    """An algo_params override names no known parameter, or no preset exists."""


PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("mpc", "reach"): _MPC_REACH,
    ("mpc", "push"): _MPC_PUSH,
    ("alg1", "reach"): _OPEN_LOOP,
    ("alg1", "push"): _OPEN_LOOP,
    ("alg2", "reach"): {**_OPEN_LOOP, "random_episodes": 1},
    ("alg2", "push"): {**_OPEN_LOOP, "random_episodes": 1},
    # Algorithm 4 (mbrl.agents.policy); its defaults live in PolicyParams.
    ("policy", "reach"): PolicyParams().preset(),
    # PILCO (mbrl.agents.pilco); its defaults live in PilcoParams.
    ("pilco", "reach"): PilcoParams().preset(),
}


def merge_params(defaults: Mapping[str, Any], overrides: Mapping[str, Any], what: str) -> dict:
    """defaults updated by overrides (nested dicts merged one level); a key missing from the
    defaults raises ParamError naming it and `what` (e.g. "mpc/reach")."""
    out = copy.deepcopy(dict(defaults))
    for key, value in overrides.items():
        if key not in out:
            raise ParamError(f"{what}: unknown parameter {key!r}; known: {sorted(out)}")
        if isinstance(out[key], dict) and isinstance(value, Mapping):
            out[key] = merge_params(out[key], value, f"{what}.{key}")
        else:
            out[key] = value
    return out


def preset(algo: str, task: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The shipped parameters of `algo` on `task`, with `overrides` (config.algo_params)."""
    if (algo, task) not in PRESETS:
        raise ParamError(f"no preset for algo {algo!r} on task {task!r}; have {sorted(PRESETS)}")
    return merge_params(PRESETS[(algo, task)], overrides or {}, f"{algo}/{task}")

"""Shipped defaults per (algorithm, task) for the model-based agents, and the merge of a
run's `algo_params` overrides over them (unknown keys are an error, never silently ignored).

Figures behind the choices are in docs/loops.md and docs/results.md.
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Mapping
from typing import Any

from mbrl.agents.gps_params import gps_preset
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
    # The loss of the ensemble's mean (mbrl.models.ensemble_fit.FitConfig.loss): "nll",
    # "beta_nll" or "mse" (see _MPC_PUSH).
    "fit_loss": "nll",
    # The matrix products of training (FitConfig.precision): "float32" or "bfloat16"
    # (faster on CPUs with AVX512-BF16; docs/models.md measures speed and accuracy).
    "fit_precision": "float32",
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
        # One particle through every member, averaged (mbrl.models.ensemble "expectation";
        # as costly as ts1 over 5 particles): with real servo imperfections the members
        # disagree by mm near the goal, and ts1's one sampled member per particle made the
        # arm wander 1-3 cm around it (docs/real_arm.md).
        "particles": 1,
        "propagation": "expectation",
        "nominal_rollout": False,
    },
    "random_episodes": 1,  # episode 0 runs the random base policy (PETS does the same)
    "random_smoothing": 0.5,
    # What an action's increment is added to (mbrl.sim.tasks increment_from): the previous
    # command, as a forward_position_controller client does.
    "env": {"increment_from": "command"},
    # What the model predicts (mbrl.agents.mpc): "q", or "q_qd_pending" = [q, qdot, previous
    # command - q], Markov for a servo with inertia and a tick of latency (docs/real_arm.md).
    "model_state": "q_qd_pending",
    # mbrl.costs.reach.ReachCostConfig weights (the defaults; action: per ||u||^2).
    "cost": {"action": 1e-3, "rate": 0.0},
}

_MPC_PUSH = {
    **_MPC_REACH,
    "hidden": [200, 200, 200],
    # Gentle pushes: at full speed (0.1 rad per tick) the tip hits the 40 g cube at ~1 m/s and
    # it slides ~10 cm after contact, which a model without cube velocity cannot predict.
    # A third of the speed keeps the push quasi-static (the cube moves only while touched).
    "model_state": "q",  # its own state: q, tip, cube (mbrl.agents.mpc)
    "planner_config": {
        **_MPC_REACH["planner_config"],
        "particles": 5,
        "propagation": "ts1",
        "horizon": 15,
        "num_samples": 60,
        "action_low": -0.35,
        "action_high": 0.35,
    },
    # Increments from the measured joint positions (mbrl.sim.tasks): pressing on the cube
    # holds the arm back, and increments of the previous command then wind it up unseen by
    # the model until the arm jumps free (measured: a cube 1.2 cm from its goal knocked
    # 11 cm away). From the measured q, (q, action) fixes the command: the state is Markov.
    # The cube velocity (estimated from the cube poses of consecutive ticks,
    # mbrl.costs.tasks.CubeVelocity) is part of the push observation and the model state.
    "env": {"increment_from": "measured", "object_velocity": True},
    # MSE for the mean: the NLL explains the rare large cube moves as variance (contact
    # 1-step nMSE of the cube 0.88 with NLL, 0.47 with MSE at 6k transitions; 0.33 with the
    # velocities at 30k; docs/models.md "Push").
    "fit_loss": "mse",
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
    # Guided policy search (mbrl.agents.gps); its defaults live in GPSConfig.
    ("gps", "reach"): gps_preset("reach"),
    ("gps", "push"): gps_preset("push"),
    # PILCO (mbrl.agents.pilco); its defaults live in PilcoParams.
    ("pilco", "reach"): PilcoParams().preset(),
}


def merge_params(defaults: Mapping[str, Any], overrides: Mapping[str, Any], what: str) -> dict:
    """defaults updated by overrides (nested dicts merged one level); a key missing from the
    defaults raises ParamError naming it and `what` (e.g. "mpc/reach")."""
    out = copy.deepcopy(dict(defaults))
    for key, value in overrides.items():
        if key not in out:
            close = difflib.get_close_matches(str(key), sorted(out), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ParamError(f"{what}: unknown parameter {key!r}{hint} (known: {sorted(out)})")
        _check_type(out[key], value, f"{what}.{key}")
        if isinstance(out[key], dict) and isinstance(value, Mapping):
            out[key] = merge_params(out[key], value, f"{what}.{key}")
        else:
            out[key] = value
    return out


def _check_type(default: Any, value: Any, what: str) -> None:
    """An override has its default's kind: a number for a number (an int for a float is
    fine), a bool for a bool, a list for a list, a mapping for a mapping, a string for a
    string; None defaults take anything."""
    if default is None:
        return
    number = (int, float)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, number) and not isinstance(value, bool),
        str: isinstance(value, str),
        list: isinstance(value, list),
        dict: isinstance(value, Mapping),
    }.get(type(default), True)
    if not ok:
        raise ParamError(
            f"{what} = {value!r}: expected a {type(default).__name__} like {default!r}"
        )


# (low, high) inclusive bounds of numeric preset keys (nested: "planner_config.horizon").
_BOUNDS: dict[str, tuple[float, float]] = {
    "ensemble_size": (1, 1000), "num_elites": (1, 1000), "fit_batch_size": (1, 10**7),
    "fit_max_epochs": (1, 10**6), "fit_patience": (1, 10**6), "fit_batches_per_epoch": (0, 10**6),
    "fit_weight_decay": (0.0, 1.0), "random_episodes": (0, 10**6),
    "planner_config.horizon": (1, 1000), "planner_config.num_samples": (1, 10**6),
    "planner_config.num_elites": (1, 10**6), "planner_config.iterations": (1, 1000),
    "planner_config.particles": (1, 10**4),
}  # fmt: skip
_CHOICES = {"fit_refit": ("continue", "warm", "cold"),
            "fit_precision": ("float32", "bfloat16"),
            "env.increment_from": ("command", "measured")}  # fmt: skip


def check_values(params: Mapping[str, Any], what: str) -> None:
    """Ranges of a merged preset; ParamError names the key and the allowed range."""

    def get(path: str) -> Any:
        node: Any = params
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        return node

    for key, (low, high) in _BOUNDS.items():
        value = get(key)
        if value is not None and not (low <= value <= high):
            raise ParamError(f"{what}: {key} = {value!r}; expected {low} <= {key} <= {high}")
    for key, allowed in _CHOICES.items():
        value = get(key)
        if value is not None and value not in allowed:
            raise ParamError(f"{what}: {key} = {value!r}; expected one of {list(allowed)}")
    lr = get("fit_lr")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ParamError(f"{what}: fit_lr = {lr!r}; the learning rate must be > 0")
    hidden = get("hidden")
    if hidden is not None and not (
        hidden and all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden)
    ):
        raise ParamError(f"{what}: hidden = {hidden!r}; expected a non-empty list of widths >= 1")
    holdout = get("fit_holdout_fraction")
    if holdout is not None and not 0.0 <= holdout < 1.0:
        raise ParamError(f"{what}: fit_holdout_fraction = {holdout!r}; expected in [0, 1)")
    smoothing = get("random_smoothing")
    if smoothing is not None and not 0.0 <= smoothing < 1.0:
        raise ParamError(f"{what}: random_smoothing = {smoothing!r}; expected in [0, 1)")
    elites, size = get("num_elites"), get("ensemble_size")
    if elites is not None and size is not None and elites > size:
        raise ParamError(f"{what}: num_elites = {elites} > ensemble_size = {size}")


def preset(algo: str, task: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The shipped parameters of `algo` on `task`, with `overrides` (config.algo_params);
    ParamError names an unknown key (with a close match), a wrongly typed or an out-of-range
    value."""
    if (algo, task) not in PRESETS:
        raise ParamError(f"no preset for algo {algo!r} on task {task!r}; have {sorted(PRESETS)}")
    what = f"{algo}/{task}"
    params = merge_params(PRESETS[(algo, task)], overrides or {}, what)
    check_values(params, what)
    return params

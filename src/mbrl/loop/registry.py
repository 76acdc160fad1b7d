"""Learning-loop drivers by name, imported lazily so one driver's dependencies never break
another's; `run_experiment` is what the `mbrl experiment` CLI and scripts/results.py call.

A driver is `run(config: ExperimentConfig, recorder: RunRecorder) -> dict`: it spends at most
`config.budget_steps` real env steps, logs each evaluation through `recorder.log`, and
returns `recorder.finish(...)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from mbrl.loop.common import ExperimentConfig, RunRecorder

Driver = Callable[[ExperimentConfig, RunRecorder], dict]

# algo name -> "module:function"
DRIVERS: dict[str, str] = {
    "alg1": "mbrl.loop.algorithms:run_alg1",
    "alg2": "mbrl.loop.algorithms:run_alg2",
    "mpc": "mbrl.loop.mpc_loop:run_mpc",
    "policy": "mbrl.loop.policy_loop:run_policy",
    "gps": "mbrl.loop.gps:run_gps",
    "pilco": "mbrl.loop.pilco:run_pilco",
}


def get_driver(algo: str) -> Driver:
    """The driver function registered for `algo`; ValueError naming the known algorithms."""
    if algo not in DRIVERS:
        raise ValueError(f"unknown algo {algo!r}; expected one of {sorted(DRIVERS)}")
    module_name, func = DRIVERS[algo].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            raise ValueError(f"algo {algo!r}: driver module {module_name} is not built yet") from e
        raise
    return getattr(module, func)


def run_experiment(config: ExperimentConfig, *, verbose: bool = True) -> dict[str, Any]:
    """Build the run directory and run `config.algo`; returns the driver's summary."""
    driver = get_driver(config.algo)
    recorder = RunRecorder(config, verbose=verbose)
    return driver(config, recorder)

"""`mbrl experiment`: run one learning loop (mbrl.loop.registry) and write runs/<name>/.

Example: mbrl experiment --algo mpc --task reach --seed 0 --budget-steps 500
         mbrl experiment --algo mpc --arm config/arm_iiwa.yaml --servo realistic
         mbrl experiment --algo mpc --set refit_every=25 --set planner_config.horizon=15
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml

from mbrl.config import ConfigError, add_arm_arguments, arm_from_options
from mbrl.loop.common import ExperimentConfig
from mbrl.loop.presets import ParamError
from mbrl.loop.registry import DRIVERS, get_driver, run_experiment


def parse_set(items: list[str]) -> dict[str, Any]:
    """["a=1", "b.c=[1, 2]"] -> {"a": 1, "b": {"c": [1, 2]}}; values are YAML scalars/lists."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected key=value (e.g. refit_every=25)")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(text)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algo", required=True, choices=sorted(DRIVERS))
    parser.add_argument("--task", default="reach", choices=["reach", "push"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--budget-steps", type=int, default=None, help="real env steps (default: the config's)"
    )
    parser.add_argument("--episode-steps", type=int, default=None)
    parser.add_argument("--eval-goals", type=int, default=None)
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--out", default="runs", help="parent directory of runs/<name>/")
    parser.add_argument("--name", default="", help="run name (default algo-task-sSEED)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset parameter of the algorithm (repeatable; dots for nesting)",
    )
    add_arm_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        overrides = parse_set(args.set)
        arm = arm_from_options(args.arm, args.servo)
    except (ValueError, ConfigError) as e:
        print(f"mbrl experiment: {e}")
        return 2
    optional = {
        "budget_steps": args.budget_steps,
        "episode_steps": args.episode_steps,
        "eval_goals": args.eval_goals,
        "eval_every": args.eval_every,
    }
    try:
        get_driver(args.algo)
    except ValueError as e:  # the driver module is not built (yet)
        print(f"mbrl experiment: {e}")
        return 2
    config = ExperimentConfig(
        algo=args.algo,
        task=args.task,
        seed=args.seed,
        out_dir=args.out,
        name=args.name,
        algo_params=overrides,
        arm=arm,
        **{k: v for k, v in optional.items() if v is not None},
    )
    try:
        summary = run_experiment(config)
    except ParamError as e:  # an unknown --set key: a usage error, not a crash
        print(f"mbrl experiment: {e}")
        return 2
    brief = {k: summary[k] for k in ("name", "env_steps", "success_rate", "final_distance")}
    print(json.dumps({**brief, "run_dir": summary["run_dir"]}))
    return 0

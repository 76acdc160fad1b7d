"""The `mbrl` command line: one sub-command per capability, each in its own module.

Sub-command modules are imported only when chosen, so `mbrl --help` stays fast and a
missing optional dependency of one command never breaks the others. Each module exposes
`add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Add a capability by adding a line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("mbrl.ros.demo", "run the demo: the ROS 2 graph with the simulated arm"),
    "sim": ("mbrl.sim.cli", "simulated arm utilities (check a URDF config, render a frame)"),
    "tabular": ("mbrl.loop.tabular_cli", "tabular model-based RL: AB example, Dyna-Q maze"),
    "experiment": ("mbrl.loop.experiment_cli", "run a learning loop (alg1/2, mpc, ...) to runs/"),
    "arm": ("mbrl.real.cli", "real-arm set-up: import a LeRobot calibration into an arm file"),
    "view": ("mbrl.view.cli", "web viewer: live on the running graph, or replay runs/<name>"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mbrl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser = build_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}; choose from {sorted(COMMANDS)}")
        parser.print_help()
        return 0 if argv else 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"mbrl {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    return int(module.run(args) or 0)

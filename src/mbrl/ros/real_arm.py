"""The graph on a real ros2_control arm: every mbrl node but the sim, each with its own
parameter file plus config/real_arm.yaml (conservative overrides: slow, starts disabled).

launch/manipulator_real.launch.py builds its Nodes from `real_arm_graph()`; without
launch_ros, `python -m mbrl.ros.real_arm [--experiment]` starts the same nodes with the same
parameter files through the embedded runner. Step by step: docs/real_arm.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys

from mbrl.ros.graph import GRAPH, NodeSpec

REAL_ARM_PARAMS = "real_arm.yaml"
# The ros2_control stack (joint_state_broadcaster + a position or trajectory controller)
# replaces the sim; the experiment node moves the arm on its own, so it is opt-in.
REPLACED = ("sim",)
OPT_IN = ("experiment",)


def real_arm_graph(with_experiment: bool = False) -> tuple[NodeSpec, ...]:
    """The NodeSpecs for a real arm, in graph order, real_arm.yaml appended to each one's files
    (later files override earlier ones, in ros2 launch and in the runner alike)."""
    skip = set(REPLACED) | (set() if with_experiment else set(OPT_IN))
    return tuple(
        dataclasses.replace(spec, param_files=(*spec.param_files, REAL_ARM_PARAMS))
        for spec in GRAPH
        if spec.name not in skip
    )


def main(argv: list[str] | None = None) -> int:
    """Start the real-arm graph with the embedded runner until Ctrl-C (1 if a node dies)."""
    from mbrl.ros.runner import GraphRunner, NodeDied

    parser = argparse.ArgumentParser(prog="python -m mbrl.ros.real_arm", description=__doc__)
    parser.add_argument("--experiment", action="store_true", help="also run the schedule")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with GraphRunner(real_arm_graph(args.experiment)) as runner:
            runner.wait()
    except KeyboardInterrupt:
        return 0
    except NodeDied as exc:
        print(f"[runner] {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

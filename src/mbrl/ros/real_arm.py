"""The graph on a real ros2_control arm: every mbrl node but the sim, each with its own
parameter file plus config/real_arm.yaml (conservative overrides: slow, starts disabled).

launch/manipulator_real.launch.py builds its Nodes from `real_arm_graph()`; without
launch_ros, `python -m mbrl.ros.real_arm [--experiment]` starts the same nodes with the same
parameter files through the embedded runner. An SO-101: `--arm config/arm_myso101.yaml` (from
`mbrl arm import-calibration`) gives every node the arm file's calibrated limits and joint
names; `--driver ros2_control` adds config/arm_so101_ros2_control.yaml (the public SO-101
drivers' names and rates) to every node's files; `--driver bridge` also starts the
feetech_bridge node on the arm file (no ros2_control). Step by step: docs/real_arm.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from typing import Any

from mbrl.ros.graph import GRAPH, NodeSpec

REAL_ARM_PARAMS = "real_arm.yaml"
# The ros2_control stack (joint_state_broadcaster + a position or trajectory controller)
# replaces the sim; the experiment node moves the arm on its own, so it is opt-in.
REPLACED = ("sim",)
OPT_IN = ("experiment",)
# For an SO-101 without ros2_control: the arm's driver itself (Feetech servos on a serial bus).
BRIDGE = NodeSpec(
    name="feetech_bridge",
    module="mbrl.ros.feetech_bridge",
    executable="feetech_bridge",
    param_files=("feetech_bridge.yaml",),
)


ROS2_CONTROL_PARAMS = "arm_so101_ros2_control.yaml"
DRIVERS = ("other", "ros2_control", "bridge")


def real_arm_graph(with_experiment: bool = False, driver: str = "other") -> tuple[NodeSpec, ...]:
    """The NodeSpecs for a real arm, in graph order, real_arm.yaml appended to each one's files
    (later files override earlier ones, in ros2 launch and in the runner alike).

    driver: "other" (any ros2_control arm; nothing added), "ros2_control" (an SO-101 through
    a public ros2_control driver: arm_so101_ros2_control.yaml appended too) or "bridge" (the
    feetech_bridge node first: it is the arm's driver).
    """
    if driver not in DRIVERS:
        raise ValueError(f"driver must be one of {list(DRIVERS)}, got {driver!r}")
    skip = set(REPLACED) | (set() if with_experiment else set(OPT_IN))
    extra = (
        (REAL_ARM_PARAMS, ROS2_CONTROL_PARAMS) if driver == "ros2_control" else (REAL_ARM_PARAMS,)
    )
    nodes = tuple(
        dataclasses.replace(spec, param_files=(*spec.param_files, *extra))
        for spec in GRAPH
        if spec.name not in skip
    )
    return ((BRIDGE,) if driver == "bridge" else ()) + nodes


def arm_file_overrides(arm_file: str, specs: tuple[NodeSpec, ...]) -> dict[str, dict[str, Any]]:
    """Parameter overrides that give the nodes of `specs` the arm file's calibrated limits and
    joint names (the bridge reads the file itself)."""
    from mbrl.config import load_arm_config

    arm = load_arm_config(arm_file)
    params: dict[str, Any] = {}
    if arm.position_lower:
        params["arm.position_lower"] = list(arm.position_lower)
    if arm.position_upper:
        params["arm.position_upper"] = list(arm.position_upper)
    if arm.driver_joint_names:
        params["arm.driver_joint_names"] = list(arm.driver_joint_names)
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if spec.name == BRIDGE.name:
            out[spec.name] = {"arm_file": arm_file}
        elif spec.name in ("mpc_controller", "experiment") and params:
            out[spec.name] = dict(params)
        elif spec.name == "collector" and arm.driver_joint_names:
            out[spec.name] = {"driver_joints": list(arm.driver_joint_names)}
    return out


def main(argv: list[str] | None = None) -> int:
    """Start the real-arm graph with the embedded runner until Ctrl-C (1 if a node dies)."""
    from mbrl.ros.runner import GraphRunner, NodeDied

    parser = argparse.ArgumentParser(prog="python -m mbrl.ros.real_arm", description=__doc__)
    parser.add_argument("--experiment", action="store_true", help="also run the schedule")
    parser.add_argument(
        "--arm", metavar="ARM_FILE", help="arm file of `mbrl arm import-calibration`"
    )
    parser.add_argument(
        "--driver",
        choices=DRIVERS,
        default="other",
        help="ros2_control: an SO-101 through a public ros2_control driver; bridge: start "
        "the feetech_bridge node (needs --arm); other: any ros2_control arm",
    )
    args = parser.parse_args(argv)
    if args.driver == "bridge" and not args.arm:
        parser.error("--driver bridge needs --arm ARM_FILE (mbrl arm import-calibration)")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    specs = real_arm_graph(args.experiment, args.driver)
    overrides = arm_file_overrides(args.arm, specs) if args.arm else None
    try:
        with GraphRunner(specs, overrides=overrides) as runner:
            runner.wait()
    except KeyboardInterrupt:
        return 0
    except NodeDied as exc:
        print(f"[runner] {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

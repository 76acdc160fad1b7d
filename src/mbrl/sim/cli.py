"""`mbrl sim`: load an arm from a config and show what the simulator made of it.

mbrl sim check  --config config/arm_iiwa.yaml      # joints, limits, EE link, home pose
mbrl sim render --config config/arm_so101.yaml --task push -o frame.png
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from mbrl.config import ArmConfig, ConfigError, load_arm_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands `check` and `render` with their options."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="load the arm and print joints, limits and EE")
    render = sub.add_parser("render", help="render one frame (TinyRenderer) to a PNG file")
    for p in (check, render):
        p.add_argument("--config", help="YAML file with an `arm:` section (default: bundled arm)")
        p.add_argument("--key", default="arm", help="section of the YAML to read (default: arm)")
    check.add_argument("--json", action="store_true", help="print one JSON object instead")
    render.add_argument("-o", "--output", default="frame.png", help="PNG file to write")
    render.add_argument("--task", choices=["none", "reach", "push"], default="reach")
    render.add_argument("--seed", type=int, default=0, help="episode seed (goal, cube)")
    render.add_argument("--width", type=int, default=640)
    render.add_argument("--height", type=int, default=480)


def _config(args: argparse.Namespace) -> ArmConfig:
    return load_arm_config(args.config, args.key) if args.config else ArmConfig()


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; configuration errors print one line and return 2."""
    try:
        config = _config(args)
        return _check(config, args.json) if args.action == "check" else _render(config, args)
    except ConfigError as exc:
        print(f"mbrl sim: {exc}", file=sys.stderr)
        return 2


def _check(config: ArmConfig, as_json: bool) -> int:
    from mbrl.sim.arm import SimArm

    with SimArm(config) as arm:
        report = {
            "urdf": arm.urdf_path,
            "joints": [
                {
                    "name": name,
                    "lower": float(arm.lower[i]),
                    "upper": float(arm.upper[i]),
                    "velocity": float(arm.velocity_limit[i]),
                    "effort": float(arm.effort_limit[i]),
                    "home": float(arm.home[i]),
                }
                for i, name in enumerate(arm.joint_names)
            ],
            "gripper_joints": list(config.gripper_joints),
            "ee_link": config.ee_link,
            "ee_at_home": arm.ee_position().round(4).tolist(),
            "reach_m": round(arm.reach, 4),
            "home_in_collision": arm.in_collision(),
            "control_rate_hz": config.control_rate_hz,
            "substeps": config.substeps,
        }
    if as_json:
        print(json.dumps(report))
        return 0
    print(f"URDF      {report['urdf']}")
    print(f"{'joint':<20}{'lower':>9}{'upper':>9}{'vel':>8}{'effort':>8}{'home':>8}")
    for j in report["joints"]:
        print(
            f"{j['name']:<20}{j['lower']:>9.3f}{j['upper']:>9.3f}{j['velocity']:>8.2f}"
            f"{j['effort']:>8.2f}{j['home']:>8.3f}"
        )
    print(f"gripper   {report['gripper_joints']} (held closed)")
    print(f"EE link   {report['ee_link']} at home {report['ee_at_home']} m")
    print(f"reach     {report['reach_m']} m; home in collision: {report['home_in_collision']}")
    print(f"control   {config.control_rate_hz:g} Hz, {config.substeps} physics substeps per tick")
    return 0


def _render(config: ArmConfig, args: argparse.Namespace) -> int:
    import matplotlib.image

    from mbrl.sim.arm import SimArm
    from mbrl.sim.tasks import make_env

    if args.task == "none":
        with SimArm(config) as arm:
            frame = arm.render(args.width, args.height)
    else:
        env = make_env(args.task, config)
        try:
            env.reset(seed=args.seed)
            frame = env.unwrapped.arm.render(args.width, args.height)
        finally:
            env.close()
    matplotlib.image.imsave(args.output, np.ascontiguousarray(frame))
    print(f"wrote {args.output} ({args.width}x{args.height}, task {args.task})")
    return 0

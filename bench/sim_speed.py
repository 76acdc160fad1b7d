"""Simulated steps per second, headless (PyBullet DIRECT), one JSON object per line.

Reference measured in the same run: raw `stepSimulation` of the same world. Each env/arm line
gives `physics_share`: how much of its time is the physics it must do anyway
(ticks x substeps / raw physics rate); the rest is our servo model, sensing and task code.
`realtime_factor` is simulated seconds per wall-clock second.

    .venv/bin/python bench/sim_speed.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mbrl.config import ArmConfig, ServoConfig, load_arm_config
from mbrl.sim.arm import SimArm
from mbrl.sim.tasks import make_env

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def rate(fn: Callable[[], None], seconds: float) -> float:
    """Calls of `fn` per wall-clock second over about `seconds` (after a short warm-up)."""
    for _ in range(10):
        fn()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(20):
            fn()
        n += 20
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per line")
    args = parser.parse_args()
    configs = {
        "so_arm": ArmConfig(),
        "iiwa": load_arm_config(CONFIG_DIR / "arm_iiwa.yaml"),
    }
    for name, config in configs.items():
        substeps, physics_hz = config.substeps, config.physics_rate_hz
        with SimArm(config, with_cube=True) as arm:
            raw = rate(arm.client.stepSimulation, args.seconds)
            print(
                json.dumps(
                    {
                        "bench": "raw_physics",
                        "arm": name,
                        "steps_per_s": round(raw),
                        "realtime_factor": round(raw / physics_hz, 1),
                    }
                )
            )
            rng = np.random.default_rng(0)

            def tick(arm=arm, rng=rng):
                arm.set_position_targets(arm.home + rng.uniform(-0.3, 0.3, arm.home.shape))
                arm.step()
                arm.joint_positions()
                arm.ee_position()

            ticks = rate(tick, args.seconds)
            print(
                json.dumps(
                    {
                        "bench": "arm_tick",
                        "arm": name,
                        "ticks_per_s": round(ticks),
                        "realtime_factor": round(ticks / config.control_rate_hz, 1),
                        "physics_share": round(ticks * substeps / raw, 3),
                    }
                )
            )
        variants = [("reach", config), ("push", config)]
        if name == "so_arm":
            robust = ArmConfig(servo=ServoConfig(noise_std=0.005, backlash=0.01, latency_ticks=1))
            variants.append(("reach+servo_effects", robust))
        for task, cfg in variants:
            env = make_env(task.split("+")[0], cfg)
            env.reset(seed=0)
            action_rng = np.random.default_rng(1)

            def env_step(env=env, rng=action_rng):
                *_, terminated, truncated, _ = env.step(
                    rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
                )
                if terminated or truncated:
                    env.reset()

            steps = rate(env_step, args.seconds)
            print(
                json.dumps(
                    {
                        "bench": "env_step",
                        "arm": name,
                        "task": task,
                        "steps_per_s": round(steps),
                        "realtime_factor": round(steps / cfg.control_rate_hz, 1),
                        "physics_share": round(steps * substeps / raw, 3),
                    }
                )
            )
            resets = rate(lambda env=env: env.reset(), min(args.seconds, 1.0))
            print(
                json.dumps(
                    {"bench": "env_reset", "arm": name, "task": task, "resets_per_s": round(resets)}
                )
            )
            env.close()
    with SimArm() as arm:
        fps = rate(lambda: arm.render(320, 240), min(args.seconds, 1.0))
        print(
            json.dumps({"bench": "render_320x240", "arm": "so_arm", "frames_per_s": round(fps, 1)})
        )


if __name__ == "__main__":
    main()

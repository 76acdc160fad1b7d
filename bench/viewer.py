"""The live viewer's cost on the controller: tick time p99 with the viewer off, on, and on with
a headless Chromium rendering the page, interleaved in one run (docs/viewer.md).

Each block starts a fresh sim + mpc_controller (realtime, 20 Hz, planning with the arm's known
model, plans published every 2 ticks, a new goal every 100 ticks; as bench/ros_loop.py) so
the controller's tick percentiles on /diagnostics cover that block alone. Blocks run in
the order off, on, on+browser, off, ... so drift of the shared machine's load falls on all
three alike. Prints one JSON line per block and a summary line: per condition the median over
rounds of the block tick p99, and the ratio to "off" (the target: on < 1.10).

  python bench/viewer.py --rounds 3 --ticks 400
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
import torch

from mbrl.config import ArmConfig
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.ros import viewer
from mbrl.ros.graph import get_nodes
from mbrl.ros.runner import GraphRunner
from mbrl.view.scene import viewer_url
from ros_loop import Probe  # the same probe node as the closed-loop bench

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = ("off", "on", "on+browser")


def _cpu_seconds(proc) -> float:
    """User + system CPU seconds of a process and its children (chromium has many)."""
    import psutil

    try:
        root = psutil.Process(proc.pid)
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            t = p.cpu_times()
            total += t.user + t.system
        return total
    except psutil.Error:
        return float("nan")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def block(condition: str, ticks: int, probe: Probe, fk, rng, out) -> dict:
    """One fresh graph for `ticks` controller ticks under `condition`; its tick percentiles."""
    view = browser = None
    if condition != "off":
        web, grpc = _port(), _port()
        view = viewer.start(web, grpc, output=out)
        if condition == "on+browser":
            sys.path.insert(0, str(ROOT / "test" / "view"))
            from headless import HeadlessChromium

            time.sleep(3.0)  # let the viewer serve its page
            browser = HeadlessChromium(viewer_url(web, grpc))
    ctl = {"trigger": "timer", "viz_every": 2, "diagnostics_rate_hz": 2.0}
    runner = GraphRunner(get_nodes(["sim", "mpc_controller"]),
                         overrides={"sim": {"timing": "realtime", "seed": 0},
                                    "mpc_controller": ctl}, output=out)  # fmt: skip
    probe.diag = {}
    try:
        runner.start()
        deadline = time.monotonic() + 180
        while probe.ticks() < 20:  # the controller plans with the arm's known model
            if time.monotonic() > deadline:
                raise TimeoutError(f"controller made {probe.ticks()} ticks in 180 s ({condition})")
            rclpy.spin_once(probe.node, timeout_sec=0.05)
            runner.check()
        watched = {"viewer": view} if view is not None else {}
        if browser is not None:
            watched["browser"] = browser.proc
        cpu0 = {name: _cpu_seconds(proc) for name, proc in watched.items()}
        t0 = time.monotonic()
        first = next_goal = probe.ticks()
        start_misses = int(probe.diag["deadline_misses"])
        while probe.ticks() < first + ticks:
            if probe.ticks() >= next_goal:
                goal = fk(torch.as_tensor(rng.uniform(fk.lower.numpy(), fk.upper.numpy())))
                probe.publish_goal(goal.numpy())
                next_goal += 100
            rclpy.spin_once(probe.node, timeout_sec=0.05)
            runner.check()
        d = probe.diag
        cpu = {name: round(_cpu_seconds(proc) - cpu0[name], 2) for name, proc in watched.items()}
        return {
            "bench": "viewer", "condition": condition, "ticks": probe.ticks(),
            "tick_ms_p50": float(d["tick_ms_p50"]), "tick_ms_p99": float(d["tick_ms_p99"]),
            "latency_ms_p99": float(d["latency_ms_p99"]),
            "deadline_misses": int(d["deadline_misses"]) - start_misses,
            "wall_s": round(time.monotonic() - t0, 1),
            "cpu_s": cpu,  # CPU seconds of the viewer (and browser) processes in the block
            "load_avg_1min": round(os.getloadavg()[0], 2),
        }  # fmt: skip
    finally:
        runner.shutdown()
        if browser is not None:
            browser.close()
        if view is not None:
            view.terminate()
            view.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--ticks", type=int, default=400, help="controller ticks per block")
    parser.add_argument("--verbose", action="store_true", help="show the nodes' output")
    args = parser.parse_args()
    cfg = ArmConfig()
    fk = ForwardKinematics(cfg.urdf, cfg.ee_link, cfg.joint_names, dtype=torch.float64)
    rng = np.random.default_rng(0)
    out = sys.stderr if args.verbose else open(os.devnull, "w")  # noqa: SIM115
    rclpy.init()
    probe = Probe()
    blocks = []
    try:
        for _ in range(args.rounds):
            for condition in CONDITIONS:
                blocks.append(block(condition, args.ticks, probe, fk, rng, out))
                print(json.dumps(blocks[-1]), flush=True)
    finally:
        probe.node.destroy_node()
        rclpy.try_shutdown()
    p99 = {c: float(np.median([b["tick_ms_p99"] for b in blocks if b["condition"] == c]))
           for c in CONDITIONS}  # fmt: skip
    p50 = {c: float(np.median([b["tick_ms_p50"] for b in blocks if b["condition"] == c]))
           for c in CONDITIONS}  # fmt: skip
    print(json.dumps({
        "bench": "viewer_summary", "rounds": args.rounds, "ticks_per_block": args.ticks,
        "tick_ms_p99_median": p99, "tick_ms_p50_median": p50,
        "p99_ratio_on_over_off": round(p99["on"] / p99["off"], 3),
        "p99_ratio_browser_over_off": round(p99["on+browser"] / p99["off"], 3),
        "viewer_cpu_fraction": {c: round(float(np.median(
            [b["cpu_s"].get("viewer", 0.0) / b["wall_s"] for b in blocks if b["condition"] == c])),
            3) for c in CONDITIONS},
        "browser_cpu_fraction": round(float(np.median(
            [b["cpu_s"]["browser"] / b["wall_s"] for b in blocks if "browser" in b["cpu_s"]])), 3),
        "misses": {c: sum(b["deadline_misses"] for b in blocks if b["condition"] == c)
                   for c in CONDITIONS},
        "cpus": os.cpu_count(),
    }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

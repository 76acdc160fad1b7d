"""Experience-to-controller latency through the graph: the seconds from an episode's MCAP
reaching /mbrl/episodes (what the collector publishes when an episode ends) to the
controller running a model fitted on it, with the fitter holding ~10k transitions.

Starts the real model_fitter and mpc_controller nodes (separate processes, real DDS), gives
the fitter `--episodes` recorded episodes in its own directory, lets it fit them once (the
cold fit, also timed), then publishes `--repeats` new episodes one at a time and times, for
each: fitter receipt -> fit -> checkpoint -> /mbrl/model -> controller load, warm-up and swap
(ControllerStatus.model_version on /mbrl/status). Every refit rule of FitConfig.refit is run
in the same process (one graph each), so the reference is measured in the same run: the
"cold" rule, which refits from scratch on everything after each episode.

The episodes are a first-order servo driven by random increments (the fitter's test data),
recorded with the reach task's joints; the fit's cost depends on the data's size, not on its
source. One JSON line per rule, then a summary line with the ratios.

  nice .venv/bin/python bench/experience_latency.py                  # 100 x 100 ticks
  nice .venv/bin/python bench/experience_latency.py --episodes 20 --repeats 2   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
from std_msgs.msg import String, UInt8MultiArray

from mbrl.config import ArmConfig
from mbrl.data.episodes import EpisodeWriter
from mbrl.ros import status as mbrl_status
from mbrl.ros.graph import get_nodes
from mbrl.ros.runner import GraphRunner
from mbrl.ros.topics import STATUS, STATUS_QOS
from mbrl.ros.transport import EPISODES_QOS, EPISODES_TOPIC, encode_episode_msg

JOINTS = ArmConfig().joint_names


def record(path: Path, rng: np.random.Generator, ticks: int, episode_id: int) -> None:
    """A 20 Hz episode of q' = q + 0.5 (c - q), commands a random walk of increments."""
    q = rng.uniform(-0.5, 0.5, len(JOINTS))
    c = q.copy()
    with EpisodeWriter(path, JOINTS, {"episode_id": str(episode_id)}) as w:
        for k in range(ticks + 1):
            w.write_joint_state(0.05 * k, q, np.zeros(len(JOINTS)))
            c = c + rng.uniform(-0.1, 0.1, len(JOINTS))
            w.write_command(0.05 * k + 0.001, c)
            q = q + 0.5 * (c - q)


class Watcher:
    """Latest typed /mbrl/status of the fitter and the controller; publishes episodes."""

    def __init__(self) -> None:
        self.node = rclpy.create_node("experience_latency_bench")
        self.status: dict[str, object] = {}
        self.node.create_subscription(String, STATUS, self._on_status, STATUS_QOS)
        self.episodes = self.node.create_publisher(UInt8MultiArray, EPISODES_TOPIC, EPISODES_QOS)

    def _on_status(self, msg: String) -> None:
        try:
            kind, status = mbrl_status.decode(msg)
        except mbrl_status.StatusError as exc:  # another graph on this ROS domain
            print(f"ignored a foreign status: {exc}", file=sys.stderr)
            return
        self.status[kind] = status

    def wait(self, predicate, timeout: float, what: str) -> float:
        """Spin until predicate(); returns the time.perf_counter() it became true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return time.perf_counter()
            rclpy.spin_once(self.node, timeout_sec=0.005)
        raise TimeoutError(f"no {what} after {timeout:.0f} s; status {self.status}")

    def version(self, kind: str) -> int:
        status = self.status.get(kind)
        return -1 if status is None else int(status.model_version)


def run_rule(rule: str, args: argparse.Namespace, root: Path, watcher: Watcher) -> dict:
    rng = np.random.default_rng(0)
    fitter_dir = root / rule / "fitter"
    episodes_dir = fitter_dir / "episodes"
    episodes_dir.mkdir(parents=True)
    for i in range(args.episodes):
        record(episodes_dir / f"episode_{i:06d}_pre.mcap", rng, args.ticks, i)
    params = (f"{{fit_refit: {rule}, fit_batches_per_epoch: {args.batches_per_epoch}, "
              f"fit_max_epochs: {args.max_epochs}}}")  # fmt: skip
    overrides = {
        "model_fitter": {
            "data_dir": str(fitter_dir),
            "agent.params": params,
            "min_episodes": 1,
            "fit_local_lg": False,
            "republish_on_start": False,
            "diagnostics_period": 0.5,
        },  # fmt: skip
        "mpc_controller": {
            "data_dir": str(root / rule / "controller"),
            "agent.params": params,
            "start_enabled": False,
            "timing": "realtime",
        },  # fmt: skip
    }
    nodes = get_nodes(["model_fitter", "mpc_controller"])
    with GraphRunner(nodes, overrides=overrides, output=open(os.devnull, "w")) as runner:
        watcher.status.clear()
        watcher.wait(lambda: watcher.version("mpc_controller") == 0 and
                     "model_fitter" in watcher.status, 120, "controller and fitter")  # fmt: skip
        # the first, cold fit on the recorded episodes (fit_on_new_data needs an episode:
        # the first published one triggers it)
        latencies, cold_first = [], None
        for r in range(args.repeats + 1):
            version = watcher.version("mpc_controller")
            path = root / rule / f"new_{r}.mcap"
            record(path, rng, args.ticks, args.episodes + r)
            data = path.read_bytes()
            start = time.perf_counter()
            watcher.episodes.publish(
                encode_episode_msg(data, args.episodes + r, 2 * args.ticks, True)
            )
            done = watcher.wait(lambda v=version: watcher.version("mpc_controller") > v,
                                args.timeout, f"model after episode {r} ({rule})")  # fmt: skip
            runner.check()
            if r == 0:
                cold_first = done - start
            else:
                latencies.append(done - start)
        transitions = (args.episodes + args.repeats + 1) * args.ticks
    return {
        "bench": "experience_latency", "refit": rule, "transitions": transitions,
        "first_fit_latency_s": round(cold_first, 2),
        "latency_s_median": round(statistics.median(latencies), 2),
        "latency_s_min": round(min(latencies), 2), "latency_s_max": round(max(latencies), 2),
        "repeats": len(latencies),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100, help="recorded before the start")
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="new episodes timed per rule")
    parser.add_argument("--rules", default="warm,continue,cold")
    parser.add_argument("--batches-per-epoch", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    rclpy.init()
    watcher = Watcher()
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="mbrl-latency-") as tmp:
            for rule in args.rules.split(","):
                results[rule] = run_rule(rule, args, Path(tmp), watcher)
                print(json.dumps(results[rule]), flush=True)
    finally:
        watcher.node.destroy_node()
        rclpy.try_shutdown()
    if "cold" in results:
        ref = results["cold"]["latency_s_median"]
        print(json.dumps({
            "bench": "experience_latency_summary", "reference": "cold refit, same run",
            **{f"{r}_over_cold": round(v["latency_s_median"] / ref, 3)
               for r, v in results.items() if r != "cold"},
            "load_average": os.getloadavg()[0],
        }))  # fmt: skip


if __name__ == "__main__":
    main()

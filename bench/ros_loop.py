"""The closed ROS loop sim -> mpc_controller -> sim over real DDS: tick time, deadline misses
and joint-state-to-command latency over thousands of 20 Hz ticks (docs/ros_interface.md).

Starts the sim and the controller as separate processes (the embedded runner), gives the
controller a new reachable goal every 100 ticks (so the planner always has work), optionally
sends it a small random ProbabilisticEnsemble over /mbrl/model first, and prints one JSON line:
the controller's own tick time p50/p99/max and deadline misses (from /diagnostics), its
internal latency (state receipt -> command published), and the latency seen from outside
(this process: state received -> next command received, both over DDS). The reference in the
same run is the control period: the target is zero misses and latency p99 below one period.

  python bench/ros_loop.py --ticks 5000                        # realtime, 250 s
  python bench/ros_loop.py --ticks 5000 --variant lockstep --model ensemble   # fast
  python bench/ros_loop.py --ticks 2000 --trigger joint_states --state-rate 50  # SO-101 rates
  python bench/ros_loop.py --ticks 2000 --trigger joint_states --state-rate 50 --plan-ahead both

`--plan-ahead both` runs the controller twice in the same run, planning on the measured state
(off: the command waits for the plan) and one tick ahead (on: the command planned on the
tick before goes out at once), and reports both and the ratio of their latency p99.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, UInt8MultiArray

from mbrl.config import ArmConfig
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.ros.graph import get_nodes
from mbrl.ros.runner import GraphRunner
from mbrl.ros.topics import GOAL as GOAL_TOPIC
from mbrl.ros.topics import GOAL_QOS
from mbrl.ros.transport import MODEL_QOS, MODEL_TOPIC, encode_model_msg

COMMANDS = "/forward_position_controller/commands"


class Probe:
    """This process's node: receipt times of states and commands, the controller's diagnostics."""

    def __init__(self) -> None:
        self.node = rclpy.create_node("ros_loop_bench")
        self.state_times: list[float] = []
        self.command_times: list[float] = []
        self.diag: dict[str, str] = {}
        self.node.create_subscription(JointState, "/joint_states", self._on_state, 200)
        self.node.create_subscription(Float64MultiArray, COMMANDS, self._on_command, 200)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self.goal_pub = self.node.create_publisher(PointStamped, GOAL_TOPIC, GOAL_QOS)
        self.model_pub = self.node.create_publisher(UInt8MultiArray, MODEL_TOPIC, MODEL_QOS)

    def _on_state(self, _msg: JointState) -> None:
        self.state_times.append(time.perf_counter())

    def _on_command(self, _msg: Float64MultiArray) -> None:
        self.command_times.append(time.perf_counter())

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "mbrl/mpc_controller":
                self.diag = {v.key: v.value for v in status.values}

    def ticks(self) -> int:
        return int(self.diag.get("ticks", 0))

    def publish_goal(self, goal: np.ndarray) -> None:
        msg = PointStamped()
        msg.header.frame_id = "base_link"
        msg.point.x, msg.point.y, msg.point.z = (float(v) for v in goal)
        self.goal_pub.publish(msg)


def external_latency(states: list[float], commands: list[float]) -> np.ndarray:
    """(n,) s from the latest state received before each command to that command."""
    s = np.asarray(states)
    out = []
    for t in commands:
        i = np.searchsorted(s, t) - 1
        if i >= 0:
            out.append(t - s[i])
    return np.asarray(out)


def run(args: argparse.Namespace, plan_ahead: bool) -> dict:
    cfg = ArmConfig()
    lockstep = args.variant == "lockstep"
    sim = {"timing": "lockstep" if lockstep else "realtime", "seed": 0}
    if lockstep:
        sim["idle_publish_rate_hz"] = 1.0
    ctl = {"timing": sim["timing"], "trigger": "joint_states" if lockstep else args.trigger,
           "viz_every": 2, "plan_ahead": plan_ahead,
           "diagnostics_rate_hz": 2.0}  # fmt: skip
    if args.state_rate:  # a ros2_control driver's joint_state_broadcaster rate (SO-101: 50 Hz)
        sim["state_rate_hz"] = float(args.state_rate)
        for node in (sim, ctl):  # the one arm: whole physics steps between two states
            node["arm.physics_rate_hz"] = 300.0
    fk = ForwardKinematics(cfg.urdf, cfg.ee_link, cfg.joint_names, dtype=torch.float64)
    rng = np.random.default_rng(0)
    lower, upper = fk.lower.numpy(), fk.upper.numpy()
    out = open(os.devnull, "w") if not args.verbose else sys.stderr
    rclpy.init()
    probe = Probe()
    runner = GraphRunner(get_nodes(["sim", "mpc_controller"]),
                         overrides={"sim": sim, "mpc_controller": ctl}, output=out)  # fmt: skip
    try:
        runner.start()
        deadline = time.monotonic() + 120
        while probe.ticks() < 5 and time.monotonic() < deadline:
            rclpy.spin_once(probe.node, timeout_sec=0.05)
            runner.check()
        start_diag = dict(probe.diag)
        if args.model == "ensemble":
            model = ProbabilisticEnsemble(2 * len(cfg.joint_names), len(cfg.joint_names),
                                          ensemble_size=5, hidden=(64, 64), seed=0)  # fmt: skip
            with tempfile.TemporaryDirectory() as tmp:
                model.save(Path(tmp) / "m.npz")
                data = (Path(tmp) / "m.npz").read_bytes()
            probe.model_pub.publish(encode_model_msg(data, 1, "ensemble", model.dx, model.du))
            while probe.diag.get("model_version") != "1":
                rclpy.spin_once(probe.node, timeout_sec=0.05)
                runner.check()
            start_diag = dict(probe.diag)
        t0, first, next_goal = time.perf_counter(), probe.ticks(), probe.ticks()
        probe.state_times.clear()
        probe.command_times.clear()
        while probe.ticks() < first + args.ticks:
            if probe.ticks() >= next_goal:
                probe.publish_goal(fk(torch.as_tensor(rng.uniform(lower, upper))).numpy())
                next_goal += 100
            rclpy.spin_once(probe.node, timeout_sec=0.05)
            runner.check()
        wall = time.perf_counter() - t0
        d = probe.diag
        ext = external_latency(probe.state_times, probe.command_times) * 1e3
        period = float(d["period_ms"])
        result = {
            "bench": "ros_loop", "variant": args.variant, "model": args.model,
            "trigger": ctl["trigger"], "plan_ahead": plan_ahead and not lockstep,
            "planned_ahead": int(d["planned_ahead"]) - int(start_diag["planned_ahead"]),
            "state_rate_hz": args.state_rate or cfg.control_rate_hz,
            "ticks": probe.ticks() - first, "wall_s": round(wall, 1),
            "period_ms": period, "tick_ms_p50": float(d["tick_ms_p50"]),
            "tick_ms_p99": float(d["tick_ms_p99"]), "tick_ms_max": float(d["tick_ms_max"]),
            "deadline_misses": int(d["deadline_misses"]) - int(start_diag["deadline_misses"]),
            "truncated": int(d["truncated"]) - int(start_diag["truncated"]),
            "holds": int(d["holds"]) - int(start_diag["holds"]),
            "latency_ms_p50": float(d["latency_ms_p50"]),
            "latency_ms_p99": float(d["latency_ms_p99"]),
            "external_latency_ms_p50": round(float(np.percentile(ext, 50)), 3),
            "external_latency_ms_p99": round(float(np.percentile(ext, 99)), 3),
            "latency_p99_over_period": round(float(d["latency_ms_p99"]) / period, 3),
            "tick_p99_over_period": round(float(d["tick_ms_p99"]) / period, 3),
            "load_avg_1min": os.getloadavg()[0], "cpus": os.cpu_count(),
        }  # fmt: skip
        return result
    finally:
        probe.node.destroy_node()
        runner.shutdown()
        rclpy.try_shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=5000, help="controller ticks to measure")
    parser.add_argument("--variant", choices=("realtime", "lockstep"), default="realtime")
    parser.add_argument("--model", choices=("known", "ensemble"), default="known")
    parser.add_argument("--trigger", choices=("timer", "joint_states"), default="timer",
                        help="realtime only; lockstep always ticks on joint states")  # fmt: skip
    parser.add_argument(
        "--state-rate", type=float, default=0.0,
        help="realtime: the sim publishes joint states at this rate (50: a ros2_control "
        "driver's), on 300 Hz physics; 0 = the control rate",
    )  # fmt: skip
    parser.add_argument(
        "--plan-ahead", choices=("on", "off", "both"), default="on",
        help="realtime: send the command planned on the previous tick at once (on), plan on "
        "the measured state (off), or measure both in this run",
    )  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="show the nodes' output")
    args = parser.parse_args()
    if args.plan_ahead != "both":
        print(json.dumps(run(args, args.plan_ahead == "on")), flush=True)
        return
    off = run(args, False)
    print(json.dumps(off), flush=True)
    on = run(args, True)
    print(json.dumps(on), flush=True)
    ratio = on["latency_ms_p99"] / off["latency_ms_p99"]
    print(json.dumps({"bench": "ros_loop_plan_ahead", "latency_p99_on_over_off": round(ratio, 3),
                      "latency_ms_p99_off": off["latency_ms_p99"],
                      "latency_ms_p99_on": on["latency_ms_p99"]}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

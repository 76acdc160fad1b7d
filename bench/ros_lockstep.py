"""Lockstep sim over DDS: control ticks per second, one JSON object per line.

Reference measured in the same run: the same SimArm stepped in-process (set target, step one
control period, read joints), the ceiling for any driver. The ROS line gives the round trip
command -> sim step -> /joint_states through a separate sim process, its `realtime_factor`
(simulated seconds per wall-clock second; realtime mode is 1.0 by construction) and
`share_of_inprocess`.

    make bench   (or: AMENT_PREFIX_PATH=.venv .venv/bin/python bench/ros_lockstep.py --ticks 400)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import rclpy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from mbrl.config import ArmConfig
from mbrl.ros.graph import get_nodes
from mbrl.ros.msgs import float64_multiarray, to_seconds
from mbrl.ros.runner import GraphRunner
from mbrl.ros.sim_node import COMMAND_QOS
from mbrl.sim.arm import SimArm


class _Quiet:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def inprocess_rate(ticks: int) -> float:
    with SimArm(ArmConfig()) as arm:
        target = arm.home + 0.3
        start = time.perf_counter()
        for k in range(ticks):
            arm.set_position_targets(target if k % 40 < 20 else arm.home)
            arm.step(1)
            arm.joint_positions()
        return ticks / (time.perf_counter() - start)


def ros_rate(ticks: int) -> tuple[float, float]:
    """(ticks per wall second, median round trip in ms) through a lockstep sim process."""
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("bench_lockstep")
    states: list[JointState] = []
    node.create_subscription(JointState, "/joint_states", states.append, 50)
    pub = node.create_publisher(
        Float64MultiArray, "/forward_position_controller/commands", COMMAND_QOS
    )
    overrides = {"sim": {"timing": "lockstep", "idle_publish_rate_hz": 0.0}}
    try:
        with GraphRunner(get_nodes(["sim"]), overrides=overrides, output=_Quiet()) as runner:
            while not states or pub.get_subscription_count() == 0:
                runner.check()
                rclpy.spin_once(node, timeout_sec=0.05)
            home = np.asarray(states[-1].position[:5])
            trips = []
            start = time.perf_counter()
            for k in range(ticks):
                stamp = to_seconds(states[-1].header.stamp)
                t = time.perf_counter()
                pub.publish(float64_multiarray(home + (0.3 if k % 40 < 20 else 0.0)))
                while to_seconds(states[-1].header.stamp) <= stamp:
                    rclpy.spin_once(node, timeout_sec=1.0)
                trips.append(time.perf_counter() - t)
            elapsed = time.perf_counter() - start
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return ticks / elapsed, float(np.median(trips) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=400, help="control ticks per measurement")
    args = parser.parse_args()
    period = ArmConfig().control_period
    reference = inprocess_rate(args.ticks)
    print(json.dumps({"bench": "sim_inprocess", "ticks_per_s": round(reference, 1),
                      "realtime_factor": round(reference * period, 2)}))  # fmt: skip
    rate, trip_ms = ros_rate(args.ticks)
    print(json.dumps({"bench": "ros_lockstep", "ticks_per_s": round(rate, 1),
                      "realtime_factor": round(rate * period, 2),
                      "median_round_trip_ms": round(trip_ms, 2),
                      "share_of_inprocess": round(rate / reference, 3)}))  # fmt: skip


if __name__ == "__main__":
    main()

"""`mbrl demo --scripted`: the simulated arm driven through the ROS 2 graph by a short script.

Starts the graph with the embedded runner, waits for /joint_states, sends position commands
and a JointTrajectory exactly as a ros2_control client would, then prints target vs reached
joint and end-effector positions, errors and timings. (`mbrl demo` without --scripted runs
the learning demo, mbrl.ros.demo.)
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from mbrl.config import ArmConfig, from_dict, load_yaml
from mbrl.ros import topics
from mbrl.ros.graph import config_dir, get_nodes
from mbrl.ros.msgs import (
    float64_multiarray,
    joint_positions_by_name,
    joint_trajectory_msg,
    joint_velocities_by_name,
    to_seconds,
)
from mbrl.ros.params import MODES
from mbrl.ros.runner import GraphRunner, NodeDied
from mbrl.ros.sim_node import COMMAND_QOS
from mbrl.ros.trajectory import TrajectorySampler

if TYPE_CHECKING:
    from mbrl.sim.arm import SimArm

# Scripted joint targets in controller order, rad: two poses reaching forward/sideways and one
# beyond the limits (the sim clamps it). Chosen clear of the table for the bundled arm.
SCRIPT = (
    ("reach left", (0.6, -0.4, 0.5, 0.3, -0.8)),
    ("reach right", (-0.7, 0.3, 0.6, -0.4, 0.6)),
    ("beyond limits", (2.5, 0.0, 0.0, 0.0, -3.5)),
)


@dataclasses.dataclass
class Result:
    """One scripted move: target vs reached, in joints (rad) and end-effector position (m)."""

    label: str
    target: np.ndarray
    reached: np.ndarray
    ee_target: np.ndarray
    ee_reached: np.ndarray
    seconds: float
    note: str = ""


class DemoClient:
    """The demo's ROS side: one node that reads /joint_states and sends commands."""

    def __init__(self, node: Node, runner: GraphRunner, joints: tuple[str, ...], lockstep: bool):
        self.node, self.runner, self.joints, self.lockstep = node, runner, joints, lockstep
        self.states: list[JointState] = []
        node.create_subscription(JointState, topics.JOINT_STATES, self.states.append, 200)
        self.commands = node.create_publisher(
            Float64MultiArray, topics.command_topic("forward_position_controller"), COMMAND_QOS
        )
        self.trajectory = node.create_publisher(
            JointTrajectory, topics.trajectory_topic("joint_trajectory_controller"), COMMAND_QOS
        )

    def spin_until(self, predicate, timeout: float, what: str) -> None:
        """Spin until predicate() holds; raise naming `what` on timeout or if a node dies."""
        deadline = time.monotonic() + timeout
        while not predicate():
            self.runner.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            rclpy.spin_once(self.node, timeout_sec=0.05)

    def q(self) -> np.ndarray:
        return joint_positions_by_name(self.states[-1], self.joints)

    def stamp(self) -> float:
        return to_seconds(self.states[-1].header.stamp)

    def wait_ready(self, timeout: float) -> None:
        self.spin_until(
            lambda: (
                bool(self.states)
                and self.commands.get_subscription_count() > 0
                and self.trajectory.get_subscription_count() > 0
            ),
            timeout,
            "/joint_states and the sim's command subscriptions",
        )

    def next_state(self, timeout: float) -> None:
        """Spin until a joint state with a later stamp arrives."""
        n, t = len(self.states), self.stamp()
        self.spin_until(
            lambda: len(self.states) > n and self.stamp() > t, timeout, "the next joint state"
        )

    def move(self, target: np.ndarray, max_seconds: float, timeout: float) -> float:
        """Command `target` (nj,) rad until the arm settles; returns the time it took, s.

        Settled: every joint slower than 0.01 rad/s for 5 consecutive states. In lockstep
        mode the same command is re-sent once per new state (each one advances the sim).
        """
        msg = float64_multiarray(target)
        self.commands.publish(msg)
        self.next_state(timeout)
        start, calm = self.stamp(), 0
        while self.stamp() - start < max_seconds and calm < 5:
            if self.lockstep:
                self.commands.publish(msg)
            self.next_state(timeout)
            speed = np.max(np.abs(joint_velocities_by_name(self.states[-1], self.joints)))
            calm = calm + 1 if speed < 0.01 else 0
        return self.stamp() - start


def _arm_config() -> ArmConfig:
    """The sim node's arm, read from the same parameter file the runner gives it."""
    params = load_yaml(config_dir() / "sim.yaml")["sim"]["ros__parameters"]
    return from_dict(ArmConfig, params.get("arm", {}), "arm")


def _fmt(v: np.ndarray, digits: int = 3) -> str:
    return "[" + " ".join(f"{x:+.{digits}f}" for x in v) + "]"


def _script(demo: DemoClient, fk: SimArm, timeout: float) -> list[Result]:
    results = []
    for label, target in SCRIPT:
        target = np.asarray(target, dtype=float)
        seconds = demo.move(target, max_seconds=5.0, timeout=timeout)
        clamped = np.clip(target, fk.lower, fk.upper)
        results.append(_result(fk, label, clamped, demo.q(), seconds))
        if not np.allclose(clamped, target):
            results[-1].note = f"commanded {_fmt(target, 2)}, clamped by the sim"

    # A JointTrajectory through three waypoints, tracked against its own reference.
    names = list(demo.joints)
    waypoints = np.array([[0.4, -0.2, 0.3, 0.2, 0.0], [0.0, 0.2, 0.7, -0.2, 0.5], [0.0] * 5])
    times = np.array([1.0, 2.0, 3.0])
    start_q, n = demo.q(), len(demo.states)
    # The trajectory starts at the sim time of receipt: the last state's stamp in lockstep
    # (nothing steps in between), within one period of it in realtime mode.
    t0 = demo.stamp()
    demo.trajectory.publish(joint_trajectory_msg(names, times, waypoints))
    reference = TrajectorySampler(start_q, times, waypoints)
    demo.spin_until(lambda: demo.stamp() - t0 >= times[-1] - 1e-6, timeout, "the trajectory")
    settle = demo.move(waypoints[-1], max_seconds=3.0, timeout=timeout)  # hold the last point
    states = [s for s in demo.states[n:] if to_seconds(s.header.stamp) - t0 <= times[-1]]
    errors = []
    for state in states:
        ref = reference.sample(to_seconds(state.header.stamp) - t0)
        errors.append(np.max(np.abs(joint_positions_by_name(state, names) - ref)))
    results.append(_result(fk, "trajectory end", waypoints[-1], demo.q(), times[-1] + settle))
    results[-1].note = (
        f"{len(times)} waypoints; tracking error along the way max {max(errors):.3f} rad, "
        f"mean {np.mean(errors):.3f} rad over {len(errors)} states (servo lag included)"
    )

    # Bad commands while moving: rejected by the sim, which then holds the arm where it is.
    goal = np.array([1.5, 0.0, 0.0, 0.0, 2.5])  # a long move (about 0.5 s at full speed)
    demo.commands.publish(float64_multiarray(goal))
    for _ in range(2):  # let it get going (in lockstep each of these advances one period)
        if demo.lockstep:
            demo.commands.publish(float64_multiarray(goal))
        demo.next_state(timeout)
    for bad in ([0.1, 0.2], [0.0, float("nan"), 0.0, 0.0, 0.0]):
        demo.commands.publish(float64_multiarray(bad))
    # Each rejected command also advances a lockstep sim one (holding) period.
    demo.next_state(timeout)
    demo.next_state(timeout)
    held = demo.q()
    for _ in range(2 if demo.lockstep else 10):
        if demo.lockstep:
            demo.commands.publish(float64_multiarray(held))
        demo.next_state(timeout)
    drift = float(np.max(np.abs(demo.q() - held)))
    short = float(np.max(np.abs(demo.q() - goal)))
    results.append(_result(fk, "bad commands", goal, demo.q(), 0.0))
    results[-1].note = (
        f"wrong length + NaN sent mid-move: both rejected; the arm stopped {short:.2f} rad "
        f"short of the last valid target and drifted {drift:.4f} rad while holding"
    )
    return results


def _result(fk: SimArm, label: str, target, reached, seconds: float) -> Result:
    fk.reset(np.asarray(target))
    ee_target = fk.ee_position()
    fk.reset(np.asarray(reached))
    return Result(label, np.asarray(target), reached, ee_target, fk.ee_position(), seconds)


def _report(results: list[Result], mode: str, joints: tuple[str, ...], wall: float) -> None:
    print(f"\nmbrl demo: simulated arm driven through the ROS 2 graph ({mode} mode)")
    print(f"joints (controller order): {', '.join(joints)}")
    for r in results:
        err = np.max(np.abs(r.reached - r.target))
        ee_err = np.linalg.norm(r.ee_reached - r.ee_target)
        print(f"\n  {r.label}  ({r.seconds:.2f} s of sim time)" if r.seconds else f"\n  {r.label}")
        print(
            f"    joints  target {_fmt(r.target)}  reached {_fmt(r.reached)}  max err {err:.4f} rad"
        )
        ee = f"target {_fmt(r.ee_target)}  reached {_fmt(r.ee_reached)}"
        print(f"    EE      {ee}  err {ee_err * 1000:.1f} mm")
        if r.note:
            print(f"    {r.note}")
    print(f"\ndemo finished in {wall:.1f} s wall time")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mbrl demo`."""
    parser.add_argument("--mode", choices=MODES, default="realtime", help="sim timing mode")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the graph to answer"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 on success, 1 if a node died or the graph did not answer."""
    from mbrl.sim.arm import SimArm  # pybullet loads only when the demo runs, not for --help

    wall = time.monotonic()
    arm = _arm_config()
    overrides: dict[str, dict[str, Any]] = {"sim": {"timing": args.mode}}
    # Ctrl-C must reach Python (and the runner's clean shutdown), not only rclpy's context.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    fk = SimArm(arm)  # a private, never-stepped copy of the arm: forward kinematics only
    node = rclpy.create_node("mbrl_demo")
    try:
        with GraphRunner(get_nodes(["sim"]), overrides=overrides) as runner:
            demo = DemoClient(node, runner, arm.joint_names, args.mode == "lockstep")
            demo.wait_ready(args.timeout)
            print(f"[demo] sim is up; /joint_states names {list(demo.states[-1].name)}")
            results = _script(demo, fk, args.timeout)
        _report(results, args.mode, arm.joint_names, time.monotonic() - wall)
        return 0
    except (NodeDied, TimeoutError) as exc:
        print(f"[demo] FAILED: {exc}")
        return 1
    finally:
        node.destroy_node()
        fk.close()
        rclpy.try_shutdown()

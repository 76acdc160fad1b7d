"""The live view: a node that listens to the graph's topics and draws them in Rerun's web viewer.

`mbrl demo --view` (and `python -m mbrl.ros.viewer`) start it as its own process, so nothing
of it runs inside the controller and, off, it costs nothing. It only subscribes to what the
graph already publishes: the arm from `/robot_description` (the bundled URDF until one
arrives) at the angles of `/joint_states`, `/mbrl/goal`, `/cube_pose`, the controller's plan
(`/mpc_controller/plan` MarkerArray: path and 2-sigma spheres), `/diagnostics` (tick time,
model version, fit progress) and the experiment's episode events. Messages are kept as they
arrive and drawn by one timer at `rate` Hz, so a lockstep run (hundreds of joint states per
second) costs the viewer no more than a real-time one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped, PoseStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

from mbrl.ros import topics
from mbrl.ros.node_main import run_node

# The controller's `~/plan` (mbrl.ros.viz) under its node name in the graph.
PLAN_TOPIC = topics.plan_topic()
# Keys of /diagnostics values drawn as traces, by status name.
TRACES = {
    "mbrl/mpc_controller": ("tick_ms_p50", "tick_ms_p99", "model_version"),
    "mbrl/model_fitter": ("fit_elapsed_s",),
}
# The viewer yields the CPU to the graph: on a busy machine a late frame is harmless, a late
# controller tick is not (bench/viewer.py measures what is left).
NICENESS = 10
PLAN_STALE_S = 1.0  # a plan older than this is cleared (the controller publishes at 10 Hz)


class ViewerNode(Node):
    """Subscribes to the graph's topics and draws the latest of each at `rate` Hz.

    Args:
        web_port / grpc_port: where the web viewer and its data stream are served (127.0.0.1).
        rate: Hz of drawing.
    """

    def __init__(self, web_port: int = 9090, grpc_port: int = 9876, rate: float = 10.0) -> None:
        super().__init__("viewer")
        from mbrl.view.scene import APP_ID, Scene, bundled_urdf, require_rerun, serve

        rr = require_rerun()
        self._Scene = Scene
        self.recording = rr.RecordingStream(APP_ID, recording_id=f"live-{int(time.time())}")
        self.scene = Scene(bundled_urdf(), self.recording)
        self.url = serve(self.recording, self.scene, web_port=web_port, grpc_port=grpc_port)
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._latest: dict[str, Any] = {}
        self._description: str | None = None
        self._fitter_state = ""
        self._plan_drawn: float | None = None  # viewer time of the last plan drawn
        sub = self.create_subscription
        # Best effort where only the newest matters: it matches any publisher and never queues.
        sub(JointState, topics.JOINT_STATES, self._keep("joints"), qos_profile_sensor_data)
        sub(PointStamped, topics.GOAL, self._keep("goal"), topics.GOAL_QOS)
        sub(PoseStamped, topics.OBJECT_POSE, self._keep("cube"), topics.OBJECT_QOS)
        sub(MarkerArray, PLAN_TOPIC, self._keep("plan"), 1)
        sub(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, 20)
        sub(String, topics.EPISODE_CONTROL, self._on_event, topics.EPISODE_CONTROL_QOS)
        sub(String, topics.ROBOT_DESCRIPTION, self._on_description, topics.LATCHED_QOS)
        self.draws = 0
        self.create_timer(1.0 / rate, self._draw)
        self.get_logger().info(f"live view at {self.url}")
        print(f"[viewer] open {self.url}", flush=True)

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _keep(self, key: str):
        def callback(msg) -> None:
            with self._lock:
                self._latest[key] = msg

        return callback

    def _on_description(self, msg: String) -> None:
        with self._lock:
            self._description = msg.data

    def _on_event(self, msg: String) -> None:
        try:
            body = json.loads(msg.data)
            line = f"episode {body.get('episode_id')} {body.get('event')} ({body.get('mode', '')})"
        except (ValueError, AttributeError):
            line = msg.data
        with self._lock:
            self._latest.setdefault("events", []).append(line)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self._lock:
            for status in msg.status:
                keys = TRACES.get(status.name)
                if keys is None:
                    continue
                values = {kv.key: kv.value for kv in status.values}
                for key in keys:
                    self._latest.setdefault("scalars", {})[key] = values.get(key)
                if status.name == "mbrl/model_fitter" and status.message != self._fitter_state:
                    self._fitter_state = status.message
                    self._latest.setdefault("events", []).append(f"fitter: {status.message}")

    def _draw(self) -> None:
        with self._lock:
            latest, self._latest = self._latest, {}
            description, self._description = self._description, None
        scene = self.scene
        if description is not None:  # the arm as the graph describes it (like rviz, Foxglove)
            try:
                new = self._Scene(description, self.recording)
            except Exception as exc:  # noqa: BLE001 - keep the bundled arm, say why
                self.get_logger().warning(f"/robot_description not drawable: {exc}")
            else:
                new.goal, scene = scene.goal, new
                self.scene.close()
                self.scene = scene
        scene.set_time(self._now())
        if "goal" in latest:
            p = latest["goal"].point
            scene.goal_point([p.x, p.y, p.z])
        if "joints" in latest:
            scene.arm(latest["joints"].name, latest["joints"].position)
        if "cube" in latest:
            pose = latest["cube"].pose
            q = pose.orientation
            scene.cube([pose.position.x, pose.position.y, pose.position.z], [q.x, q.y, q.z, q.w])
        if "plan" in latest:
            draw_plan(scene, latest["plan"])
            self._plan_drawn = self._now()
        elif self._plan_drawn is not None and self._now() - self._plan_drawn > PLAN_STALE_S:
            scene.clear_plan()  # not planning any more (explore, disabled): not a stale path
            self._plan_drawn = None
        for key, value in latest.get("scalars", {}).items():
            try:
                scene.scalar(key, float(value))
            except (TypeError, ValueError):
                pass  # "nan" before the first tick, or a key this version does not send
        for line in latest.get("events", []):
            scene.text(line)
        self.draws += 1

    def close(self) -> None:
        self.scene.close()
        self.destroy_node()


def draw_plan(scene, markers: MarkerArray) -> None:
    """The controller's plan markers (mbrl.ros.viz): LINE_STRIP path, SPHERE_LIST spread."""
    path, spread = None, None
    for m in markers.markers:
        points = [[p.x, p.y, p.z] for p in m.points]
        if m.type == Marker.LINE_STRIP:
            path = points
        elif m.type == Marker.SPHERE_LIST and points:
            spread = m.scale.x / 4.0  # the diameter is 2 sigma -> sigma
    if path:
        scene.plan(path, spread)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--web-port", type=int, default=9090, help="port of the web viewer")
    parser.add_argument("--grpc-port", type=int, default=9876, help="port of its data stream")
    parser.add_argument("--rate", type=float, default=10.0, help="Hz of drawing")


def start(web_port: int = 9090, grpc_port: int = 9876, output=None):
    """Start the live viewer as its own process; returns the Popen. Stopped at exit.

    The caller's environment (ROS_DOMAIN_ID etc.) is inherited, so it joins the same graph.
    """
    import atexit
    import subprocess

    cmd = [sys.executable, "-m", "mbrl.ros.viewer", "--web-port", str(web_port),
           "--grpc-port", str(grpc_port)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT if output else None)

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    atexit.register(stop)
    from mbrl.view.scene import viewer_url

    print(f"[demo] live view (starting): {viewer_url(web_port, grpc_port)}\n"
          "[demo] it stops with the demo; afterwards `mbrl view runs/<name>` replays the run",
          file=output or sys.stdout, flush=True)  # fmt: skip
    return proc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mbrl.ros.viewer", description=__doc__)
    add_arguments(parser)
    args, ros_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    os.nice(NICENESS)
    return run_node(
        "viewer", lambda: ViewerNode(args.web_port, args.grpc_port, args.rate), ros_args
    )


if __name__ == "__main__":
    sys.exit(main())

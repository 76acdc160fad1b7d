"""What the viewer shows, in Rerun terms: the arm from its URDF, goal, cube, plan, traces.

ROS-free: callers hand arrays (joint angles by name, points in m, stamps in s), and both the
live view (mbrl.ros.viewer, fed by topics) and replays (mbrl.view.replay, fed by MCAP files)
draw through this one class. Everything spatial is in the URDF's root frame (`base_link`
for the bundled arm), the frame the controller plans in.
"""

from __future__ import annotations

import tempfile
import warnings
from importlib import resources
from pathlib import Path

import numpy as np

from mbrl.view.kinematics import UrdfChain, deepest_link

BUNDLED_URDF = "so_arm.urdf"
APP_ID = "mbrl"
# Entity paths; the blueprint below lays them out.
ARM, WORLD, PLOTS, LOG = "arm", "world", "plots", "log"
TIMELINE = "time"  # s


def require_rerun():
    """Import rerun or fail with the command that installs it (it is an optional tool)."""
    try:
        import rerun
    except ImportError as exc:
        raise RuntimeError(
            "the viewer needs rerun-sdk, an optional dependency: run `make view-deps` "
            "(or `.venv/bin/pip install -r requirements-view.txt`)"
        ) from exc
    return rerun


def bundled_urdf() -> Path:
    """The URDF of the bundled SO-101-class arm."""
    return Path(str(resources.files("mbrl") / "assets" / BUNDLED_URDF))


class Scene:
    """One Rerun recording of the arm and the learning run around it.

    Args:
        urdf: path of the arm's URDF file, or its XML text (as on /robot_description).
        recording: a rerun.RecordingStream; the scene logs nothing outside it.
        ee_link: the link whose origin is the end effector (distance-to-goal trace); a URDF
            without it uses its deepest link.
    """

    def __init__(self, urdf: str | Path, recording, ee_link: str = "ee_tip") -> None:
        self.rr = require_rerun()
        self.recording = recording
        self._tmp: tempfile.TemporaryDirectory | None = None
        if isinstance(urdf, str) and urdf.lstrip().startswith("<"):
            # Rerun's URDF loader reads files: write /robot_description's text to one.
            self._tmp = tempfile.TemporaryDirectory(prefix="mbrl-view-")
            path = Path(self._tmp.name) / "robot_description.urdf"
            path.write_text(urdf)
            urdf = path
        self.urdf_path = Path(urdf)
        self.tree = self.rr.urdf.UrdfTree.from_file_path(self.urdf_path, entity_path_prefix=ARM)
        self.root_frame = self.tree.root_link().name
        self._joints = {j.name: j for j in self.tree.joints() if j.joint_type != "fixed"}
        xml = self.urdf_path.read_text()
        if f'name="{ee_link}"' not in xml and f"name='{ee_link}'" not in xml:
            ee_link = deepest_link(xml)  # another arm's URDF (e.g. from /robot_description)
        self.chain = UrdfChain(xml, ee_link)
        self.goal: np.ndarray | None = None
        self.ee: np.ndarray | None = None
        self.tree.log_urdf_to_recording(recording)
        rr = self.rr
        # Scene items live in the arm's root frame, so they sit where the controller put them.
        # (A frame is per entity, not inherited by children: name every leaf.)
        for leaf in ("goal", "cube", "plan/path", "plan/band", "ee", "target", "trail"):
            path = f"{WORLD}/{leaf}"
            rr.log(path, rr.CoordinateFrame(self.root_frame), static=True, recording=recording)
        self._series_style()

    @property
    def joint_names(self) -> list[str]:
        """The URDF's movable joints."""
        return list(self._joints)

    def collision_paths(self) -> list[str]:
        """Entity paths of the URDF's collision geometry (hidden in the 3D view)."""
        paths: list[str] = []
        for joint in self.tree.joints():
            paths += self.tree.get_collision_geometry_paths(joint.child_link)
        return paths + self.tree.get_collision_geometry_paths(self.root_frame)

    def _series_style(self) -> None:
        rr, rec = self.rr, self.recording
        styles = {
            "distance_to_goal_cm": ([230, 120, 40], "EE distance to goal (cm)"),
            "tick_ms_p99": ([80, 160, 255], "controller tick p99 (ms)"),
            "tick_ms_p50": ([150, 200, 255], "controller tick p50 (ms)"),
            "model_version": ([120, 220, 120], "model version"),
            "fit_elapsed_s": ([220, 90, 200], "fit running for (s)"),
        }
        for name, (color, label) in styles.items():
            rr.log(f"{PLOTS}/{name}", rr.SeriesLines(colors=[color], names=[label]),
                   static=True, recording=rec)  # fmt: skip

    def set_time(self, t: float) -> None:
        """Everything logged next happens at t (s on the scene's timeline)."""
        self.rr.set_time(TIMELINE, duration=float(t), recording=self.recording)

    def arm(self, names, positions) -> np.ndarray:
        """Pose the arm: joint angles (rad) by name; unknown names are ignored.

        Returns the end effector position (3,) m in the root frame; logs the distance to the
        goal when there is one.
        """
        rr, rec = self.rr, self.recording
        angles = {}
        for name, q in zip(names, positions, strict=False):
            joint = self._joints.get(name)
            if joint is None or not np.isfinite(q):
                continue
            angles[name] = float(q)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a servo may sit a hair past its limit
                rr.log(f"{ARM}/joints/{name}", joint.compute_transform(float(q)), recording=rec)
        self.ee = self.chain.ee_position(angles)
        rr.log(f"{WORLD}/ee", rr.Points3D([self.ee], radii=0.006, colors=[[250, 250, 250]]),
               recording=rec)  # fmt: skip
        if self.goal is not None:
            distance = float(np.linalg.norm(self.ee - self.goal))
            self.scalar("distance_to_goal_cm", 100.0 * distance)
        return self.ee

    def goal_point(self, goal) -> None:
        """The task goal (3,) m."""
        self.goal = np.asarray(goal, dtype=float).reshape(3)
        rr = self.rr
        rr.log(f"{WORLD}/goal", rr.Points3D([self.goal], radii=0.012, colors=[[230, 40, 200]]),
               recording=self.recording)  # fmt: skip

    def cube(self, position, quaternion_xyzw, size: float = 0.03) -> None:
        """The push task's cube: centre (3,) m, orientation (x, y, z, w)."""
        rr = self.rr
        rr.log(
            f"{WORLD}/cube",
            rr.Boxes3D(
                half_sizes=[[size / 2] * 3],
                centers=[position],
                quaternions=[rr.Quaternion(xyzw=quaternion_xyzw)],
                colors=[[240, 200, 60]],
                fill_mode="solid",
            ),  # fmt: skip
            recording=self.recording,
        )

    def plan(self, points, spread=None) -> None:
        """The controller's planned end-effector path (T, 3) m and its spread (T,) m (1 sigma).

        The path is a line; the uncertainty band is a sphere of radius 2 sigma at each point.
        """
        rr, rec = self.rr, self.recording
        points = np.asarray(points, dtype=float).reshape(-1, 3)
        line = rr.LineStrips3D([points], radii=0.002, colors=[[40, 200, 255]])
        rr.log(f"{WORLD}/plan/path", line, recording=rec)
        if spread is not None and len(points):
            radii = np.maximum(
                2.0 * np.broadcast_to(np.asarray(spread, float), len(points)), 0.0025
            )
            band = rr.Points3D(points, radii=radii, colors=[[255, 170, 90, 110]])
            rr.log(f"{WORLD}/plan/band", band, recording=rec)

    def clear_plan(self) -> None:
        """Remove the drawn plan (the controller stopped planning: explore, hold, disabled)."""
        self.rr.log(f"{WORLD}/plan", self.rr.Clear(recursive=True), recording=self.recording)

    def target(self, point) -> None:
        """The end-effector position the last command asks for (3,) m (FK of the command)."""
        rr = self.rr
        rr.log(f"{WORLD}/target", rr.Points3D([point], radii=0.005, colors=[[40, 200, 255]]),
               recording=self.recording)  # fmt: skip

    def trail(self, points) -> None:
        """The path the end effector took so far in this episode (T, 3) m."""
        rr = self.rr
        line = rr.LineStrips3D([np.asarray(points, float)], radii=0.0015, colors=[[250, 250, 250]])
        rr.log(f"{WORLD}/trail", line, recording=self.recording)

    def scalar(self, name: str, value: float) -> None:
        """One sample of the trace `name` (see _series_style for the known ones)."""
        if np.isfinite(value):
            self.rr.log(f"{PLOTS}/{name}", self.rr.Scalars(float(value)), recording=self.recording)

    def text(self, line: str, level: str = "INFO") -> None:
        """A line in the viewer's log panel (episode events, fit progress)."""
        self.rr.log(LOG, self.rr.TextLog(line, level=level), recording=self.recording)

    def blueprint(self):
        """The layout: 3D view on the left, traces and log on the right, panels folded."""
        rrb = self.rr.blueprint
        contents = [f"+ {ARM}/**", f"+ {WORLD}/**"]
        contents += [f"- {path}/**" for path in self.collision_paths()]
        view3d = rrb.Spatial3DView(
            origin="/", contents=contents, name="arm",
            eye_controls=rrb.EyeControls3D(
                position=[0.55, -0.45, 0.4], look_target=[0.12, 0.0, 0.12], eye_up=[0, 0, 1]
            ),
        )  # fmt: skip
        plots = rrb.Vertical(
            rrb.TimeSeriesView(origin=f"{PLOTS}/distance_to_goal_cm", name="distance to goal (cm)"),
            rrb.TimeSeriesView(
                contents=[f"{PLOTS}/tick_ms_p50", f"{PLOTS}/tick_ms_p99"], name="tick (ms)"
            ),
            rrb.TimeSeriesView(
                contents=[f"{PLOTS}/model_version", f"{PLOTS}/fit_elapsed_s"], name="model / fit"
            ),
            rrb.TextLogView(origin=LOG, name="events"),
        )
        return rrb.Blueprint(
            rrb.Horizontal(view3d, plots, column_shares=[3, 2]),
            rrb.BlueprintPanel(state="collapsed"),
            rrb.SelectionPanel(state="collapsed"),
            rrb.TimePanel(state="collapsed"),
        )

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def serve(recording, scene: Scene, web_port: int = 9090, grpc_port: int = 9876) -> str:
    """Serve the recording and Rerun's bundled web viewer on 127.0.0.1; returns the URL to open.

    The viewer's wasm and JavaScript come from the rerun-sdk wheel: nothing is fetched from
    the internet (the page's web fonts fall back to local ones when offline).
    """
    rr = require_rerun()
    uri = recording.serve_grpc(grpc_port=grpc_port, default_blueprint=scene.blueprint())
    rr.serve_web_viewer(web_port=web_port, open_browser=False, connect_to=uri)
    return viewer_url(web_port, grpc_port)


def viewer_url(web_port: int = 9090, grpc_port: int = 9876) -> str:
    """The page that shows the data served on grpc_port (the viewer's `?url=` parameter)."""
    from urllib.parse import quote

    return f"http://127.0.0.1:{web_port}/?url=" + quote(
        f"rerun+http://127.0.0.1:{grpc_port}/proxy", safe=""
    )

"""One tiny learning run through the ROS graph with the live viewer on, shared by test/view.

The run (`mbrl.ros.demo.learn`, 100 real steps, 2 held-out goals: about 35 s here) starts
once per session, in its own process, beside the viewer process (`mbrl.ros.viewer.start`,
as `mbrl demo --view` starts it). A headless Chromium opens the page first and the run
starts only once the page draws the arm, so the browser sees the whole run however slowly
the viewer's wasm loads on a busy machine. While the graph is up, the fixture notes every
topic's publishers (types and QoS) for the rviz-config test; the browser test watches the
view while the run goes on; the rosbags test reads the run's episodes when it has finished.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("rerun", reason="the viewer needs rerun-sdk: make view-deps")

LEARN = """
import sys
from pathlib import Path
from mbrl.ros.demo import learn
learn(Path(sys.argv[1]), budget_steps=100, eval_goals=2, eval_every=1, seed=0, timeout=240)
"""
# Topics whose publishers the rviz test needs to see before the snapshot is taken.
WATCHED = ("/joint_states", "/robot_description", "/mbrl/goal", "/mpc_controller/plan",
           "/mpc_controller/plan_path", "/diagnostics")  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class LiveRun:
    """The shared run. publishers: topic -> [(type, rclpy QoSProfile)] seen while it ran;
    browser: the HeadlessChromium showing the page (None without chromium), first: its PNG
    of the arm before the run started (None if the page never drew it)."""

    run_dir: Path
    url: str
    learner: subprocess.Popen
    viewer: subprocess.Popen
    log: Path
    publishers: dict
    browser: object | None
    first: bytes | None

    def wait(self, timeout: float = 300.0) -> int:
        """Wait for the learning run to finish; its exit code."""
        return self.learner.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _snapshot_publishers(timeout: float) -> dict:
    """topic -> [(type, QoS)] of every publisher on this domain, once WATCHED all have one."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("view_test_probe", context=context)
        deadline = time.monotonic() + timeout
        while True:
            found = {
                name: [
                    (info.topic_type, info.qos_profile)
                    for info in node.get_publishers_info_by_topic(name)
                ]  # fmt: skip
                for name, _ in node.get_topic_names_and_types()
            }
            if all(found.get(t) for t in WATCHED) or time.monotonic() > deadline:
                node.destroy_node()
                return found
            time.sleep(0.5)
    finally:
        rclpy.try_shutdown(context=context)


@pytest.fixture(scope="session")
def live_run(tmp_path_factory) -> Iterator[LiveRun]:
    pytest.importorskip("rclpy")
    from mbrl.ros import viewer
    from mbrl.view.scene import viewer_url

    root = tmp_path_factory.mktemp("live")
    log = root / "output.log"
    web, grpc = free_port(), free_port()
    with open(log, "w") as out:
        view = viewer.start(web, grpc, output=out)
        deadline = time.monotonic() + 60
        while True:  # the page is served before the learning run starts
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=2).close()
                break
            except OSError:
                if view.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"viewer did not serve: {log.read_text()[-3000:]}") from None
                time.sleep(0.3)
        browser, first = _open_browser(viewer_url(web, grpc))
        run_dir = root / "runs" / "tiny"
        learner = subprocess.Popen([sys.executable, "-c", LEARN, str(run_dir)], stdout=out,
                                   stderr=subprocess.STDOUT, env=dict(os.environ))  # fmt: skip
        try:
            publishers = _snapshot_publishers(timeout=90.0)
            yield LiveRun(run_dir, viewer_url(web, grpc), learner, view, log, publishers,
                          browser, first)  # fmt: skip
        finally:
            if browser is not None:
                browser.close()
            for proc in (learner, view):
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()


def _open_browser(url: str, timeout: float = 120.0):
    """(HeadlessChromium on url, PNG once it draws the arm) or (None, None) without chromium;
    (browser, None) if the arm did not appear within timeout s (the test reports it)."""
    from headless import HeadlessChromium, arm_pixels, chromium_path, pixels, view3d

    if chromium_path() is None:
        return None, None
    browser = HeadlessChromium(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1.0)
        png = browser.screenshot()
        if arm_pixels(view3d(pixels(png))) > 800:  # the viewer's wasm runs and drew the arm
            return browser, png
    return browser, None

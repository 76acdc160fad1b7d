"""`mbrl view`: the web viewer, live on the running graph or replaying a finished run.

`mbrl view` joins the ROS graph on this machine's domain (mbrl.ros.viewer); `mbrl view
runs/<name>` replays the run's MCAP episodes (mbrl.view.replay) without ROS. Either way the
page is served on 127.0.0.1 by the rerun-sdk wheel and works offline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mbrl view`."""
    parser.add_argument("run", nargs="?", default=None,
                        help="run directory, episode directory or .mcap file to replay; "
                        "none: the live view of the running ROS graph")  # fmt: skip
    parser.add_argument("--web-port", type=int, default=9090, help="port of the web viewer")
    parser.add_argument("--grpc-port", type=int, default=9876, help="port of its data stream")
    parser.add_argument("--urdf", default=None, help="arm URDF file (default: the bundled arm)")
    parser.add_argument("--save", default=None, help="also write the replay to this .rrd file")
    parser.add_argument("--no-serve", action="store_true",
                        help="do not serve (with --save: only write the file)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Serve the view until Ctrl-C; 1 with a message if the run has no episodes."""
    if args.run is None:
        from mbrl.ros import viewer  # the live view is a ROS node: only mbrl.ros imports rclpy

        return viewer.main(["--web-port", str(args.web_port), "--grpc-port", str(args.grpc_port)])
    from mbrl.view.replay import replay
    from mbrl.view.scene import APP_ID, Scene, bundled_urdf, require_rerun, serve

    rr = require_rerun()
    recording = rr.RecordingStream(APP_ID, recording_id=f"replay-{Path(args.run).name}")
    if args.save:
        recording.save(args.save)
    scene = Scene(args.urdf or bundled_urdf(), recording)
    url = None
    if not args.no_serve:
        url = serve(recording, scene, web_port=args.web_port, grpc_port=args.grpc_port)
    try:
        summary = replay(args.run, scene)
    except FileNotFoundError as exc:
        print(f"mbrl view: {exc}", file=sys.stderr)
        return 1
    states = sum(n for _, n in summary["episodes"])
    print(f"[view] {len(summary['episodes'])} episodes, {states} joint states, "
          f"{summary['end_time']:.1f} s of replay from {args.run}", flush=True)  # fmt: skip
    for line in summary["skipped"]:
        print(f"[view] skipped {line}", file=sys.stderr)
    recording.flush()
    if url is None:
        return 0
    print(f"[view] open {url}  (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        return 0

"""`mbrl view runs/<name>`: a finished run's MCAP episodes replayed into the viewer's scene,
checked in the Rerun recording it writes (no ROS, no browser: those are in test_live_view)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rr = pytest.importorskip("rerun", reason="the viewer needs rerun-sdk: make view-deps")

from mbrl.data.episodes import EpisodeWriter  # noqa: E402
from mbrl.view.kinematics import UrdfChain  # noqa: E402
from mbrl.view.scene import bundled_urdf  # noqa: E402

NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")


def _run_dir(tmp_path, rng, steps=(30, 20)):
    run = tmp_path / "runs" / "r"
    for k, n in enumerate(steps):
        with EpisodeWriter(run / "episodes" / f"episode_{k:04d}.mcap", NAMES,
                           {"episode_id": str(k), "mode": "explore"}) as w:  # fmt: skip
            w.write_goal(0.0, [0.2, 0.05, 0.1])
            for t in range(n):
                w.write_joint_state(0.05 * t, rng.uniform(-1, 1, 5), np.zeros(5))
                w.write_command(0.05 * t + 0.01, rng.uniform(-1, 1, 5))
                if t % 10 == 0:  # the push task's cube
                    w.write_object_pose(0.05 * t, [0.2, 0.01 * t, 0.015], [0, 0, 0, 1])
    (run / "metrics.csv").write_text("env_steps,success_rate\n50,0.5\n")
    return run


def _rows(rrd) -> dict[str, int]:
    """Rows per entity path in a .rrd file (static rows left out)."""
    rows: dict[str, int] = {}
    for chunk in rr.chunk.RrdReader(rrd).stream():
        if not chunk.is_static:
            rows[chunk.entity_path] = rows.get(chunk.entity_path, 0) + chunk.num_rows
    return rows


def _mbrl_view(run, rrd):
    """`mbrl view RUN --save RRD --no-serve` as a user runs it; (completed process, rrd)."""
    result = subprocess.run(
        [sys.executable, "-m", "mbrl", "view", str(run), "--save", str(rrd), "--no-serve"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result, rrd


def test_mbrl_view_replays_every_joint_state_of_every_episode(tmp_path, rng):
    run = _run_dir(tmp_path, rng)
    result, rrd = _mbrl_view(run, tmp_path / "replay.rrd")
    # 2 episodes of 30 and 20 states at 20 Hz: 1.45 s + 1 s between episodes + 0.95 s
    assert "2 episodes, 50 joint states, 3.4 s of replay" in result.stdout
    rows = _rows(rrd)
    for name in NAMES:  # each joint's transform at every recorded state
        assert rows[f"/arm/joints/{name}"] == 50, rows
    assert rows["/plots/distance_to_goal_cm"] == 50
    assert rows["/world/target"] == 50 and rows["/world/trail"] == 50
    assert rows["/log"] == 3  # two episode lines and the evaluation row
    assert rows["/world/cube"] == 5  # 3 + 2 recorded poses


def test_a_run_without_episodes_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mbrl", "view", str(tmp_path / "nothing"), "--no-serve"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "no MCAP episodes for" in result.stderr and "collector/episodes" in result.stderr


def test_viewer_fk_matches_the_planners_fk(rng):
    torch = pytest.importorskip("torch")
    from mbrl.costs.kinematics import ForwardKinematics

    chain = UrdfChain(bundled_urdf().read_text(), "ee_tip")
    fk = ForwardKinematics("package://mbrl/so_arm.urdf", "ee_tip", NAMES, dtype=torch.float64)
    q = rng.uniform(-1.5, 1.5, (20, 5))
    expected = fk(torch.as_tensor(q)).numpy()
    got = np.array([chain.ee_position(dict(zip(NAMES, row, strict=True))) for row in q])
    np.testing.assert_allclose(got, expected, atol=1e-7)  # 0.1 um


def test_unknown_ee_link_names_the_links():
    with pytest.raises(ValueError, match="no link 'tool0'.*'ee_tip'"):
        UrdfChain(bundled_urdf().read_text(), "tool0")


def test_rerun_reads_our_episode_mcap_on_its_own(tmp_path, rng):
    """Rerun's own ROS 2 MCAP loader (no mbrl code in the way) decodes every joint state."""
    run = _run_dir(tmp_path, rng, steps=(25,))
    rrd = tmp_path / "mcap.rrd"
    recording = rr.RecordingStream("mbrl-test", recording_id="mcap")
    recording.save(rrd)
    rr.log_file_from_path(run / "episodes" / "episode_0000.mcap", recording=recording)
    recording.flush()
    deadline = time.monotonic() + 30  # the loader runs in the background
    while _rows(rrd).get("/joint_states/position", 0) < 25 and time.monotonic() < deadline:
        time.sleep(0.2)
        recording.flush()
    rows = _rows(rrd)
    assert rows["/joint_states/position"] == 25 and rows["/joint_states/velocity"] == 25, rows
    assert "/forward_position_controller/commands" in rows and "/mbrl/goal" in rows


def test_increment_commands_draw_no_target_and_graph_recordings_come_first(tmp_path, rng):
    run = _run_dir(tmp_path, rng, steps=(10,))  # the loop's report: run/episodes/
    path = run / "collector" / "episodes" / "episode_000000.mcap"
    meta = {"episode_id": "0", "command_units": "normalised joint-position increment"}
    with EpisodeWriter(path, NAMES, meta) as w:
        for t in range(12):
            w.write_joint_state(0.05 * t, rng.uniform(-1, 1, 5))
            w.write_command(0.05 * t + 0.01, rng.uniform(-1, 1, 5))
    result, rrd = _mbrl_view(run, tmp_path / "replay.rrd")
    assert "1 episodes, 12 joint states" in result.stdout  # the collector's, not the report's
    rows = _rows(rrd)
    assert rows["/arm/joints/shoulder_pan"] == 12 and "/world/target" not in rows


def test_another_arms_urdf_is_drawn_with_its_own_tool_end(tmp_path):
    """The live view takes /robot_description, which may be another arm (config/arm_iiwa.yaml)."""
    import pybullet_data

    from mbrl.view.scene import Scene

    urdf = Path(pybullet_data.getDataPath()) / "kuka_iiwa" / "model.urdf"
    recording = rr.RecordingStream("mbrl-test", recording_id="iiwa")
    recording.save(tmp_path / "iiwa.rrd")
    scene = Scene(urdf.read_text(), recording)  # XML text, as on the topic
    assert scene.joint_names == [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
    assert scene.chain.joints[-1][0] == "lbr_iiwa_joint_7"  # no ee_tip there: deepest link
    scene.set_time(0.0)
    ee = scene.arm(scene.joint_names, np.zeros(7))
    np.testing.assert_allclose(ee[:2], 0.0, atol=1e-9)  # straight up at zero angles
    assert ee[2] > 1.0
    scene.close()

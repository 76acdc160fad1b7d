"""The MCAP episode store: exact round trip, recovery after kill -9, clear errors on bad files."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mbrl.data.episodes import EpisodeFileError, EpisodeWriter, read_episode

NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")


def _write(path, steps=50, rng=None):
    rng = rng or np.random.default_rng(0)
    q = rng.uniform(-1, 1, (steps, len(NAMES)))
    dq = rng.uniform(-1, 1, (steps, len(NAMES)))
    u = rng.uniform(-1, 1, (steps, len(NAMES)))
    with EpisodeWriter(path, NAMES, {"episode_id": "7", "task": "reach"}) as w:
        w.write_goal(0.0, [0.1, 0.2, 0.3])
        for t in range(steps):
            w.write_joint_state(0.05 * t, q[t], dq[t])
            w.write_command(0.05 * t + 0.001, u[t])
    return q, dq, u


def test_round_trip_is_exact(tmp_path):
    path = tmp_path / "ep.mcap"
    q, dq, u = _write(path)
    ep = read_episode(path)
    assert ep.complete
    assert ep.joint_names == NAMES
    np.testing.assert_array_equal(ep.positions, q)
    np.testing.assert_array_equal(ep.velocities, dq)
    np.testing.assert_array_equal(ep.commands, u)
    np.testing.assert_allclose(ep.state_stamps, 0.05 * np.arange(len(q)), atol=1e-9)
    np.testing.assert_array_equal(ep.goals, [[0.1, 0.2, 0.3]])
    assert ep.metadata["task"] == "reach" and ep.metadata["episode_id"] == "7"


def test_wrong_length_is_rejected_with_names(tmp_path):
    with EpisodeWriter(tmp_path / "ep.mcap", NAMES) as w:
        with pytest.raises(ValueError, match="expected 5"):
            w.write_command(0.0, [1.0, 2.0])
        with pytest.raises(ValueError, match="goal has 2 values"):
            w.write_goal(0.0, [1.0, 2.0])


def test_existing_file_is_never_overwritten(tmp_path):
    path = tmp_path / "ep.mcap"
    _write(path)
    with pytest.raises(FileExistsError):
        EpisodeWriter(path, NAMES)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not an MCAP file"),
        (b"not an mcap file at all, just text", "not an MCAP file"),
        (b"\x89MCAP0\r\n" + bytes(range(200)), "not a readable MCAP episode|no 'mbrl_episode'"),
    ],
)
def test_corrupt_files_name_the_file(tmp_path, content, match):
    path = tmp_path / "bad.mcap"
    path.write_bytes(content)
    with pytest.raises(EpisodeFileError, match=match) as err:
        read_episode(path)
    assert str(path) in str(err.value)


def test_foreign_mcap_is_rejected(tmp_path):
    from mcap.writer import Writer

    path = tmp_path / "foreign.mcap"
    with open(path, "wb") as f:
        w = Writer(f)
        w.start()
        w.finish()
    with pytest.raises(EpisodeFileError, match="not an mbrl episode"):
        read_episode(path)


def test_missing_file(tmp_path):
    with pytest.raises(EpisodeFileError, match="does not exist"):
        read_episode(tmp_path / "nope.mcap")


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from mbrl.data.episodes import EpisodeWriter
    names = ["a", "b", "c"]
    w = EpisodeWriter(sys.argv[1], names, {"episode_id": "1"}, flush_period=0.2)
    n = 0
    reported = 0
    while True:
        w.write_joint_state(n * 0.01, np.full(3, float(n)), np.zeros(3))
        n += 1
        if w.flushed_messages != reported:  # the time-based flush just handed a chunk over
            reported = w.flushed_messages
            print(f"flushed {reported}", flush=True)
        time.sleep(0.002)
    """
)


def test_kill_9_loses_at_most_the_last_chunk(tmp_path):
    path = tmp_path / "ep.mcap"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        reported = 0
        for _ in range(5):
            line = proc.stdout.readline()
            assert line.startswith("flushed"), line
            reported = int(line.split()[1])
    finally:
        proc.kill()  # SIGKILL: no finally blocks, no atexit, no footer
        proc.wait()
    ep = read_episode(path)
    assert not ep.complete
    recovered = len(ep.state_stamps)
    # Everything reported flushed survived; values are intact and in order.
    assert recovered >= reported
    np.testing.assert_array_equal(ep.positions[:, 0], np.arange(recovered))

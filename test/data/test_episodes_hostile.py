"""Episode files as an adversary leaves them (issue 16, part 2): bit-flipped and truncated
files only ever raise EpisodeFileError naming the file; a file cut by kill -9 is repaired into
one third-party readers open; a node's directory is made readable before it starts."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from mcap.exceptions import McapError
from mcap.reader import SeekingReader
from test_episodes import NAMES, WRITER_SCRIPT

from mbrl.data.episodes import (
    EpisodeFileError,
    EpisodeWriter,
    check_episode_dir,
    read_episode,
    repair_episode,
)


def _episode_bytes(tmp_path, steps: int = 400) -> bytes:
    path = tmp_path / "good.mcap"
    rng = np.random.default_rng(0)
    with EpisodeWriter(path, NAMES, {"episode_id": "3"}, chunk_bytes=4096) as w:
        w.write_goal(0.0, [0.1, 0.2, 0.3])
        for t in range(steps):
            w.write_joint_state(0.05 * t, rng.uniform(-1, 1, 5), rng.uniform(-1, 1, 5))
            w.write_command(0.05 * t + 0.001, rng.uniform(-1, 1, 5))
    return path.read_bytes()


def test_damaged_files_raise_only_episode_file_errors_naming_the_file(tmp_path):
    """300 seeded corruptions (flipped bytes in chunks and headers, cuts anywhere): each read
    returns the intact part or raises EpisodeFileError with the path (before: zstd, CDR and
    struct errors escaped and stopped the collector and the fitter from starting)."""
    data = _episode_bytes(tmp_path)
    rng = np.random.default_rng(16)
    path = tmp_path / "bad.mcap"
    outcomes = {"episode": 0, "error": 0}
    for k in range(300):
        bad = bytearray(data)
        if k % 3 == 0:
            bad = bad[: int(rng.integers(8, len(bad)))]
        else:
            for i in rng.integers(8, len(bad), size=int(rng.integers(1, 8))):
                bad[i] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(bad))
        try:
            read_episode(path)
            outcomes["episode"] += 1
        except EpisodeFileError as exc:
            assert str(path) in str(exc)
            outcomes["error"] += 1
    assert outcomes["episode"] > 0 and outcomes["error"] > 0, outcomes


def _cut_file(tmp_path):
    path = tmp_path / "episode_000001_cut.mcap"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(3):
            assert proc.stdout.readline().startswith("flushed")
    finally:
        proc.kill()  # SIGKILL: no footer, no summary
        proc.wait()
    return path


def test_cut_episode_is_repaired_for_third_party_readers(tmp_path):
    path = _cut_file(tmp_path)
    before = read_episode(path)
    assert not before.complete
    with open(path, "rb") as f, pytest.raises((McapError, EOFError, ValueError)):
        SeekingReader(f).get_summary()  # a third-party reader needs the summary
    assert repair_episode(path)
    with open(path, "rb") as f:
        reader = SeekingReader(f)
        count = sum(1 for _ in reader.iter_messages())
    after = read_episode(path)
    assert not after.complete and count == len(before.state_stamps)  # still: no "end" event
    np.testing.assert_array_equal(after.positions, before.positions)
    assert after.metadata == before.metadata
    assert not repair_episode(path)  # complete now: left alone


def test_node_directory_is_made_readable_before_start(tmp_path):
    directory = tmp_path / "episodes"
    directory.mkdir()
    good = directory / "episode_000002_good.mcap"
    good.write_bytes(_episode_bytes(tmp_path))
    garbage = directory / "episode_000003_bad.mcap"
    garbage.write_bytes(b"\x89MCAP0\r\n" + bytes(range(256)) * 4)
    cut = _cut_file(directory)
    tmp = directory / "episode_000004_x.mcap.tmp"
    tmp.write_bytes(b"half a file")
    lines = check_episode_dir(directory)
    text = "\n".join(lines)
    assert f"corrupt episode file {garbage} moved aside to {garbage.name}.corrupt" in text
    assert f"repaired {cut}" in text and f"removed {tmp}" in text
    assert not garbage.exists() and (directory / f"{garbage.name}.corrupt").exists()
    assert sorted(p.name for p in directory.glob("episode_*.mcap")) == [cut.name, good.name]
    assert not read_episode(cut).complete and read_episode(good).complete
    assert check_episode_dir(directory) == []  # nothing left to do

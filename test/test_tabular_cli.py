"""`mbrl tabular ...`: the numbers are printed and the figures written, through the real CLI."""

from __future__ import annotations

import re

import pytest

from mbrl.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_ab_prints_the_model_and_the_values(capsys):
    assert main(["tabular", "ab", "--samples", "2000", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"A\s+1\s+0\.000\s+1\.000\s+0\.000\s+0\.000", out)
    assert re.search(r"B\s+8\s+0\.000\s+0\.000\s+1\.000\s+0\.750", out)
    assert "lecture's 8 sampled episodes: V(A) = 1.000, V(B) = 0.750" in out
    v_b = float(re.search(r"V\(B\) = (0\.\d+) from 2000 returns", out).group(1))
    assert abs(v_b - 0.75) < 0.04


def test_dyna_maze_writes_the_figure(tmp_path, capsys):
    args = ["tabular", "dyna-maze", "--out", str(tmp_path), "--runs", "4", "--episodes", "12"]
    assert main(args + ["--planning-steps", "0", "50"]) == 0
    out = capsys.readouterr().out
    assert "shortest path 14 steps" in out
    assert re.search(r"^\s+50\s+\d+\s+", out, re.M)
    assert (tmp_path / "tabular_dyna_maze.png").read_bytes()[:8] == PNG_MAGIC


def test_dyna_plus_writes_the_figure(tmp_path, capsys):
    assert main(["tabular", "dyna-plus", "--out", str(tmp_path), "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"shortcut\s+Dyna-Q\+", out)
    assert (tmp_path / "tabular_dyna_plus.png").read_bytes()[:8] == PNG_MAGIC


def test_bad_counts_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["tabular", "dyna-maze", "--runs", "0"])
    assert "--runs: expected a positive integer, got '0'" in capsys.readouterr().err

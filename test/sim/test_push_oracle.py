"""The push ceiling bench (bench/push_oracle.py) in its smoke mode, as a user runs it: the
oracle's rollouts are the real simulator (its predicted next observation equals the real
one to the bit) and it plans with the shipped preset's action bounds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mbrl.loop.presets import preset

ROOT = Path(__file__).resolve().parents[2]


def test_oracle_bench_smoke_rolls_out_in_the_true_simulator():
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "push_oracle.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = {r["policy"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert set(rows) == {"oracle", "random"}
    oracle = rows["oracle"]
    assert oracle["replay_max_abs_error"] == 0.0
    bounds = preset("mpc", "push")["planner_config"]
    assert oracle["action_bounds"] == [bounds["action_low"], bounds["action_high"]]
    assert oracle["budget"] == {"num_samples": 6, "horizon": 3, "iterations": 1}
    # Every sample is rolled out for the whole horizon in the sim (iCEM adds the mean).
    assert oracle["sim_ticks_per_replan"] >= 6 * 3
    for row in rows.values():
        assert 0.0 <= row["success_rate"] <= 1.0 and len(row["distances"]) == 1

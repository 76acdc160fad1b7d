"""The proof of issue 6: the ROS graph (sim in lockstep, collector, model_fitter,
mpc_controller, experiment, each its own process over DDS) learns reach from scratch.

One explore episode, one fit, one MPC episode on the learned model, one more fit, then 10
held-out goals: ~200 real steps and about a minute or two of wall time on 2 shared cores.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from mbrl.data.episodes import read_episode
from mbrl.ros.demo import learn

pytestmark = pytest.mark.ros


def test_graph_learns_reach_from_scratch_through_ros(tmp_path):
    run_dir = tmp_path / "runs" / "ros-reach"
    summary = learn(run_dir, budget_steps=200, eval_goals=10, eval_every=2, seed=0, timeout=900)

    assert summary["success_rate"] >= 0.8, summary
    assert summary["final_distance"] < 0.02
    # the budget is ticks the controller sent during training: exactly 100 per episode
    assert summary["real_steps"] == 200
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    # the shared schedule: the starting point (explore) at 0 steps, then after both episodes
    assert [int(float(r["env_steps"])) for r in rows] == [0, 200]
    assert [int(float(r.get("model_version") or 0)) for r in rows] == [0, 2]
    assert float(rows[0]["success_rate"]) <= 0.2  # exploring reaches (almost) nothing
    assert (run_dir / "learning_curve.png").stat().st_size > 0
    # The experiment node records nothing itself: the collector's and the fitter's files are
    # the run's data (both under the run directory in the demo).
    assert not list((run_dir / "episodes").glob("*.mcap"))
    models = run_dir / "model_fitter" / "models"
    assert sorted(p.name for p in models.glob("ensemble_*.npz")) == [
        "ensemble_v0001.npz",
        "ensemble_v0002.npz",
    ]
    # The controller stops itself after each episode's ticks (tick_limit), so the explore
    # episode cannot overrun into the MPC episode's share of the budget.
    recorded = sorted((run_dir / "collector" / "episodes").glob("*.mcap"))
    assert len(recorded) == 2
    for path in recorded:
        episode = read_episode(path)
        assert episode.complete and len(episode.commands) >= 98
        assert np.all(np.isfinite(episode.positions)) and episode.positions.shape[1] == 5

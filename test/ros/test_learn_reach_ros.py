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
    assert [int(float(r["model_version"])) for r in rows] == [2]
    # The report is the CLI's: episodes as MCAP, checkpoints, data, the curve.
    assert (run_dir / "learning_curve.png").stat().st_size > 0
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.npz")) == [
        "ensemble_v001.npz",
        "ensemble_v002.npz",
    ]
    # The controller stops itself after each episode's ticks (tick_limit), so the explore
    # episode cannot overrun into the MPC episode's share of the budget.
    ours = read_episode(run_dir / "episodes" / "episode_0001.mcap")
    assert ours.positions.shape[1] == 5 and len(ours.commands) >= 98
    # ... and the collector's own recordings of the same two episodes, readable without ROS.
    recorded = sorted((run_dir / "collector" / "episodes").glob("*.mcap"))
    assert len(recorded) == 2
    episode = read_episode(recorded[1])
    assert episode.complete and len(episode.commands) >= 98
    assert np.all(np.isfinite(episode.positions))

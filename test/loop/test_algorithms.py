"""Algorithms 1 and 2 end to end on tiny budgets: the open-loop plan on the learned model must
end closer to the goals than the random base policy it started from (fixed seeds)."""

from __future__ import annotations

import pytest

from mbrl.loop.algorithms import run_alg1, run_alg2
from mbrl.loop.common import ExperimentConfig, RunRecorder

# A smaller open-loop planning budget than shipped keeps the test near 20 s; the loop is the
# same code.
SMALL = {"planner_config": {"num_samples": 60, "iterations": 4}, "fit_max_epochs": 100}


@pytest.mark.parametrize("run", [run_alg1, run_alg2])
def test_open_loop_algorithms_improve_over_random_start(tmp_path, run):
    algo = run.__name__.removeprefix("run_")
    config = ExperimentConfig(
        algo=algo,
        seed=0,
        budget_steps=150,
        episode_steps=50,
        eval_goals=5,
        eval_every=3,
        out_dir=str(tmp_path),
        algo_params=SMALL,
    )
    summary = run(config, RunRecorder(config, verbose=False))
    assert [r["env_steps"] for r in summary["curve"]] == [0, 150]
    assert summary["final_distance"] < 0.8 * summary["start_final_distance"], summary["curve"]
    assert len(list((tmp_path / f"{algo}-reach-s0" / "episodes").glob("*.mcap"))) == 3

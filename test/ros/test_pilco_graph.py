"""PILCO through the ROS graph: the fitter fits the GPs and optimises the per-goal policies
(the learner mbrl.loop runs), publishes them in the safe format (kind "pilco_policy"), and
the controller runs them in mode policy. A tiny budget with a short optimisation;
docs/results.md has the full-budget run."""

from __future__ import annotations

import json

import pytest
import yaml

from mbrl.agents.pilco import GoalPolicies
from mbrl.agents.presets import preset
from mbrl.ros.demo import learn

# ~45 s of CPU; 3 min of wall on the loaded 2-core machine, so not in the default tier.
pytestmark = [pytest.mark.ros, pytest.mark.expensive]

# A short optimisation; `learn` adds the schedule's keys (PILCO optimises per goal, for the
# goals the experiment node runs next).
OVERRIDES = "{horizon: 10, policy_iters: 10, gp_max_iter: 40, cost_widths: [0.25, 0.05]}"


def test_pilco_learns_in_the_graph_and_its_policies_drive_the_arm(tmp_path):
    run_dir = tmp_path / "runs" / "ros-pilco"
    summary = learn(run_dir, budget_steps=200, eval_goals=3, eval_every=2, seed=0, timeout=900,
                    algo="pilco", agent_params=OVERRIDES)  # fmt: skip
    assert summary["algo"] == "pilco" and summary["real_steps"] == 200
    start, end = summary["curve"][0], summary["curve"][-1]
    assert end["final_distance"] < 0.5 * start["final_distance"], summary["curve"]
    models = run_dir / "model_fitter" / "models"
    files = sorted(p.name for p in models.glob("pilco_policy_*.npz"))
    assert files == ["pilco_policy_v0001.npz", "pilco_policy_v0002.npz"]
    # v1 (after the random episode): the next training goal; v2 (last fit, an evaluation
    # follows): the three held-out goals.
    assert len(GoalPolicies.load(models / files[0]).goals) == 1
    assert len(GoalPolicies.load(models / files[1]).goals) == 3
    params = json.loads((run_dir / "params.json").read_text())
    schedule = {"eval_goals": 3, "eval_every": 2, "num_episodes": 2}
    assert params == preset("pilco", "reach", {**yaml.safe_load(OVERRIDES), **schedule})

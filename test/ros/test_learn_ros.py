"""The proof of issue 6, in the conditions of a real arm (issue 14): the ROS graph (sim,
collector, model_fitter, mpc_controller, experiment, each its own process over DDS) learns
reach from scratch in real time with the realistic servo profile (STS3215: a tick of
latency, backlash, encoder counts, lost reads; mbrl.config.SERVO_PROFILES).

One explore episode, one fit, one MPC episode on the learned model, one more fit, then the
held-out goals: 200 real steps, about 70 s of wall time in real time. Lockstep with ideal
servos (the fast path) runs the same schedule in the expensive tier.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mbrl.agents.mpc import model_columns
from mbrl.agents.presets import preset
from mbrl.config import SERVO_PROFILES, ArmConfig
from mbrl.data.episodes import read_episode
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.ros.demo import learn

pytestmark = pytest.mark.ros


@pytest.mark.parametrize(
    "timing, servo, goals, min_success",
    [
        # 3 goals keep the real-time evaluations at 15 s each (5 s of arm time per goal)
        pytest.param("realtime", "realistic", 3, 2 / 3, id="realtime-realistic"),
        pytest.param(
            "lockstep", "ideal", 10, 0.8, id="lockstep-ideal", marks=pytest.mark.expensive
        ),  # fmt: skip
    ],
)
def test_graph_learns_reach_from_scratch_through_ros(tmp_path, timing, servo, goals, min_success):
    run_dir = tmp_path / "runs" / "ros-reach"
    arm = ArmConfig(servo=SERVO_PROFILES[servo])
    summary = learn(run_dir, budget_steps=200, eval_goals=goals, eval_every=2, seed=0,
                    timeout=900, timing=timing, arm=arm)  # fmt: skip

    assert summary["success_rate"] >= min_success, summary
    assert summary["final_distance"] < 0.03
    # the budget is ticks the controller sent during training: exactly 100 per episode
    assert summary["real_steps"] == 200
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    # the shared schedule: the starting point (explore) at 0 steps, then after both episodes
    assert [int(float(r["env_steps"])) for r in rows] == [0, 200]
    assert [int(float(r.get("model_version") or 0)) for r in rows] == [0, 2]
    assert float(rows[0]["success_rate"]) <= 0.34  # exploring reaches (almost) nothing
    assert (run_dir / "learning_curve.png").stat().st_size > 0
    # The experiment node records nothing itself: the collector's and the fitter's files are
    # the run's data (both under the run directory in the demo).
    assert not (run_dir / "episodes").exists() and not (run_dir / "checkpoints").exists()
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
        if servo == "realistic":  # the sim published whole encoder counts
            counts = episode.positions / SERVO_PROFILES[servo].resolution
            np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)
    # every component's effective parameters are on disk: the agent's merged preset (the
    # same dict `mbrl experiment` records), and each node's whole config
    params = json.loads((run_dir / "params.json").read_text())
    assert params == preset("mpc", "reach")
    for node in ("model_fitter", "mpc_controller"):
        effective = json.loads((run_dir / node / "effective_parameters.json").read_text())
        assert (
            effective["agent_preset"] == params and effective["config"]["agent"]["task"] == "reach"
        )
        assert effective["config"]["arm"]["servo"]["drive"] == SERVO_PROFILES[servo].drive
    controller = json.loads((run_dir / "mpc_controller" / "effective_parameters.json").read_text())
    assert controller["config"]["timing"] == timing


def test_graph_runs_push_with_the_cube_and_the_tip_learns_to_approach_it(tmp_path):
    """mpc/push through the graph on a tiny budget: the sim's cube is recorded, the fitter's
    model includes it, and the controller's push plans bring the tip to the cube, which the
    starting point (exploration) does not do. Success itself needs thousands of steps
    (docs/results.md)."""
    run_dir = tmp_path / "runs" / "ros-push"
    summary = learn(run_dir, budget_steps=200, eval_goals=3, eval_every=2, seed=0, timeout=900,
                    task="push")  # fmt: skip
    assert summary["task"] == "push" and summary["real_steps"] == 200
    assert _improves(summary), summary["curve"]  # the tip ends nearer the cube than exploring
    recorded = sorted((run_dir / "collector" / "episodes").glob("*.mcap"))
    assert len(recorded) == 2
    episode = read_episode(recorded[0])
    # a pose with (nearly) every state: the fitter samples the latest one at each tick
    assert len(episode.object_poses) >= 0.9 * len(episode.commands) >= 88
    assert np.all(np.isfinite(episode.object_poses))
    effective = json.loads((run_dir / "model_fitter" / "effective_parameters.json").read_text())
    assert effective["config"]["agent"]["task"] == "push"
    # The fitter's model is the loop's push model: its state holds qdot and the cube velocity
    # estimated from the recorded /cube_pose (mbrl.agents.episodes), fitted by MSE.
    model = ProbabilisticEnsemble.load(run_dir / "model_fitter" / "models" / "ensemble_v0001.npz")
    assert model.dx == len(model_columns("push", 5)) == 22 and model.fit_config.loss == "mse"


def _improves(summary: dict) -> bool:
    """The last evaluation beats the starting point (exploration) on the task's measure."""
    start, end = summary["curve"][0], summary["curve"][-1]
    key = "final_tip_to_cube" if summary["task"] == "push" else "final_distance"
    return end[key] < 0.8 * start[key]


@pytest.mark.parametrize(
    "algo, task",
    [
        # make test stays under 10 minutes: mpc/reach and mpc/push above run there; the
        # open-loop algorithms here in the expensive tier (alg2/reach: ~90 s under load)
        pytest.param("alg2", "reach", marks=pytest.mark.expensive),
        pytest.param("alg1", "reach", marks=pytest.mark.expensive),
        pytest.param("alg1", "push", marks=pytest.mark.expensive),
        pytest.param("alg2", "push", marks=pytest.mark.expensive),
    ],
)
def test_every_graph_algorithm_runs_through_the_graph_and_improves(tmp_path, algo, task):
    """Every (algorithm, task) preset the graph hosts (mpc: the tests above) on a tiny
    budget: Algorithms 1 and 2 plan once per episode with the same learner's model."""
    run_dir = tmp_path / "runs" / f"ros-{algo}-{task}"
    summary = learn(run_dir, budget_steps=100, episode_steps=50, eval_goals=3, eval_every=2,
                    seed=0, timeout=900, task=task, algo=algo)  # fmt: skip
    assert summary["algo"] == algo and summary["real_steps"] == 100
    assert _improves(summary), summary["curve"]
    assert json.loads((run_dir / "params.json").read_text()) == preset(algo, task)


# 26-37 s: with the two-host run added, make test passed 10 minutes on a clean clone (624 s).
# Like alg1/alg2/gps/pilco through the graph, Alg. 4 runs in the expensive tier; mode policy
# and the policy artifact stay covered in make test (test_mpc_controller: mode policy holds an
# MPC agent; test_controller_core: the policy artifact runs as the actor; test_policy_loop).
@pytest.mark.expensive
def test_algorithm_4_learns_in_the_graph_and_its_policy_drives_the_arm(tmp_path):
    """Alg. 4 through the graph: the fitter fits the ensemble and trains the policy (the
    learner mbrl.loop runs), publishes the policy in the safe format, the controller runs it
    in mode policy. A tiny budget and short policy training; docs/results.md has the full
    one."""
    run_dir = tmp_path / "runs" / "ros-policy"
    overrides = "{policy_steps: 60, horizon: 15}"
    summary = learn(run_dir, budget_steps=200, eval_goals=3, eval_every=2, seed=0, timeout=900,
                    algo="policy", agent_params=overrides)  # fmt: skip
    assert summary["algo"] == "policy" and summary["real_steps"] == 200
    assert _improves(summary), summary["curve"]
    models = run_dir / "model_fitter" / "models"
    assert sorted(p.name for p in models.glob("policy_*.npz")) == [
        "policy_v0001.npz", "policy_v0002.npz",
    ]  # fmt: skip
    assert json.loads((run_dir / "params.json").read_text()) == preset(
        "policy", "reach", {"policy_steps": 60, "horizon": 15}
    )


@pytest.mark.expensive
def test_any_arm_by_one_arm_file_the_iiwa_learns_reach_through_the_graph(tmp_path):
    """`mbrl demo --arm config/arm_iiwa.yaml`: the KUKA iiwa of pybullet_data (7 joints, no
    gripper, a pybullet_data:// URDF) through the whole graph by its arm file alone, in
    lockstep with ideal servos (docs/results.md has the figure)."""
    from pathlib import Path

    from mbrl.config import arm_from_options

    arm = arm_from_options(Path(__file__).resolve().parents[2] / "config" / "arm_iiwa.yaml")
    run_dir = tmp_path / "runs" / "ros-iiwa"
    summary = learn(run_dir, budget_steps=300, eval_goals=5, eval_every=3, seed=0,
                    timeout=1800, arm=arm)  # fmt: skip
    assert summary["real_steps"] == 300
    episode = read_episode(sorted((run_dir / "collector" / "episodes").glob("*.mcap"))[0])
    assert episode.positions.shape[1] == 7 and tuple(episode.joint_names)[0] == "lbr_iiwa_joint_1"
    assert _improves(summary), summary["curve"]
    assert summary["final_distance"] < 0.1, summary["curve"]


@pytest.mark.expensive  # 66 s at load average 14 (2 cores): over the default tier's share
def test_gps_runs_its_schedule_through_the_graph_and_the_local_controllers_improve(tmp_path):
    """GPS through the graph: the experiment node runs conditions x samples per iteration
    (episode seeds the fitter's learner derives from the same agent parameters), the fitter
    runs the GPS learner (the one mbrl.loop.gps drives) and publishes the local controllers
    in the safe format, the controller runs them in mode policy on the tick. The first
    iteration explores; then the local controllers' final distance on their own conditions
    must fall. 2 conditions x 2 samples x 41 ticks (T = 40 plus one the recording may lack)
    x 3 iterations = 492 real steps."""
    run_dir = tmp_path / "runs" / "ros-gps"
    overrides = "{conditions: 2, samples: 2, horizon: 40, policy_steps: 50}"
    summary = learn(run_dir, budget_steps=492, episode_steps=40, eval_goals=1, eval_every=1,
                    seed=0, timeout=900, algo="gps", agent_params=overrides)  # fmt: skip
    assert summary["algo"] == "gps" and summary["real_steps"] >= 480
    rows = summary["curve"]
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    assert rows[-1]["final_distance"] < 0.6 * rows[0]["final_distance"], rows
    models = run_dir / "model_fitter" / "models"
    assert len(list(models.glob("gps_local_v*.npz"))) == 3
    assert len(list(models.glob("gps_policy_v*.npz"))) == 3

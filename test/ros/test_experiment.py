"""The experiment node's arithmetic (goals, episode arrays, config) and its failure paths as
a real process; the full schedule through the graph is test_learn_reach_ros.py."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mbrl.config import ArmConfig, ConfigError
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.ros.controller_core import arm_limits
from mbrl.ros.experiment_core import (
    MIN_GOAL_HEIGHT,
    ExperimentNodeConfig,
    GoalSampler,
    episode_arrays,
)

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def sampler() -> GoalSampler:
    arm = ArmConfig()
    fk = ForwardKinematics(arm.urdf, arm.ee_link, arm.joint_names)
    lower, upper, _ = arm_limits(arm, fk)
    return GoalSampler(fk, lower, upper)


def test_eval_goals_are_fixed_reachable_and_apart_from_training_goals(sampler):
    goals = sampler.eval_goals(10)
    assert goals.shape == (10, 3)
    np.testing.assert_array_equal(goals, sampler.eval_goals(10))  # same for every run
    assert np.all(goals[:, 2] >= MIN_GOAL_HEIGHT)
    reach = np.linalg.norm(sampler.ee(np.zeros(5)))  # no goal beyond the stretched arm
    assert np.all(np.linalg.norm(goals, axis=1) < 1.5 * reach)
    train = np.array([sampler.sample(np.random.default_rng(0)) for _ in range(3)])
    assert np.min(np.linalg.norm(goals[:, None] - train[None], axis=-1)) > 1e-6


def test_goal_sampler_names_the_limits_when_no_goal_is_above_the_table(sampler):
    low = GoalSampler(sampler.fk, sampler.lower, sampler.upper)
    low.ee = lambda q: np.array([0.1, 0.0, -0.5])  # an arm whose tip is always under the table
    with pytest.raises(RuntimeError, match="no goal above 0.02 m in 5 draws within the joint"):
        low.sample(np.random.default_rng(0), tries=5)


def test_episode_arrays_have_the_cli_layout_and_increments(sampler):
    q = np.array([[0.0] * 5, [0.05] * 5, [0.1] * 5])
    commands = np.array([[0.1] * 5, [0.15] * 5])
    goal = np.array([0.1, 0.2, 0.3])
    obs, actions = episode_arrays(sampler, q, np.zeros_like(q), commands, goal, 0.1)
    assert obs.shape == (3, 16) and actions.shape == (2, 5)
    np.testing.assert_allclose(actions, [[1.0] * 5, [0.5] * 5])  # (c_t - c_{t-1}) / 0.1
    np.testing.assert_allclose(obs[:, 10:13], sampler.ee(q))
    np.testing.assert_allclose(obs[:, 13:], np.tile(goal, (3, 1)))
    with pytest.raises(ValueError, match=r"expected \(T\+1, nj\)"):
        episode_arrays(sampler, q, np.zeros_like(q), commands[:1], goal, 0.1)


def test_config_maps_to_the_cli_experiment_and_rejects_bad_values():
    config = ExperimentNodeConfig(seed=3, budget_steps=250).experiment_config()
    assert (config.algo, config.task, config.name) == ("mpc", "reach", "ros-mpc-reach-s3")
    assert config.num_episodes == 3
    with pytest.raises(ConfigError, match="budget_steps must be >= 1"):
        ExperimentNodeConfig(budget_steps=0)
    with pytest.raises(ConfigError, match="success_threshold > 0"):
        ExperimentNodeConfig(success_threshold=0.0)


def _node(*params: str, timeout: float = 60) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "mbrl.ros.experiment", "--ros-args"]
    for p in params:
        argv += ["-p", p]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def test_bad_parameter_exits_2_naming_it():
    result = _node("episode_steps:=0")
    assert result.returncode == 2
    assert "episode_steps must be >= 1" in result.stderr


def test_missing_controller_stops_the_schedule_naming_the_service(tmp_path):
    # No other node runs (and this test's DDS domain is private): the first wait fails.
    result = _node(f"out_dir:={tmp_path}", "timeout:=1.0")
    assert result.returncode == 1
    assert "service /mpc_controller/enable not available (disable)" in result.stdout + result.stderr

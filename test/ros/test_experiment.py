"""The experiment node's arithmetic (episode arrays, config) and its failure paths as a real
process; the full schedule through the graph is test_learn_reach_ros.py (goals: the shared
sampler, test/sim/test_task_sampler.py)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from mbrl.agents.arm import ArmModel
from mbrl.agents.config import AgentConfig
from mbrl.config import ArmConfig, ConfigError
from mbrl.ros.experiment_core import (
    ExperimentNodeConfig,
    ScheduleError,
    awaited_model,
    episode_arrays,
)
from mbrl.ros.status import FitterStatus

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def arm() -> ArmModel:
    return ArmModel.from_config(ArmConfig())


def test_episode_arrays_have_the_cli_layout_and_increments(arm):
    q = np.array([[0.0] * 5, [0.05] * 5, [0.1] * 5])
    commands = np.array([[0.1] * 5, [0.15] * 5])
    goal = np.array([0.1, 0.2, 0.3])
    obs, actions = episode_arrays(arm, "reach", q, np.zeros_like(q), commands, goal)
    assert obs.shape == (3, 16) and actions.shape == (2, 5)
    np.testing.assert_allclose(actions, [[1.0] * 5, [0.5] * 5])  # (c_t - c_{t-1}) / 0.1
    np.testing.assert_allclose(obs[:, 10:13], arm.sampler("reach").ee(q), atol=1e-6)
    np.testing.assert_allclose(obs[:, 13:], np.tile(goal, (3, 1)))
    # push, increments from the measured q: (c_t - q_t) / 0.1, the cube in the observation
    # and its velocity estimated from the poses of consecutive ticks (zero at the first)
    cubes = np.array([[0.2, 0.0, 0.02, np.pi / 2], [0.2, 0.0, 0.02, np.pi / 2],
                      [0.205, 0.0, 0.02, np.pi / 2 + 0.01]])  # fmt: skip
    obs, actions = episode_arrays(arm, "push", q, np.zeros_like(q), commands, goal, cubes,
                                  "measured")  # fmt: skip
    assert obs.shape == (3, 25)
    np.testing.assert_allclose(actions, [[1.0] * 5, [1.0] * 5])
    np.testing.assert_allclose(obs[0, 13:18], [0.2, 0.0, 0.02, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(obs[:2, 21:], 0.0)
    np.testing.assert_allclose(obs[2, 21:], [0.1, 0.0, 0.0, 0.2], atol=1e-9)  # m/s, rad/s
    with pytest.raises(ValueError, match=r"expected \(T\+1, nj\)"):
        episode_arrays(arm, "reach", q, np.zeros_like(q), commands[:1], goal)


def test_config_maps_to_the_cli_experiment_and_rejects_bad_values():
    config = ExperimentNodeConfig(seed=3, budget_steps=250).experiment_config()
    assert (config.algo, config.task, config.name) == ("mpc", "reach", "ros-mpc-reach-s3")
    assert config.num_episodes == 3
    push = ExperimentNodeConfig(
        agent=AgentConfig(task="push", params="{planner_config: {horizon: 9}}")
    )
    config = push.experiment_config()
    assert config.name == "ros-mpc-push-s0" and config.algo_params == {
        "planner_config": {"horizon": 9}
    }
    with pytest.raises(ConfigError, match="budget_steps must be >= 1"):
        ExperimentNodeConfig(budget_steps=0)
    with pytest.raises(ConfigError, match="agent.params: mpc/reach: unknown parameter 'horizn'"):
        AgentConfig(params="{horizn: 3}")
    with pytest.raises(ConfigError, match="agent.params is not valid YAML"):
        AgentConfig(params="{a: [")
    with pytest.raises(ConfigError, match="agent.algo 'dreamer'"):  # no such agent
        AgentConfig(algo="dreamer")
    with pytest.raises(ConfigError, match="agent.task must be one of"):
        AgentConfig(task="stack")


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


def test_awaited_model_stops_waiting_when_the_fitter_reports_a_failed_fit():
    idle_failed = FitterStatus(
        episodes=1, fitting=False, last_error="fit of v1 failed: x", failed_fits=3
    )
    assert awaited_model(4, 3, idle_failed, 3, "model_fitter") == 4  # it came
    assert awaited_model(3, 3, None, 0, "model_fitter") is None  # no status yet: keep waiting
    assert awaited_model(3, 3, idle_failed, 3, "model_fitter") is None  # an older failure
    busy = dataclasses.replace(idle_failed, failed_fits=4, fitting=True)
    assert awaited_model(3, 3, busy, 3, "model_fitter") is None  # a queued fit may succeed
    failed = dataclasses.replace(idle_failed, failed_fits=4)
    with pytest.raises(ScheduleError, match="model_fitter's fit failed: fit of v1 failed: x"):
        awaited_model(3, 3, failed, 3, "model_fitter")

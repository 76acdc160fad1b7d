"""The acme-style loop and the shared seam (mbrl.loop.common): real PyBullet envs, real files."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from mbrl.data.episodes import read_episode
from mbrl.loop.common import (
    EVAL_SEED,
    ExperimentConfig,
    RunRecorder,
    evaluate,
    make_task_env,
    obs_layout,
    train_reset_seed,
)
from mbrl.loop.env_loop import Actor, EnvironmentLoop, RandomActor
from mbrl.loop.presets import ParamError, preset
from mbrl.loop.registry import get_driver


class CountingActor:
    """Records the call order the loop makes."""

    def __init__(self, du: int) -> None:
        self.du, self.calls = du, []

    def observe_first(self, obs, env):
        self.calls.append("first")

    def select_action(self, obs):
        self.calls.append("select")
        return np.full(self.du, 0.5)

    def observe(self, action, next_obs, reward):
        self.calls.append("observe")

    def update(self):
        self.calls.append("update")


@pytest.fixture
def reach_env():
    env = make_task_env("reach", 0, max_steps=20)
    yield env
    env.close()


def test_loop_call_order_shapes_and_step_count(reach_env):
    actor = CountingActor(5)
    assert isinstance(actor, Actor)
    loop = EnvironmentLoop(reach_env, actor)
    ep = loop.run_episode(seed=3)
    assert ep.obs.shape == (21, 16) and ep.actions.shape == (20, 5) and ep.rewards.shape == (20,)
    assert actor.calls[:4] == ["first", "select", "observe", "update"]
    assert actor.calls.count("update") == 20 and loop.total_steps == 20
    # The max_steps cut stops exactly at a budget; the counter accumulates over episodes.
    ep2 = loop.run_episode(seed=4, max_steps=7)
    assert ep2.steps == 7 and loop.total_steps == 27
    np.testing.assert_allclose(ep2.goal, reach_env.unwrapped.goal)


def test_random_actor_bounds_and_smoothing():
    rng = np.random.default_rng(0)
    white = RandomActor(5, rng)
    smooth = RandomActor(5, np.random.default_rng(0), smoothing=0.8)
    a = np.array([white.select_action(None) for _ in range(500)])
    b = np.array([smooth.select_action(None) for _ in range(500)])
    assert np.all(np.abs(a) <= 1) and np.all(np.abs(b) <= 1)
    lag1 = lambda x: np.corrcoef(x[1:, 0], x[:-1, 0])[0, 1]  # noqa: E731
    assert abs(lag1(a)) < 0.15 and lag1(b) > 0.6
    with pytest.raises(ValueError, match="smoothing"):
        RandomActor(5, rng, smoothing=1.0)


@pytest.mark.parametrize("task", ["reach", "push"])
def test_obs_layout_matches_the_env(task):
    env = make_task_env(task, 0)
    try:
        obs, _ = env.reset(seed=1)
        layout = obs_layout(task, 5)
        arm = env.unwrapped.arm
        np.testing.assert_allclose(obs[slice(*layout.q)], arm.joint_positions(), atol=1e-6)
        np.testing.assert_allclose(obs[slice(*layout.ee)], arm.ee_position(), atol=1e-6)
        np.testing.assert_allclose(obs[slice(*layout.goal)], env.unwrapped.goal, atol=1e-6)
        if task == "push":
            np.testing.assert_allclose(obs[slice(*layout.obj)], arm.cube_pose()[0], atol=1e-6)
    finally:
        env.close()


def test_evaluate_separates_an_oracle_from_doing_nothing(reach_env):
    def oracle(obs, env):  # drive straight to the sampled goal configuration
        return np.clip((env.unwrapped.goal_q - obs[:5]) / 0.1, -1, 1)

    good = evaluate(reach_env, oracle, n_goals=4)
    idle = evaluate(reach_env, lambda obs, env: np.zeros(5), n_goals=4)
    assert good["success_rate"] == 1.0 and good["final_distance"] < 0.02
    assert idle["success_rate"] == 0.0 and idle["final_distance"] > 0.05
    assert len(good["distances"]) == 4
    # Held-out goals are the same on every call and never drawn by a training reset.
    again = evaluate(lambda: make_task_env("reach", 5, max_steps=20), oracle, n_goals=4)
    np.testing.assert_allclose(again["distances"], good["distances"], atol=1e-9)
    assert train_reset_seed(np.random.default_rng(0)) < EVAL_SEED


def test_recorder_writes_the_run_directory(tmp_path, reach_env):
    config = ExperimentConfig(algo="mpc", seed=3, out_dir=str(tmp_path))
    assert config.name == "mpc-reach-s3"
    rec = RunRecorder(config, verbose=False)
    ep = EnvironmentLoop(reach_env, RandomActor(5, np.random.default_rng(0))).run_episode(seed=1)
    names = reach_env.unwrapped.arm.joint_names
    path = rec.record_episode(0, ep.obs, ep.actions, names, ep.goal, 0.05)
    back = read_episode(path)
    assert back.complete and back.joint_names == tuple(names)
    np.testing.assert_allclose(back.positions, ep.obs[:, :5], atol=1e-6)
    np.testing.assert_allclose(back.commands, ep.actions, atol=1e-12)
    np.testing.assert_allclose(back.goals[0], ep.goal)
    with pytest.raises(ValueError, match="expected"):
        rec.record_episode(1, ep.obs, ep.actions[:-1], names, ep.goal, 0.05)
    rec.log(env_steps=0, success_rate=0.0, final_distance=0.3)
    rec.log(env_steps=100, success_rate=0.5, final_distance=0.05, fit_seconds=1.5)
    summary = rec.finish()
    rows = list(csv.DictReader(open(rec.run_dir / "metrics.csv")))
    assert [r["env_steps"] for r in rows] == ["0", "100"] and rows[1]["fit_seconds"] == "1.5"
    assert summary["success_rate"] == 0.5 and summary["env_steps"] == 100
    for name in ("config.json", "summary.json", "learning_curve.png"):
        assert (rec.run_dir / name).stat().st_size > 0


def test_config_presets_and_registry_reject_bad_input():
    with pytest.raises(ValueError, match="task"):
        ExperimentConfig(algo="mpc", task="stack")
    with pytest.raises(ValueError, match="budget_steps"):
        ExperimentConfig(algo="mpc", budget_steps=0)
    assert ExperimentConfig(algo="mpc", budget_steps=250).num_episodes == 3
    with pytest.raises(ValueError, match="unknown algo 'sac'"):
        get_driver("sac")
    with pytest.raises(ParamError, match="refit_evry"):
        preset("mpc", "reach", {"refit_evry": 3})
    merged = preset("mpc", "reach", {"planner_config": {"horizon": 7}})
    assert (
        merged["planner_config"]["horizon"] == 7 and merged["planner_config"]["num_samples"] == 40
    )

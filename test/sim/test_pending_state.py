"""The reach model state with real servos: [q, qdot, pending = previous command - q] is the
same whether the sim env builds it (`mbrl experiment`) or the fitter rebuilds it from a
recorded episode (the ROS graph), and it is what lets a small ensemble predict a servo with
a tick of latency (a state of q alone cannot: the pending command is hidden)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from mbrl.agents.arm import ArmModel
from mbrl.agents.episodes import task_trajectories
from mbrl.agents.explore import SmoothedRandom
from mbrl.agents.mpc import MPCLearner, model_columns
from mbrl.agents.presets import preset
from mbrl.config import SERVO_PROFILES, ArmConfig
from mbrl.costs.tasks import pending_span
from mbrl.data.episodes import EpisodeWriter, read_episode
from mbrl.sim.tasks import make_env

PERIOD = 0.05


def _episodes(env, n, seed0, rng):
    out = []
    for i in range(n):
        explorer = SmoothedRandom(5, rng, 0.5)
        obs, _ = env.reset(seed=seed0 + i)
        o, a = [obs], []
        for _ in range(100):
            u = explorer.act()
            obs, *_ = env.step(u)
            o.append(obs)
            a.append(u)
        out.append((np.array(o), np.array(a)))
    return out


def test_recorded_episode_gives_the_env_observation_with_pending(tmp_path):
    config = ArmConfig(servo=SERVO_PROFILES["realistic"])
    env = make_env("reach", config, max_steps=30, pending_in_obs=True, seed=0)
    obs, _ = env.reset(seed=4)
    explorer = SmoothedRandom(5, np.random.default_rng(0), 0.5)
    rows, commands = [obs], []
    arm = env.unwrapped.arm
    with EpisodeWriter(tmp_path / "e.mcap", arm.joint_names) as writer:
        writer.write_goal(0.0, env.unwrapped.goal)
        for k in range(30):
            t = k * PERIOD
            writer.write_joint_state(t, rows[-1][:5], rows[-1][5:10])
            obs, *_ = env.step(explorer.act())
            commands.append(arm.position_target)
            writer.write_command(t + 0.001, commands[-1])
            rows.append(obs)
        writer.write_joint_state(30 * PERIOD, rows[-1][:5], rows[-1][5:10])
    env.close()
    rows = np.array(rows)
    start, stop = pending_span("reach", 5)
    np.testing.assert_allclose(rows[0, start:stop], 0.0)  # nothing pending after a reset
    np.testing.assert_allclose(rows[1:, start:stop], np.array(commands) - rows[1:, :5], atol=1e-6)
    [(obs_rec, actions)] = task_trajectories(
        [read_episode(tmp_path / "e.mcap")], "reach", ArmModel.from_config(config), "command",
        with_pending=True,
    )  # fmt: skip
    assert obs_rec.shape == rows.shape and actions.shape == (30, 5)
    np.testing.assert_allclose(obs_rec[:, :10], rows[:, :10], atol=1e-6)  # q, qdot
    np.testing.assert_allclose(obs_rec[:, 13:16], rows[:, 13:16], atol=1e-6)  # goal
    np.testing.assert_allclose(obs_rec[:, start:stop], rows[:, start:stop], atol=1e-6)


def test_with_a_tick_of_latency_only_the_pending_state_is_predictable():
    torch.set_num_threads(1)
    servo = dataclasses.replace(SERVO_PROFILES["ideal"], latency_ticks=1)
    env = make_env("reach", ArmConfig(servo=servo), max_steps=100, pending_in_obs=True, seed=0)
    rng = np.random.default_rng(0)
    train, test = _episodes(env, 2, 0, rng), _episodes(env, 1, 500, rng)
    env.close()
    errors = {}
    for state in ("q", "q_qd_pending"):
        small = {"model_state": state, "ensemble_size": 2, "num_elites": 2, "fit_max_epochs": 150}
        learner = MPCLearner("reach", 5, preset("mpc", "reach", small), 0)
        learner.fit(train)
        columns = model_columns("reach", 5, state)
        x = np.vstack([o[:-1, columns] for o, _ in test]).astype(np.float32)
        u = np.vstack([a for _, a in test])
        nxt = np.vstack([o[1:, :5] for o, _ in test])
        mean, _ = learner.model.predict(x, u)
        errors[state] = float(np.abs(mean[:, :5] - nxt).mean())
    # 200 random transitions, 2 members (docs/real_arm.md has the shipped ensemble's figures)
    assert errors["q_qd_pending"] < 0.005 < 0.015 < errors["q"], errors


def test_the_known_model_over_the_pending_state_predicts_the_ideal_servo():
    """Version 0 of the controller (before any data): the arm's known kinematics over
    [q, qdot, pending], checked against the ideal-servo env, steps of up to one increment."""
    from mbrl.agents.mpc import known_model
    from mbrl.models.kinematic import KinematicPendingModel

    config = ArmConfig()
    env = make_env("reach", config, max_steps=40, pending_in_obs=True, seed=0)
    model = known_model(ArmModel.from_config(config), preset("mpc", "reach"))
    assert isinstance(model, KinematicPendingModel) and (model.dx, model.du) == (15, 5)
    columns = model_columns("reach", 5, "q_qd_pending")
    obs, _ = env.reset(seed=2)
    explorer = SmoothedRandom(5, np.random.default_rng(1), 0.5)
    for _ in range(40):
        u = explorer.act()
        mean, var = model.predict(obs[None, columns], u[None])
        obs, *_ = env.step(u)
        np.testing.assert_allclose(mean[0, :5], obs[:5], atol=5e-3)  # q (gravity: mm of lag)
        np.testing.assert_allclose(mean[0, 10:], obs[columns][10:], atol=5e-3)  # pending
        assert np.all(var == 0)
    env.close()
    A, B, c = model.linearize(obs[None, columns], np.zeros((1, 5)))
    assert A.shape == (1, 15, 15) and B.shape == (1, 15, 5)
    np.testing.assert_allclose(B[0, :5], np.eye(5) * 0.1, atol=1e-12)  # dq'/du = increment

"""The push observation's cube velocity is one estimate everywhere: the env's, the one built
from a recorded /cube_pose stream (mbrl.agents.episodes, what the fitter learns from) and the
controller's live one (mbrl.costs.tasks.CubeVelocity) agree on a real sim episode."""

from __future__ import annotations

import numpy as np

from mbrl.agents.arm import ArmModel
from mbrl.agents.episodes import task_trajectories
from mbrl.agents.mpc import MPCLearner, model_columns
from mbrl.agents.presets import preset
from mbrl.control.push_explore import PushExplorer, PushExplorerConfig
from mbrl.costs.tasks import (
    CubeVelocity,
    cube_velocities,
    next_command,
    object_velocity_span,
    obs_size,
)
from mbrl.data.episodes import EpisodeWriter, read_episode
from mbrl.sim.tasks import make_env


def _pushed_episode(steps: int = 60):
    """A real push episode with contact (the explorer) whose cube is also shoved at the start:
    env observations (T+1, dobs), the commands sent (T, nj) and the cube poses (T+1, 7)."""
    env = make_env("push", max_steps=steps, **preset("mpc", "push")["env"])
    arm = env.unwrapped.arm
    explorer = PushExplorer.for_env(
        env,
        np.random.default_rng(3),
        PushExplorerConfig(action_bound=0.35, push_length=(0.1, 0.12)),
    )
    obs, _ = env.reset(seed=11)
    explorer.observe_first(obs)
    arm.client.resetBaseVelocity(arm.cube, [0.25, -0.1, 0.0], [0.0, 0.0, 3.0])
    rows, commands, poses = [obs], [], [np.concatenate(arm.cube_pose())]
    cfg = env.unwrapped.config
    for _ in range(steps):
        action = explorer.select_action(obs)
        q = obs[: len(arm.joint_names)].astype(float)
        commands.append(next_command(action, q, q, cfg.max_increment, "measured"))
        obs = env.step(action)[0]
        rows.append(obs)
        poses.append(np.concatenate(arm.cube_pose()))
    env.close()
    return ArmModel.from_config(cfg), np.array(rows), np.array(commands), np.array(poses)


def test_recorded_and_live_cube_velocity_equal_the_envs(tmp_path):
    arm, rows, commands, poses = _pushed_episode()
    nj, period = arm.nj, arm.period
    span = slice(*object_velocity_span(nj))
    assert rows.shape[1] == obs_size("push", nj)
    moving = np.linalg.norm(rows[:, span][:, :2], axis=1) > 0.02
    assert moving.sum() >= 5  # the cube did move: the comparison is not of zeros
    # The collector's file: a joint state, a cube pose and a command at every tick.
    path = tmp_path / "episode.mcap"
    with EpisodeWriter(path, arm.joint_names) as writer:
        writer.write_goal(0.0, rows[0, 2 * nj + 8 : 2 * nj + 11])
        for t, row in enumerate(rows):
            writer.write_joint_state(t * period, row[:nj], row[nj : 2 * nj])
            writer.write_object_pose(t * period, poses[t, :3], poses[t, 3:])
            if t < len(commands):
                writer.write_command(t * period, commands[t])
    (obs, actions), *rest = task_trajectories([read_episode(path)], "push", arm, "measured")
    assert not rest and obs.shape == rows.shape
    np.testing.assert_allclose(obs[:, span], rows[:, span], atol=1e-3)  # m/s, rad/s
    np.testing.assert_allclose(obs[:, : 2 * nj + 11], rows[:, : 2 * nj + 11], atol=1e-4)
    # The controller's live estimator, one cube pose per tick, gives the same numbers.
    live = CubeVelocity(period)
    yaws = np.arctan2(rows[:, 2 * nj + 6], rows[:, 2 * nj + 7])
    estimates = [live.update(rows[t, 2 * nj + 3 : 2 * nj + 6], yaws[t]) for t in range(len(rows))]
    np.testing.assert_allclose(np.array(estimates), rows[:, span], atol=1e-3)
    # The push model state holds it: the learner's ensemble predicts the cube velocity.
    cols = model_columns("push", nj)
    assert set(range(*object_velocity_span(nj))) <= set(cols.tolist())
    learner = MPCLearner("push", nj, preset("mpc", "push"), seed=0)
    assert learner.model.dx == len(cols) == 2 * nj + 12
    assert learner.model.fit_config.loss == "mse"


def test_cube_velocities_wrap_yaw_and_start_at_zero():
    positions = np.array([[0.0, 0.0, 0.02], [0.01, 0.0, 0.02], [0.01, 0.02, 0.02]])
    yaws = np.array([np.pi - 0.01, -np.pi + 0.01, -np.pi + 0.03])
    v = cube_velocities(positions, yaws, 0.05)
    np.testing.assert_allclose(v[0], 0.0)
    np.testing.assert_allclose(v[1], [0.2, 0.0, 0.0, 0.4], atol=1e-9)
    np.testing.assert_allclose(v[2], [0.0, 0.4, 0.0, 0.4], atol=1e-9)
    live = CubeVelocity(0.05)
    np.testing.assert_allclose([live.update(p, y) for p, y in zip(positions, yaws)], v)
    live.reset()
    np.testing.assert_allclose(live.update(positions[2], yaws[2]), 0.0)

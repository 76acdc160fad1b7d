"""Reach and push envs against real PyBullet: gymnasium's checker, bit-identical episodes
under a seed, reachable goals, the success criteria, and save/restore."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mbrl.config import ArmConfig, ServoConfig, load_arm_config
from mbrl.costs.tasks import obs_layout
from mbrl.sim.arm import CUBE_SIZE
from mbrl.sim.tasks import MIN_GOAL_HEIGHT, PushEnv, ReachEnv, make_env

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
ROBUST = ArmConfig(servo=ServoConfig(noise_std=0.005, backlash=0.01, latency_ticks=1))


def _episode(env, seed: int, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Observations (n + 1, dx) and rewards (n,) under actions drawn from `seed`."""
    actions = np.random.default_rng(seed).uniform(-1, 1, (n, env.action_space.shape[0]))
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for a in actions:
        obs, reward, *_ = env.step(a.astype(np.float32))
        observations.append(obs)
        rewards.append(reward)
    return np.array(observations), np.array(rewards)


@pytest.mark.parametrize("task", ["reach", "push"])
def test_env_checker_passes(task):
    env = make_env(task, render_mode="rgb_array")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    # The only acceptable warning: alternative render modes need a registry spec.
    assert [str(w.message) for w in caught if "spec" not in str(w.message)] == []
    env.close()


@pytest.mark.parametrize("task", ["reach", "push"])
@pytest.mark.parametrize("config", [ArmConfig(), ROBUST], ids=["ideal", "noise+backlash+latency"])
def test_same_seed_gives_bit_identical_episodes_whatever_ran_before(task, config):
    fresh = make_env(task, config)
    used = make_env(task, config)
    _episode(used, seed=11)  # a different history must not leak into the next episode
    obs_a, rew_a = _episode(fresh, seed=5)
    obs_b, rew_b = _episode(used, seed=5)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    obs_c, _ = _episode(used, seed=6)
    goal = slice(*obs_layout(task, 5).goal)
    assert not np.array_equal(obs_a[0, goal], obs_c[0, goal])  # another seed, another goal
    fresh.close()
    used.close()


def test_reach_goals_are_reachable_above_the_table_and_success_is_2cm():
    env = ReachEnv(max_steps=60)
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        assert obs.shape == (16,) and obs.dtype == np.float32
        assert env.goal[2] >= MIN_GOAL_HEIGHT and not info["is_success"]
        for _ in range(40):  # drive straight to the sampling configuration, a tick at a time
            a = np.clip((env.goal_q - env.arm.position_target) / 0.1, -1, 1)
            _, reward, terminated, truncated, info = env.step(a.astype(np.float32))
        assert info["distance"] < 0.02 and info["is_success"]
        assert reward == pytest.approx(-info["distance"])
        assert not terminated and not truncated
    env.close()


def test_reach_truncates_at_max_steps_and_rejects_bad_actions():
    env = ReachEnv(max_steps=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(5, np.float32))[3] for _ in range(3)]
    assert flags == [False, False, True]
    with pytest.raises(ValueError, match=r"shape \(4,\); expected \(5,\)"):
        env.step(np.zeros(4))
    with pytest.raises(ValueError, match="NaN/Inf"):
        env.step(np.full(5, np.nan))
    env.close()


def test_actions_are_scaled_increments_of_the_previous_command():
    env = ReachEnv(ArmConfig(max_increment=0.05), init_noise=0.0)
    env.reset(seed=0)
    start = env.arm.position_target
    env.step(np.array([1.0, -1.0, 0.5, 2.0, 0.0], np.float32))  # 2.0 is clipped to 1
    np.testing.assert_allclose(env.arm.position_target - start, [0.05, -0.05, 0.025, 0.05, 0])
    env.close()


def test_increments_cannot_wind_up_against_the_table():
    # Drive the tip down into the table for 40 ticks: unbounded increments of the previous
    # command ran 1.5 rad away from the blocked arm; with either base the command now stays
    # within one increment of the measured q (next_command, as on the ROS controller).
    down = np.array([0.0, 1.0, 1.0, 0.0, 0.0], np.float32)  # shoulder and elbow forward
    gaps = {}
    for mode in ("command", "measured"):
        env = ReachEnv(increment_from=mode, init_noise=0.0)
        env.reset(seed=0)
        for _ in range(40):
            env.step(down)
        gaps[mode] = np.abs(env.arm.position_target - env.arm.joint_positions()).max()
        env.close()
    assert max(gaps.values()) <= 1.05 * env.config.max_increment, gaps
    with pytest.raises(ValueError, match="increment_from"):
        ReachEnv(increment_from="target")


def test_push_layout_success_and_falling_off_the_table():
    env = PushEnv()
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        assert obs.shape == (25,)  # 21 + the cube velocity (4)
        cube = env.arm.cube_pose()[0]
        assert 0.04 - 1e-9 <= np.linalg.norm(env.goal[:2] - cube[:2]) <= 0.10 + 1e-9
        assert env.goal[2] == pytest.approx(CUBE_SIZE / 2)
        np.testing.assert_allclose(obs[10:13], env.arm.ee_position(), atol=1e-6)
        np.testing.assert_allclose(obs[13:16], cube, atol=1e-6)
    env.arm.set_cube_pose(env.goal + np.array([0.02, 0.0, 0.0]))
    _, _, terminated, _, info = env.step(np.zeros(5, np.float32))
    assert info["is_success"] and info["distance"] < 0.03 and not terminated
    env.arm.set_cube_pose([3 * env.arm.reach, 0.0, 0.02])  # beyond the table's edge
    for _ in range(10):
        *_, terminated, _, _ = env.step(np.zeros(5, np.float32))
    assert terminated
    env.close()


def test_a_shoved_cube_slides_as_far_as_its_friction_says():
    # Bullet multiplies the cube's and the table's friction; the table's 1.0 makes the cube's
    # 0.5 the effective coefficient: a 0.5 m/s shove slides v^2 / (2 mu g) = 2.5 cm (at the
    # table's default 0.5 it slid twice as far, too far for a quasi-static push model).
    env = PushEnv()
    env.reset(seed=0, options={"cube": [0.25, 0.0, CUBE_SIZE / 2], "q": env.arm.home})
    start = env.arm.cube_pose()[0]
    env.arm.client.resetBaseVelocity(env.arm.cube, [0.5, 0.0, 0.0], [0.0, 0.0, 0.0])
    for _ in range(20):  # 1 s: the arm holds still at home, far above the cube
        env.step(np.zeros(5, np.float32))
    slide = env.arm.cube_pose()[0][0] - start[0]
    assert 0.018 < slide < 0.033, slide
    env.close()


def test_env_save_restore_replays_the_rest_of_the_episode():
    env = make_env("push", ROBUST)
    env.reset(seed=2)
    actions = np.random.default_rng(0).uniform(-1, 1, (20, 5)).astype(np.float32)
    for a in actions[:5]:
        env.step(a)
    state = env.unwrapped.save_state()
    first = [env.step(a) for a in actions[5:]]
    env.unwrapped.restore_state(state)
    second = [env.step(a) for a in actions[5:]]
    for (o1, r1, *_), (o2, r2, *_) in zip(first, second, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2
    env.close()


def test_reset_options_and_render():
    env = make_env("reach", render_mode="rgb_array")
    obs, _ = env.reset(seed=0, options={"goal": [0.2, 0.0, 0.1], "q": np.zeros(5)})
    np.testing.assert_allclose(obs[-3:], [0.2, 0.0, 0.1])
    np.testing.assert_allclose(obs[:5], 0.0, atol=1e-9)
    frame = env.render()
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    with pytest.raises(ValueError, match="unknown task 'fly'"):
        make_env("fly")
    env.close()


def test_reach_on_another_urdf_by_configuration_alone():
    env = make_env("reach", load_arm_config(CONFIG_DIR / "arm_iiwa.yaml"))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2 * 7 + 6,) and env.goal[2] >= MIN_GOAL_HEIGHT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped)
    env.close()

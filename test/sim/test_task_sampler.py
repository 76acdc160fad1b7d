"""The shared episode sampler (mbrl.costs.tasks): env.reset(seed=s) starts exactly the
episode the ROS-free sampler draws for s, so both drivers evaluate on the same goals."""

from __future__ import annotations

import numpy as np
import pytest

from mbrl.agents.arm import ArmModel
from mbrl.config import ArmConfig
from mbrl.costs.tasks import EVAL_SEED, distance, obs_layout, observation, yaw_of_quaternion
from mbrl.sim.tasks import make_env


@pytest.mark.parametrize("task", ["reach", "push"])
def test_env_reset_is_the_sampler_episode(task):
    sampler = ArmModel.from_config(ArmConfig()).sampler(task)
    env = make_env(task)
    try:
        for seed in (0, 7, EVAL_SEED + 3):
            obs, _ = env.reset(seed=seed)
            spec = sampler.episode(seed)
            layout = obs_layout(task, 5)
            np.testing.assert_allclose(obs[layout.goal[0] : layout.goal[1]], spec.goal, atol=1e-6)
            np.testing.assert_allclose(obs[:5], spec.q0, atol=0.02)  # settles under gravity
            if task == "push":
                pos, quat = env.unwrapped.arm.cube_pose()
                np.testing.assert_allclose(pos[:2], spec.cube[:2], atol=1e-4)
                assert yaw_of_quaternion(quat) == pytest.approx(spec.cube_yaw, abs=1e-4)
                # the env's observation and the ROS-free builder agree on the layout
                q, qd, ee = obs[:5], obs[5:10], obs[10:13]
                # (the cube was just placed: its velocity estimate is zero)
                yaw = yaw_of_quaternion(quat)
                rebuilt = observation(task, q, qd, ee, spec.goal, pos, yaw, np.zeros(4))
                np.testing.assert_allclose(rebuilt, obs, atol=1e-5)
                assert distance(task, obs, 5) == pytest.approx(np.linalg.norm(pos - spec.goal))
        # held-out episodes are a fixed list, different from each other
        goals = np.array([s.goal for s in sampler.held_out(5)])
        assert len(np.unique(goals.round(6), axis=0)) == 5
        np.testing.assert_array_equal(goals, np.array([s.goal for s in sampler.held_out(5)]))
    finally:
        env.close()


def test_sampler_reach_matches_pybullet_and_fails_loudly():
    arm = ArmModel.from_config(ArmConfig())
    env = make_env("reach")
    try:
        assert arm.fk.reach == pytest.approx(env.unwrapped.arm.reach, rel=1e-6)
    finally:
        env.close()
    with pytest.raises(ValueError, match="task 'lift' unknown"):
        arm.sampler("lift")
    with pytest.raises(ValueError, match="needs the cube"):
        observation("push", np.zeros(5), np.zeros(5), np.zeros(3), np.zeros(3))

"""The push observation's optional extras (cube velocity, commanded joints): appended after
the goal, so everything up to the goal is unchanged, and equal to what Bullet holds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mbrl.sim.tasks import make_env


def test_push_extras_follow_the_goal_and_report_cube_velocity_and_command():
    plain = make_env("push", increment_from="measured")
    rich = make_env("push", increment_from="measured", object_velocity=True, command_in_obs=True)
    nj = len(rich.arm.joint_names)
    layout = rich.extras_layout()
    assert layout == {
        "object_velocity": (2 * nj + 11, 2 * nj + 15),
        "command": (2 * nj + 15, 3 * nj + 15),
    }
    assert rich.observation_space.shape == (3 * nj + 15,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(rich)
    obs_p, _ = plain.reset(seed=4)
    obs_r, _ = rich.reset(seed=4)
    np.testing.assert_array_equal(obs_r[: 2 * nj + 11], obs_p)
    # Shove the cube in both envs: it slides with no contact, which only the extras show.
    for env in (plain, rich):
        env.arm.client.resetBaseVelocity(env.arm.cube, [0.3, 0.0, 0.0], [0.0, 0.0, 2.0])
    zero = np.zeros(nj)
    for tick in range(5):
        obs_p = plain.step(zero)[0]
        obs_r = rich.step(zero)[0]
        np.testing.assert_array_equal(obs_r[: 2 * nj + 11], obs_p)
        lin, ang = rich.arm.client.getBaseVelocity(rich.arm.cube)
        v = obs_r[slice(*layout["object_velocity"])]
        np.testing.assert_allclose(v, [*lin, ang[2]], rtol=1e-5, atol=1e-7)
        if tick == 0:
            assert v[0] > 0.05  # still sliding after one 50 ms tick
        np.testing.assert_allclose(
            obs_r[slice(*layout["command"])], rich.arm.position_target, rtol=1e-6
        )
    plain.close()
    rich.close()


def test_discard_state_frees_a_snapshot():
    env = make_env("push")
    env.reset(seed=1)
    sid = env.save_state()
    env.discard_state(sid)
    with pytest.raises(KeyError, match=str(sid)):
        env.restore_state(sid)
    env.close()

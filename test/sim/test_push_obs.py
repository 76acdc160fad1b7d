"""The push observation's extras (cube velocity, commanded joints): appended after the goal,
so everything up to the goal is unchanged; the velocity is Bullet's or, by default, the
difference of the observed poses (what a pose topic allows, mbrl.costs.tasks.CubeVelocity)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mbrl.costs.tasks import object_velocity_span, obs_size
from mbrl.sim.tasks import make_env


def test_push_extras_follow_the_goal_and_report_cube_velocity_and_command():
    plain = make_env("push", increment_from="measured", object_velocity=False)
    rich = make_env(
        "push",
        increment_from="measured",
        object_velocity=True,
        velocity_source="bullet",
        command_in_obs=True,
    )
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


def test_push_velocity_is_on_by_default_and_differences_the_observed_poses():
    env = make_env("push", increment_from="measured")
    nj = len(env.arm.joint_names)
    period = env.unwrapped.config.control_period
    assert env.observation_space.shape == (2 * nj + 15,) == (obs_size("push", nj),)
    span = slice(*object_velocity_span(nj))
    obs, _ = env.reset(seed=4)
    np.testing.assert_array_equal(obs[span], 0.0)  # the cube was just placed
    env.arm.client.resetBaseVelocity(env.arm.cube, [0.3, 0.0, 0.0], [0.0, 0.0, 2.0])
    rows = [obs]
    for _ in range(5):
        rows.append(env.step(np.zeros(nj))[0])
        yaw_now = np.arctan2(rows[-1][2 * nj + 6], rows[-1][2 * nj + 7])
        yaw_before = np.arctan2(rows[-2][2 * nj + 6], rows[-2][2 * nj + 7])
        move = (rows[-1][2 * nj + 3 : 2 * nj + 6] - rows[-2][2 * nj + 3 : 2 * nj + 6]) / period
        np.testing.assert_allclose(rows[-1][span][:3], move, atol=2e-4)  # float32 poses
        np.testing.assert_allclose(rows[-1][span][3], (yaw_now - yaw_before) / period, atol=5e-3)
    assert rows[1][span][0] > 0.05  # the shove shows in the first tick's estimate
    # A snapshot keeps the last pose: the tick after a restore estimates as before.
    sid = env.save_state()
    after = env.step(np.zeros(nj))[0]
    env.restore_state(sid)
    np.testing.assert_allclose(env.step(np.zeros(nj))[0][span], after[span], atol=1e-6)
    env.close()


def test_discard_state_frees_a_snapshot():
    env = make_env("push")
    env.reset(seed=1)
    sid = env.save_state()
    env.discard_state(sid)
    with pytest.raises(KeyError, match=str(sid)):
        env.restore_state(sid)
    env.close()

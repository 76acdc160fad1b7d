"""Push model state options (mbrl.models.push_features): the columns pick the documented
observation blocks, the derived inputs are the tip in the cube's frame, and AugmentedModel
keeps the planner's state while its inner ensemble sees the derived inputs."""

from __future__ import annotations

import numpy as np
import torch

from mbrl.config import ArmConfig
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.models.push_features import AugmentedModel, PushFeatures
from mbrl.sim.tasks import make_env


def test_columns_pick_the_documented_blocks_of_the_push_observation():
    nj = 5
    # Today's push model state: q, ee, cube, sin/cos yaw.
    np.testing.assert_array_equal(PushFeatures().columns(nj), np.r_[0:nj, 2 * nj : 2 * nj + 8])
    full = PushFeatures(joint_velocities=True, object_velocity=True, command=True)
    env = make_env("push", **full.env_kwargs())
    obs, _ = env.reset(seed=0)
    x = obs[full.columns(nj)]
    lay, extras = full.layout(nj), env.extras_layout()
    np.testing.assert_array_equal(x[:nj], obs[:nj])
    np.testing.assert_array_equal(x[nj : 2 * nj], obs[nj : 2 * nj])
    np.testing.assert_array_equal(x[slice(*lay.ee)], env.arm.ee_position().astype(np.float32))
    np.testing.assert_array_equal(x[slice(*lay.obj)], obs[2 * nj + 3 : 2 * nj + 6])
    np.testing.assert_array_equal(x[-nj - 4 : -nj], obs[slice(*extras["object_velocity"])])
    np.testing.assert_array_equal(x[-nj:], obs[slice(*extras["command"])])
    assert full.object_columns(nj)[:3] == tuple(range(*lay.obj))
    env.close()


def test_tip_in_the_cube_frame_rotates_with_the_cube():
    f = PushFeatures(tip_in_object_frame=True)
    nj = 5
    x = torch.zeros(1, nj + 8, dtype=torch.float64)
    x[0, nj : nj + 3] = torch.tensor([0.1, 0.0, 0.05])  # tip
    x[0, nj + 3 : nj + 6] = torch.tensor([0.0, 0.0, 0.02])  # cube centre
    yaw = np.pi / 2  # cube turned 90 deg: the world +x is the cube's -y
    x[0, nj + 6], x[0, nj + 7] = np.sin(yaw), np.cos(yaw)
    torch.testing.assert_close(
        f.derive(x, nj), torch.tensor([[0.0, -0.1, 0.03]], dtype=torch.float64)
    )


def test_augmented_model_plans_on_the_push_state():
    arm = ArmConfig()
    nj = len(arm.joint_names)
    f = PushFeatures(joint_velocities=True, tip_in_object_frame=True, commanded_tip=True)
    dx = len(f.columns(nj))
    inner = ProbabilisticEnsemble(dx + f.n_derived, nj + f.n_action_derived, 5, (16,))
    fk = ForwardKinematics(arm.urdf, arm.ee_link, tuple(arm.joint_names))
    model = AugmentedModel(inner, f, nj, fk, arm.max_increment)
    assert (model.dx, model.du, model.ensemble_size) == (dx, nj, 5)
    x = torch.zeros(10, dx)
    u = torch.zeros(10, nj)
    assert model.step(x, u, "ts1", torch.Generator().manual_seed(0)).shape == (10, dx)
    mean, var = model.predict(x.numpy(), u.numpy())
    assert mean.shape == var.shape == (10, dx)

"""Algorithm 3 end to end on a tiny budget: one random episode, one MPC episode on the learned
ensemble; MPC on the learned model must beat the random base policy it started from."""

from __future__ import annotations

import numpy as np

from mbrl.agents.arm import ArmModel
from mbrl.agents.mpc import MPCActor, MPCLearner, model_columns
from mbrl.loop.common import ExperimentConfig, RunRecorder, make_task_env
from mbrl.loop.mpc_loop import run_mpc
from mbrl.loop.presets import preset


def test_mpc_on_learned_model_improves_over_random_start(tmp_path):
    config = ExperimentConfig(
        algo="mpc", seed=1, budget_steps=100, episode_steps=50, eval_goals=5, out_dir=str(tmp_path)
    )
    summary = run_mpc(config, RunRecorder(config, verbose=False))
    curve = summary["curve"]
    assert [r["env_steps"] for r in curve] == [0, 50, 100]
    # Start: the random base policy. After 100 real steps: MPC on the learned ensemble.
    assert summary["final_distance"] < 0.5 * summary["start_final_distance"], curve
    assert summary["final_distance"] < 0.06, curve
    run = tmp_path / "mpc-reach-s1"
    assert len(list((run / "episodes").glob("*.mcap"))) == 2
    assert (run / "checkpoints" / "ensemble_final.npz").exists() and (run / "data.npz").exists()


def test_model_state_and_fit_on_push():
    env = make_task_env("push", 0, max_steps=10)
    try:
        params = preset("mpc", "push", {"fit_max_epochs": 3})
        learner = MPCLearner("push", 5, params, seed=0)
        # q, qdot, ee, cube, sin/cos yaw and (after the goal) the cube velocity and yaw rate
        assert list(model_columns("push", 5)) == [*range(0, 18), *range(21, 25)]
        assert learner.model.fit_config.loss == "mse"
        obs, _ = env.reset(seed=2)
        rng = np.random.default_rng(0)
        obs_list, acts = [obs], []
        for _ in range(10):
            acts.append(rng.uniform(-1, 1, 5))
            obs_list.append(env.step(acts[-1])[0])
        report = learner.fit([(np.array(obs_list), np.array(acts))])
        assert report.num_transitions == 10 and learner.model.dx == 22
        arm = ArmModel.from_config(env.unwrapped.config)
        actor = MPCActor("push", arm, learner.model, params)
        plan = actor.plan(obs)
        np.testing.assert_allclose(actor.cost.goal.numpy(), env.unwrapped.goal, atol=1e-6)
        # The push preset keeps pushes gentle: planned actions stay inside +-0.35.
        assert plan.actions.shape == (15, 5) and np.all(np.abs(plan.actions) <= 0.35 + 1e-6)
        assert actor.cost.config.approach_offset > 0 and actor.cost.config.min_tip_height > 0
    finally:
        env.close()


def test_push_fit_batch_grows_with_the_data():
    env = make_task_env("push", 0, max_steps=10)
    try:
        params = preset("mpc", "push", {"fit_max_epochs": 1, "fit_batches_per_epoch": 20})
        learner = MPCLearner("push", 5, params, seed=0)
        rng = np.random.default_rng(0)

        def episode(n):
            obs = rng.normal(size=(n + 1, env.observation_space.shape[0]))
            return obs, rng.uniform(-1, 1, (n, 5))

        learner.fit([episode(100)])
        assert learner.model.fit_config.batch_size == params["fit_batch_size"]  # 100 / 20 < 32
        learner.fit([episode(100)] * 20)
        assert learner.model.fit_config.batch_size == 2000 // 20
    finally:
        env.close()

"""Algorithms 1 and 2 of the seed (the "model-based RL version 0.5 / 1.0" loops; Levine,
CS285 lecture 11): plan a whole episode open loop on a learned model.

Algorithm 1: run the random base policy for the budget, fit the model, plan open loop.
Algorithm 2: after one random episode, iterate: plan open loop, execute the whole plan,
add the data, refit. Plans cover `planner_config.horizon` steps; the rest of the episode
holds the last command (zero increments). Both use the model/cost of mpc_loop.TaskModel.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch

from mbrl.loop.common import ExperimentConfig, RunRecorder, evaluate, make_task_env
from mbrl.loop.common import train_reset_seed as _train_seed
from mbrl.loop.env_loop import EnvironmentLoop, RandomActor
from mbrl.loop.mpc_loop import TaskModel, eval_random, record
from mbrl.loop.presets import preset


class OpenLoopActor:
    """Plans once from the first observation of an episode, then replays the plan blindly
    (Actor for EnvironmentLoop and controller for `evaluate`)."""

    def __init__(self, task_model: TaskModel, stream: int = 0) -> None:
        self.tm = task_model
        self.planner = task_model.planner(stream=stream)
        self._plan: np.ndarray | None = None  # (H, nj) actions
        self._t = 0

    def reset(self) -> None:
        self._plan, self._t = None, 0

    def act(self, obs: np.ndarray, env: gymnasium.Env | None = None) -> np.ndarray:
        if self._plan is None:
            self.tm.set_goal_from(obs)
            self.planner.reset()
            self._plan = self.planner.plan(self.tm.state(obs)).actions
        t, self._t = self._t, self._t + 1
        return self._plan[t].copy() if t < len(self._plan) else np.zeros(self.tm.nj)

    def observe_first(self, obs: np.ndarray, env: gymnasium.Env) -> None:
        self.reset()

    def select_action(self, obs: np.ndarray) -> np.ndarray:
        return self.act(obs)

    def observe(self, action: np.ndarray, next_obs: np.ndarray, reward: float) -> None:
        pass

    def update(self) -> None:
        pass


def _run(config: ExperimentConfig, recorder: RunRecorder, algo: str) -> dict[str, Any]:
    torch.set_num_threads(1)
    params = preset(algo, config.task, config.algo_params)
    # Algorithm 1 never acts with the model while learning: every training episode is random.
    n_random = config.num_episodes if algo == "alg1" else params["random_episodes"]
    env = make_task_env(config.task, config.seed, max_steps=config.episode_steps)
    tm = TaskModel(env, config.task, params, config.seed)
    rng = np.random.default_rng(config.seed)
    start = eval_random(config, tm.nj)
    recorder.log(
        env_steps=0, success_rate=start["success_rate"], final_distance=start["final_distance"]
    )
    history: list[tuple[np.ndarray, np.ndarray]] = []
    steps = 0
    try:
        for k in range(config.num_episodes):
            if k < n_random:
                actor = RandomActor(tm.nj, rng, params["random_smoothing"])
            else:
                actor = OpenLoopActor(tm, stream=k)
            ep = EnvironmentLoop(env, actor).run_episode(
                seed=_train_seed(rng),
                max_steps=min(config.episode_steps, config.budget_steps - steps),
            )
            steps += ep.steps
            history.append((ep.obs, ep.actions))
            record(recorder, env, k, ep)
            report = tm.fit(history)
            if (k + 1) % config.eval_every == 0 or k == config.num_episodes - 1:
                result = evaluate(
                    env, OpenLoopActor(tm, stream=10_000 + k), n_goals=config.eval_goals
                )
                recorder.log(
                    env_steps=steps,
                    success_rate=result["success_rate"],
                    final_distance=result["final_distance"],
                    train_final_distance=ep.final_distance,
                    fit_seconds=report.seconds,
                )
        recorder.checkpoint(tm.model, "ensemble_final")
        recorder.save_data(tm.dataset(history))
    finally:
        env.close()
    return recorder.finish(
        start_success_rate=start["success_rate"], start_final_distance=start["final_distance"]
    )


def run_alg1(config: ExperimentConfig, recorder: RunRecorder) -> dict[str, Any]:
    """Algorithm 1: random data for the whole budget, fit, plan open loop (evaluated after
    every `eval_every` episodes on the data so far)."""
    return _run(config, recorder, "alg1")


def run_alg2(config: ExperimentConfig, recorder: RunRecorder) -> dict[str, Any]:
    """Algorithm 2: random first episode, then plan / execute the whole plan / refit."""
    return _run(config, recorder, "alg2")

"""Algorithms 1 and 2 of the seed (the "model-based RL version 0.5 / 1.0" loops; Levine,
CS285 lecture 11): plan a whole episode open loop on a learned model.

Algorithm 1: run the random base policy for the budget, fit the model, plan open loop.
Algorithm 2: after one random episode, iterate: plan open loop, execute the whole plan,
add the data, refit. Plans cover `planner_config.horizon` steps; the rest of the episode
holds the last command (zero increments). Both use the MPC learner and actor's planner
(mbrl.agents.mpc) and the shared schedule.
"""

from __future__ import annotations

from typing import Any

from mbrl.agents.mpc import MPCLearner, make_actor
from mbrl.agents.registry import explore_episodes
from mbrl.loop.common import ExperimentConfig, RunRecorder, torch_threads
from mbrl.loop.mpc_loop import EnvBackend
from mbrl.loop.presets import preset
from mbrl.loop.schedule import run_schedule


def _run(config: ExperimentConfig, recorder: RunRecorder, algo: str) -> dict[str, Any]:
    params = preset(algo, config.task, config.algo_params)
    n_random = explore_episodes(algo, params, config.num_episodes)
    with torch_threads(1):
        backend = EnvBackend(config, recorder, params)
        try:
            learner = backend.learner = MPCLearner(config.task, backend.arm.nj, params, config.seed)
            backend.make_actor = lambda stream: make_actor(
                algo, config.task, backend.arm, learner.model, params, config.seed, stream
            )
            recorder.save_params(params)
            summary, history = run_schedule(backend, config, recorder, explore_episodes=n_random)
            recorder.checkpoint(learner.model, "ensemble_final")
            recorder.save_data(learner.dataset(history))
        finally:
            backend.close()
    return summary


def run_alg1(config: ExperimentConfig, recorder: RunRecorder) -> dict[str, Any]:
    """Algorithm 1: random data for the whole budget, fit, plan open loop (evaluated after
    every `eval_every` episodes on the data so far)."""
    return _run(config, recorder, "alg1")


def run_alg2(config: ExperimentConfig, recorder: RunRecorder) -> dict[str, Any]:
    """Algorithm 2: random first episode, then plan / execute the whole plan / refit."""
    return _run(config, recorder, "alg2")

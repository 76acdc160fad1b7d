"""Algorithm 4 in one process: the shared schedule (mbrl.loop.schedule) over a gymnasium
env, with the agent layer's policy learner and actor (mbrl.agents.policy) — the same
objects the fitter and controller nodes host.

Uniformly random actions for the first `random_episodes` episodes, then the policy; after
each episode a fresh ensemble on all data and more training of the (persistent) policy
through it; evaluation of the policy on the held-out episodes.
"""

from __future__ import annotations

from typing import Any

from mbrl.agents.policy import PolicyActor, PolicyLearner
from mbrl.agents.presets import preset
from mbrl.loop.common import ExperimentConfig, RunRecorder, torch_threads
from mbrl.loop.mpc_loop import EnvBackend
from mbrl.loop.schedule import run_schedule


def run_policy(config: ExperimentConfig, recorder: RunRecorder) -> dict[str, Any]:
    """Algorithm 4 driver (mbrl.loop.registry "policy"); reach task only."""
    if config.task != "reach":
        raise ValueError(f"policy (Alg. 4) is implemented for reach only, got {config.task!r}")
    params = preset("policy", config.task, config.algo_params)
    with torch_threads(1):
        backend = EnvBackend(config, recorder, params)
        try:
            learner = PolicyLearner(config.task, backend.arm, params, config.seed)
            backend.learner = learner
            backend.make_actor = lambda stream: PolicyActor(learner.policy)
            recorder.save_params(params)
            summary, history = run_schedule(
                backend, config, recorder, explore_episodes=params["random_episodes"]
            )
            recorder.checkpoint(learner.policy, "policy_final")
            if learner.model is not None:
                recorder.checkpoint(learner.model, "ensemble_final")
            recorder.save_data(learner.dataset(history))
        finally:
            backend.close()
    return summary

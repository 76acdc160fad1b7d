"""PILCO in one process: the shared schedule (mbrl.loop.schedule) over a gymnasium env with
the agent layer's PILCO learner and actor (mbrl.agents.pilco), the same objects the fitter
and controller nodes host.

One episode of uniformly random actions; then after every episode the GPs are refitted on
all transitions and a policy is optimised for each goal run next (the next training goal,
and the held-out goals when an evaluation follows); evaluation runs each held-out goal's
policy (docs/pilco.md).
"""

from __future__ import annotations

from typing import Any

from mbrl.agents.pilco import PilcoActor, PilcoLearner
from mbrl.agents.pilco_params import with_schedule
from mbrl.agents.presets import ParamError, preset
from mbrl.data.dataset import TransitionDataset
from mbrl.loop.common import ExperimentConfig, RunRecorder, torch_threads
from mbrl.loop.mpc_loop import EnvBackend
from mbrl.loop.schedule import run_schedule


def pilco_params(config: ExperimentConfig) -> dict[str, Any]:
    """The ("pilco", task) preset with the run's overrides and the run's schedule."""
    if config.task != "reach":
        raise ValueError(f"pilco is implemented for the reach task only, got {config.task!r}")
    try:
        overrides = with_schedule(
            config.algo_params,
            budget_steps=config.budget_steps,
            episode_steps=config.episode_steps,
            eval_goals=config.eval_goals,
            eval_every=config.eval_every,
        )
    except ValueError as exc:
        raise ParamError(
            f"{exc} (set them with --eval-goals, --eval-every, --budget-steps)"
        ) from exc
    return preset("pilco", config.task, overrides)


def run_pilco(config: ExperimentConfig, recorder: RunRecorder) -> dict[str, Any]:
    """PILCO driver (mbrl.loop.registry "pilco"); reach task only."""
    params = pilco_params(config)
    with torch_threads(1):
        backend = EnvBackend(config, recorder, params)
        try:
            learner = PilcoLearner(config.task, backend.arm, params, config.seed)
            backend.learner = learner
            backend.make_actor = lambda stream: PilcoActor(learner.policies)
            recorder.save_params(params)
            summary, history = run_schedule(
                backend, config, recorder, explore_episodes=params["random_episodes"]
            )
            recorder.checkpoint(learner.policies, "pilco_policy_final")
            if learner.model is not None:
                recorder.checkpoint(learner.model.dynamics, "gp_final")
                if learner.model.ee is not None:
                    recorder.checkpoint(learner.model.ee, "ee_gp_final")
            recorder.save_data(TransitionDataset.from_episodes(*zip(*history, strict=True)))
        finally:
            backend.close()
    return summary

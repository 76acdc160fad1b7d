"""Algorithm 3 (MPC, PETS-style; Chua et al. 2018, Alg. 1) in one process: the shared
schedule (mbrl.loop.schedule) over a gymnasium env, with the agent layer's MPC learner and
actor (mbrl.agents.mpc) — the same objects the ROS graph hosts in its nodes.

A random first episode, then MPC on the learned ensemble, replanning on every step; one
refit on all data after each episode; evaluation on the held-out episodes.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from mbrl.agents.arm import ArmModel
from mbrl.agents.explore import SmoothedRandom
from mbrl.agents.mpc import MPCActor, MPCLearner, pending_in_obs
from mbrl.loop.common import ExperimentConfig, RunRecorder, make_task_env, torch_threads
from mbrl.loop.env_loop import EnvironmentLoop, EpisodeResult, PolicyActor
from mbrl.loop.presets import preset
from mbrl.loop.schedule import EpisodeOutcome, Trajectory, run_schedule


def record(recorder: RunRecorder, env: gymnasium.Env, index: int, ep: EpisodeResult) -> None:
    """Store one real episode in the run directory."""
    arm, cfg = env.unwrapped.arm, env.unwrapped.config
    recorder.record_episode(
        index, ep.obs, ep.actions, arm.joint_names, ep.goal, 1.0 / cfg.control_rate_hz
    )


def outcome(ep: EpisodeResult) -> EpisodeOutcome:
    return EpisodeOutcome(ep.obs, ep.actions, ep.steps, ep.final_distance, ep.success)


class EnvBackend:
    """The schedule's backend in one process: episodes in a gymnasium env of the task, the
    explorer and an actor factory for mode control, a learner for fits.

    Args:
        config: the run; recorder: stores each training episode; params: the preset.
    """

    def __init__(self, config: ExperimentConfig, recorder: RunRecorder, params: dict[str, Any]):
        self.config, self.recorder, self.params = config, recorder, params
        env = dict(params.get("env", {}))
        if pending_in_obs(params):  # the model state holds the pending motion
            env["pending_in_obs"] = True
        self.env = make_task_env(
            config.task, config.seed, config.arm, max_steps=config.episode_steps, **env
        )
        self.arm = ArmModel.from_config(self.env.unwrapped.config)
        self.learner: Any = None  # set by the driver: fit(trajectories) -> FitReport
        self.make_actor: Any = None  # set by the driver: stream -> policy (reset, act)
        self.explorer = SmoothedRandom(
            self.arm.nj, np.random.default_rng(config.seed), params["random_smoothing"]
        )
        self._evals = 0

    def run_episode(self, mode: str, seed: int, steps: int, index: int | None) -> EpisodeOutcome:
        if mode == "explore":
            policy = self.explorer
        else:
            stream = index if index is not None else 10_000 + self._evals
            policy = self.make_actor(stream)
        if index is None:
            self._evals += 1
        ep = EnvironmentLoop(self.env, PolicyActor(policy)).run_episode(seed=seed, max_steps=steps)
        if index is not None:
            record(self.recorder, self.env, index, ep)
        return outcome(ep)

    def fit(self, trajectories: list[Trajectory], index: int) -> dict[str, float]:
        report = self.learner.fit(trajectories)
        scalars = {k: float(v) for k, v in report.extra.items()
                   if isinstance(v, (int, float)) and k != "epochs"}  # fmt: skip
        return {
            "fit_seconds": report.seconds,
            "holdout_mse": float(np.mean(report.extra["holdout_mse"])),
            **scalars,
        }

    def close(self) -> None:
        self.env.close()


def run_mpc(config: ExperimentConfig, recorder: RunRecorder) -> dict[str, Any]:
    """Algorithm 3: PETS-style MPC with a refit after each episode."""
    params = preset("mpc", config.task, config.algo_params)
    with torch_threads(1):  # small batches: one thread is fastest on a shared 2-core box
        backend = EnvBackend(config, recorder, params)
        try:
            learner = backend.learner = MPCLearner(config.task, backend.arm.nj, params, config.seed)
            backend.make_actor = lambda stream: MPCActor(
                config.task, backend.arm, learner.model, params, config.seed, stream
            )
            recorder.save_params(params)
            summary, history = run_schedule(
                backend, config, recorder, explore_episodes=params["random_episodes"]
            )
            recorder.checkpoint(learner.model, "ensemble_final")
            recorder.save_data(learner.dataset(history))
        finally:
            backend.close()
    return summary

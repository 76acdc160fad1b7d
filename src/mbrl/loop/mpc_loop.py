"""Algorithm 3 (MPC, PETS-style; Chua et al. 2018, Alg. 1): a random first episode, then
replan on every step with a sampling planner on the learned probabilistic ensemble, execute
the first action, and refit every `refit_every` steps. Also the model/cost/planner
plumbing Algorithms 1-2 share (`TaskModel`).

Model state (what the ensemble predicts): reach: q (nj) rad, the end effector comes from FK
of q in the cost; push: [q, ee (3), cube (3), sin/cos cube yaw (2)] (cube and tip in the
state so the model can learn contact). The goal is constant and lives in the cost.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium
import numpy as np
import torch

from mbrl.control.anytime import AnytimeMPC
from mbrl.control.cem import CEMConfig, CEMPlanner
from mbrl.control.icem import ICEMConfig, ICEMPlanner
from mbrl.control.mppi import MPPIConfig, MPPIPlanner
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.costs.push import PushCost, PushCostConfig
from mbrl.costs.reach import ReachCost, StateLayout
from mbrl.data.dataset import TransitionDataset
from mbrl.loop.common import ExperimentConfig, RunRecorder, evaluate, make_task_env, obs_layout
from mbrl.loop.common import train_reset_seed as _train_seed
from mbrl.loop.env_loop import EnvironmentLoop, EpisodeResult, RandomActor
from mbrl.loop.presets import preset
from mbrl.models.base import FitReport
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.models.ensemble_fit import FitConfig

PLANNERS = {
    "icem": (ICEMConfig, ICEMPlanner),
    "cem": (CEMConfig, CEMPlanner),
    "mppi": (MPPIConfig, MPPIPlanner),
}


def model_columns(task: str, nj: int) -> np.ndarray:
    """Indices of the observation that form the model state (see the module docstring)."""
    if task == "reach":
        return np.arange(nj)
    if task == "push":
        return np.r_[0:nj, 2 * nj : 2 * nj + 8]
    raise ValueError(f"task {task!r} unknown; expected 'reach' or 'push'")


class TaskModel:
    """The learned ensemble over the model state, the task cost on it, and planner factories.

    Args:
        env: the task env (for joint limits, the URDF and nj).
        task: "reach" or "push".
        params: a preset (mbrl.loop.presets) with the ensemble and planner keys.
        seed: seeds the ensemble init, the fit and the planners' torch Generators.
    """

    def __init__(self, env: gymnasium.Env, task: str, params: dict[str, Any], seed: int) -> None:
        arm, cfg = env.unwrapped.arm, env.unwrapped.config
        self.task, self.params, self.seed = task, params, seed
        self.nj = len(arm.joint_names)
        self.columns = model_columns(task, self.nj)
        self.goal_span = obs_layout(task, self.nj).goal
        fit = FitConfig(
            lr=params["fit_lr"],
            weight_decay=params["fit_weight_decay"],
            batch_size=params["fit_batch_size"],
            max_epochs=params["fit_max_epochs"],
            patience=params["fit_patience"],
            holdout_fraction=params["fit_holdout_fraction"],
        )
        self.model = ProbabilisticEnsemble(
            len(self.columns),
            self.nj,
            params["ensemble_size"],
            tuple(params["hidden"]),
            num_elites=params["num_elites"],
            fit_config=fit,
            seed=seed,
        )
        self.rng = np.random.default_rng(seed)
        self.fits = 0
        fk = ForwardKinematics(cfg.urdf, cfg.ee_link, tuple(cfg.joint_names))
        nj = self.nj
        if task == "reach":
            layout = StateLayout(q=(0, nj))
            self.cost = ReachCost(layout, fk, lower=arm.lower, upper=arm.upper)
        else:
            layout = StateLayout(q=(0, nj), ee=(nj, nj + 3), obj=(nj + 3, nj + 6))
            config = PushCostConfig(**params.get("cost", {}))
            self.cost = PushCost(layout, fk, lower=arm.lower, upper=arm.upper, config=config)

    def state(self, obs: np.ndarray) -> np.ndarray:
        """obs (..., dobs) -> model state (..., dx) float32."""
        return np.asarray(obs, dtype=np.float32)[..., self.columns]

    def set_goal_from(self, obs: np.ndarray) -> None:
        """The goal (3,) m is the last part of every task observation."""
        self.cost.set_goal(np.asarray(obs, float)[self.goal_span[0] : self.goal_span[1]])

    def dataset(self, episodes: list[tuple[np.ndarray, np.ndarray]]) -> TransitionDataset:
        """episodes: (obs (T_k+1, dobs), actions (T_k, nj)) pairs -> transitions of the state."""
        kept = [(o, a) for o, a in episodes if len(a) > 0]
        return TransitionDataset.from_episodes(
            [self.state(o) for o, _ in kept], [np.asarray(a, float) for _, a in kept]
        )

    def fit(self, episodes: list[tuple[np.ndarray, np.ndarray]]) -> FitReport:
        """Refit (warm-started from the current weights) on every transition so far.

        The minibatch grows with the data (n / fit_batches_per_epoch rows, at least
        fit_batch_size) so that an epoch costs about the same at 500 and at 10k transitions.
        """
        self.fits += 1
        data = self.dataset(episodes)
        per_epoch = self.params.get("fit_batches_per_epoch", 0)
        if per_epoch > 0:
            batch = max(self.params["fit_batch_size"], len(data) // per_epoch)
            self.model.fit_config = dataclasses.replace(self.model.fit_config, batch_size=batch)
        return self.model.fit(data, rng=self.rng, progress=False)

    def planner(self, overrides: dict[str, Any] | None = None, stream: int = 0):
        """A fresh planner of the preset's kind and budget (plus `overrides`) on the model."""
        kind = self.params["planner"]
        if kind not in PLANNERS:
            raise ValueError(f"planner {kind!r} unknown; expected one of {sorted(PLANNERS)}")
        config_cls, planner_cls = PLANNERS[kind]
        config = config_cls(**{**self.params["planner_config"], **(overrides or {})})
        gen = torch.Generator().manual_seed(self.seed * 1000 + stream)
        return planner_cls(self.model, self.cost, self.nj, config, generator=gen)


class MPCActor:
    """Replans every step on the current model (Actor for EnvironmentLoop and `evaluate`).

    While `learning`, it keeps the transitions of the running episode and refits every
    `refit_every` steps on `history` (earlier episodes) plus the running one.
    """

    def __init__(
        self,
        task_model: TaskModel,
        history: list[tuple[np.ndarray, np.ndarray]] | None = None,
        refit_every: int = 0,
        stream: int = 0,
    ) -> None:
        self.tm = task_model
        self.mpc = AnytimeMPC(task_model.planner(stream=stream), task_model.nj)
        self.history, self.refit_every = history, refit_every
        self._obs: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []

    # -- evaluate() controller interface ------------------------------------------------------
    def reset(self) -> None:
        self.mpc.reset()

    def act(self, obs: np.ndarray, env: gymnasium.Env | None = None) -> np.ndarray:
        self.tm.set_goal_from(obs)
        return self.mpc.act(self.tm.state(obs))

    # -- Actor --------------------------------------------------------------------------------
    def observe_first(self, obs: np.ndarray, env: gymnasium.Env) -> None:
        self.reset()
        self._obs, self._actions = [obs], []

    def select_action(self, obs: np.ndarray) -> np.ndarray:
        return self.act(obs)

    def observe(self, action: np.ndarray, next_obs: np.ndarray, reward: float) -> None:
        self._actions.append(action)
        self._obs.append(next_obs)

    def update(self) -> None:
        n = len(self._actions)
        if self.history is not None and self.refit_every > 0 and n % self.refit_every == 0:
            self.tm.fit([*self.history, (np.asarray(self._obs), np.asarray(self._actions))])


def record(recorder: RunRecorder, env: gymnasium.Env, index: int, ep: EpisodeResult) -> None:
    """Store one real episode in the run directory."""
    arm, cfg = env.unwrapped.arm, env.unwrapped.config
    recorder.record_episode(
        index, ep.obs, ep.actions, arm.joint_names, ep.goal, 1.0 / cfg.control_rate_hz
    )


def eval_random(config: ExperimentConfig, du: int, **env_kwargs: Any) -> dict[str, Any]:
    """The starting point: the random base policy on the held-out goals."""
    actor = RandomActor(du, np.random.default_rng(config.seed))
    return evaluate(
        lambda: make_task_env(
            config.task, config.seed, max_steps=config.episode_steps, **env_kwargs
        ),
        lambda obs, env: actor.select_action(obs),
        n_goals=config.eval_goals,
    )


def run_mpc(config: ExperimentConfig, recorder: RunRecorder) -> dict[str, Any]:
    """Algorithm 3: PETS-style MPC with refits; evaluates after every `eval_every` episodes."""
    torch.set_num_threads(1)  # small batches: one thread is fastest on a shared 2-core box
    params = preset("mpc", config.task, config.algo_params)
    env_kwargs = params.get("env", {})
    env = make_task_env(config.task, config.seed, max_steps=config.episode_steps, **env_kwargs)
    tm = TaskModel(env, config.task, params, config.seed)
    rng = np.random.default_rng(config.seed)
    history: list[tuple[np.ndarray, np.ndarray]] = []
    start = eval_random(config, tm.nj, **env_kwargs)
    recorder.log(
        env_steps=0, success_rate=start["success_rate"], final_distance=start["final_distance"]
    )
    steps = 0
    try:
        for k in range(config.num_episodes):
            if k < params["random_episodes"]:
                actor = RandomActor(tm.nj, rng, params["random_smoothing"])
            else:
                actor = MPCActor(tm, history, params["refit_every"], stream=k)
            loop = EnvironmentLoop(env, actor)
            ep = loop.run_episode(
                seed=_train_seed(rng),
                max_steps=min(config.episode_steps, config.budget_steps - steps),
            )
            steps += ep.steps
            history.append((ep.obs, ep.actions))
            record(recorder, env, k, ep)
            report = tm.fit(history)
            last = k == config.num_episodes - 1
            if (k + 1) % config.eval_every == 0 or last:
                result = evaluate(env, MPCActor(tm, stream=10_000 + k), n_goals=config.eval_goals)
                recorder.log(
                    env_steps=steps,
                    success_rate=result["success_rate"],
                    final_distance=result["final_distance"],
                    train_final_distance=ep.final_distance,
                    fit_seconds=report.seconds,
                    holdout_mse=float(np.mean(report.extra["holdout_mse"])),
                )
        recorder.checkpoint(tm.model, "ensemble_final")
        recorder.save_data(tm.dataset(history))
    finally:
        env.close()
    return recorder.finish(
        start_success_rate=start["success_rate"], start_final_distance=start["final_distance"]
    )

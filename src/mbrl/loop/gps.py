"""Guided policy search (MDGPS; Montgomery & Levine 2016) on the arm tasks, in one process.

The learner and the actors are mbrl.agents.gps's, the same the fitter and controller nodes
host; this driver runs the GPS schedule on the env (docs/gps.md). Each iteration: for every
training condition (an episode seed), `samples` episodes of its local controller with
exploration from the controller's own covariance; then one learner fit (dynamics with the
GMM prior, KL-bounded LQG C-step per condition, S-step of the global policy). Logged per
iteration: the two numbers the papers report, the local controllers' success on their own
training conditions and the global policy's on the held-out goals.
"""

from __future__ import annotations

import json
from typing import Any

import gymnasium
import numpy as np
import torch

from mbrl.agents.arm import ArmModel
from mbrl.agents.gps import (  # noqa: F401 (GPSConfig, PRESETS, gps_config: their old home)
    PRESETS,
    GlobalPolicyActor,
    GPSConfig,
    GPSLearner,
    LocalActor,
    condition_seeds,
    gps_config,
)
from mbrl.data.dataset import TransitionDataset
from mbrl.loop.common import ExperimentConfig, RunRecorder, evaluate, make_task_env


def rollout(
    env: gymnasium.Env, seed: int, actor: Any, T: int
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """One real episode of `seed` with `actor` (reset, set_goal, act). Returns observations
    (T+1, dobs), the applied actions (T, du), the final task distance (m) and the final
    joints' smallest margin to a hard limit (rad). If the env terminates early (cube off the
    table) the last observation is repeated with zero actions, so every episode has T steps
    for the time-varying fit."""
    obs, info = env.reset(seed=seed)
    actor.reset()
    actor.set_goal(np.asarray(env.unwrapped.goal, float))
    du = env.action_space.shape[0]
    O, U = [obs], []
    done = False
    for _ in range(T):
        if done:
            O.append(O[-1])
            U.append(np.zeros(du))
            continue
        u = actor.act(np.asarray(obs, float))
        obs, _, terminated, truncated, info = env.step(u)
        O.append(obs)
        U.append(u)
        done = terminated or truncated
    arm = env.unwrapped.arm
    q = np.asarray(O[-1][: len(arm.joint_names)], float)
    margin = float(np.min(np.minimum(q - arm.lower, arm.upper - q)))
    return np.asarray(O, float), np.asarray(U, float), float(info["distance"]), margin


def run_gps(config: ExperimentConfig, recorder: RunRecorder) -> dict[str, Any]:
    """MDGPS driver (module docstring); returns recorder.finish(...)."""
    torch.set_num_threads(1)
    T = config.episode_steps
    rng = np.random.default_rng(config.seed)
    env = make_task_env(config.task, int(rng.integers(2**31)), config.arm, max_steps=T)
    base = env.unwrapped
    arm = ArmModel.from_config(base.config)
    params = {"condition_seed": config.seed, **config.algo_params}
    learner = GPSLearner(config.task, arm, params, int(rng.integers(2**31)), T)
    gcfg = learner.config
    threshold = base.success_threshold
    per_iter = len(learner.seeds) * gcfg.samples * T
    if per_iter > config.budget_steps:
        raise ValueError(
            f"gps: one iteration needs conditions*samples*episode_steps = {per_iter} steps; "
            f"budget_steps is {config.budget_steps}"
        )
    policy_actor = GlobalPolicyActor(learner.policy, config.task, arm.nj, gcfg.action_limit)

    def act(obs: np.ndarray, _env: Any) -> np.ndarray:
        return policy_actor.act(obs)

    def eval_env():
        return make_task_env(config.task, config.seed, config.arm, max_steps=T)

    # The starting point: the untrained global policy (zero output: the arm holds still).
    ev = evaluate(eval_env, act, n_goals=config.eval_goals)
    recorder.log(env_steps=0, success_rate=ev["success_rate"], final_distance=ev["final_distance"])
    trajectories: list[tuple[np.ndarray, np.ndarray]] = []
    per_condition: list[dict[str, list[float]]] = []  # local_conditions.json, per iteration
    env_steps, episode = 0, 0
    dt = 1.0 / env.metadata["render_fps"]
    while env_steps + per_iter <= config.budget_steps:
        # 1. samples from the local controllers (the actor the controller node runs)
        local_actor = LocalActor(learner.controllers(), rng)
        finals, margins = np.zeros((len(learner.seeds), gcfg.samples)), []
        for i, seed in enumerate(learner.seeds):
            for s in range(gcfg.samples):
                obs, u, dist, margin = rollout(env, seed, local_actor, T)
                recorder.record_episode(episode, obs, u, arm.joint_names, learner.goals[i], dt)
                episode += 1
                trajectories.append((obs, u))
                finals[i, s] = dist
            margins.append(margin)
        env_steps += per_iter
        # 2.-4. dynamics, C-step, S-step
        report = learner.fit(trajectories)
        # Diagnostic only (no learning uses it, so not in the budget, like the evaluation):
        # the global policy's mean on the training conditions, against the local controllers.
        policy_actor.policy = learner.policy
        policy_train = [rollout(env, seed, policy_actor, T)[2] for seed in learner.seeds]
        ev = evaluate(eval_env, act, n_goals=config.eval_goals)
        per_condition.append(
            {
                "final_distance": finals.mean(1).tolist(),
                "success": (finals < threshold).mean(1).tolist(),
                # how close the final joints came to a hard limit (rad): a controller pinned
                # there has left the region its linear dynamics describe
                "joint_limit_margin": margins,
                "policy_distance": [float(d) for d in policy_train],
            }
        )
        (recorder.run_dir / "local_conditions.json").write_text(json.dumps(per_condition) + "\n")
        # every iteration's controllers and policy (small files), for stepping through a run
        n = learner.iterations
        recorder.checkpoint(learner.policy, f"global_policy_it{n:02d}")
        recorder.checkpoint(learner.controllers(), f"local_controllers_it{n:02d}")
        recorder.log(
            env_steps=env_steps,
            success_rate=ev["success_rate"],
            final_distance=ev["final_distance"],
            local_final_distance=float(finals.mean()),
            local_success=float(np.mean(finals < threshold)),
            policy_train_distance=float(np.mean(policy_train)),
            **{k: v for k, v in report.extra.items() if k != "new_episodes"},
        )
    env.close()
    recorder.checkpoint(learner.policy, "global_policy")
    recorder.checkpoint(learner.controllers(), "local_controllers")
    if trajectories:
        recorder.save_data(
            TransitionDataset.from_episodes(
                [o for o, _ in trajectories], [u for _, u in trajectories]
            )
        )
    return recorder.finish(
        iterations=learner.iterations, conditions=len(learner.seeds), samples=gcfg.samples
    )


def run_gps_schedule(
    backend: Any,
    config: ExperimentConfig,
    recorder: RunRecorder,
    params: dict[str, Any],
    *,
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[tuple[np.ndarray, np.ndarray]]]:
    """The GPS schedule over a backend (mbrl.loop.schedule.Backend; the ROS experiment node's
    GraphBackend): per iteration, `samples` episodes of every training condition (episode
    seeds condition_seeds(condition_seed, conditions), as the fitter's learner draws them),
    then one fit. The first iteration explores (the controller's explorer: before the first
    fit there are no local controllers to run); later ones run the local controllers.
    Logged per iteration: the local controllers' success and final distance on their own
    training conditions (success_rate / final_distance here; the global policy is not run
    through the graph). Returns (summary, trajectories)."""
    g = gps_config(config.task, params)
    T = config.episode_steps
    if g.horizon != T:
        raise ValueError(
            f"gps: the agent's horizon {g.horizon} must equal the schedule's episode_steps {T}"
        )
    seeds = condition_seeds(g.condition_seed, g.conditions)
    per_iter = len(seeds) * g.samples * (T + 1)
    iterations = config.budget_steps // per_iter
    if iterations < 1:
        raise ValueError(
            f"gps: one iteration needs conditions*samples*episode_steps = {per_iter} steps; "
            f"budget_steps is {config.budget_steps}"
        )
    history: list[tuple[np.ndarray, np.ndarray]] = []
    steps, index = 0, 0
    for it in range(iterations):
        mode = "explore" if it == 0 else "control"
        finals, wins = [], []
        for seed in seeds:
            for _ in range(g.samples):
                # one tick more than T: a graph recording can lack the last state
                outcome = backend.run_episode(mode, seed, T + 1, index)
                index += 1
                steps += outcome.ticks
                history.append((outcome.obs, outcome.actions))
                finals.append(outcome.final_distance)
                wins.append(outcome.success)
        metrics = backend.fit(history, index - 1)
        recorder.log(
            env_steps=steps,
            success_rate=float(np.mean(wins)),
            final_distance=float(np.mean(finals)),
            iteration=it + 1,
            **metrics,
        )
    more = {k: v() if callable(v) else v for k, v in (extra or {}).items()}
    summary = recorder.finish(
        real_steps=steps,
        iterations=iterations,
        conditions=len(seeds),
        samples=g.samples,
        measured_on="the local controllers' own training conditions",
        **more,
    )
    return summary, history

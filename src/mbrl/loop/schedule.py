"""The one learning schedule both drivers run: evaluate the starting point, then per
training episode explore or control, fit on everything so far, and evaluate on the
held-out episodes every `eval_every` episodes, never spending more than the step budget.

The schedule owns the arithmetic (which mode, which seed, budget accounting, what is
logged); a *backend* owns the world: `mbrl.loop` runs episodes in a gymnasium env in this
process, the ROS experiment node runs them through the graph's topics and services.
Episodes are named by seeds: the backend turns a seed into an episode start with the shared
sampler (mbrl.costs.tasks.TaskSampler), so held-out episode i is the same in both drivers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np

from mbrl.costs.tasks import EVAL_SEED, tip_to_object, train_seed
from mbrl.loop.common import ExperimentConfig, RunRecorder

Trajectory = tuple[np.ndarray, np.ndarray]  # obs (T+1, dobs), actions (T, nj)
MODES = ("explore", "control")


@dataclasses.dataclass
class EpisodeOutcome:
    """One episode as the schedule sees it.

    Attributes:
        obs: (T+1, dobs) task observations; actions: (T, nj) the actions taken.
        ticks: real control steps spent (what the budget counts; >= T on a graph that
            sent a command or two more than it recorded).
        final_distance: m, at the last observation (EE or cube to goal).
        success: final_distance below the task's threshold, and the episode not failed.
    """

    obs: np.ndarray
    actions: np.ndarray
    ticks: int
    final_distance: float
    success: bool


class Backend(Protocol):
    """What a driver gives the schedule."""

    def run_episode(self, mode: str, seed: int, steps: int, index: int | None) -> EpisodeOutcome:
        """Run episode `seed` for `steps` ticks in `mode` ("explore" or "control");
        `index` is the training episode's number, None for an evaluation (not recorded,
        nothing learned)."""
        ...

    def fit(self, trajectories: list[Trajectory], index: int) -> dict[str, float]:
        """Learn from every training trajectory so far; returns metrics to log."""
        ...


def evaluate(
    backend: Backend, n_goals: int, steps: int, mode: str = "control", task: str = "reach"
) -> dict[str, Any]:
    """`mode` on the n held-out episodes (seeds EVAL_SEED + i), `steps` ticks each.

    Returns success_rate, final_distance (mean, m), for push final_tip_to_cube (mean m from
    the tip to the cube at the end), and the per-episode lists.
    """
    outcomes = [backend.run_episode(mode, EVAL_SEED + i, steps, None) for i in range(n_goals)]
    distances = [o.final_distance for o in outcomes]
    successes = [bool(o.success) for o in outcomes]
    out = {
        "success_rate": float(np.mean(successes)),
        "final_distance": float(np.mean(distances)),
        "distances": distances,
        "successes": successes,
    }
    if task == "push":
        nj = outcomes[0].actions.shape[1] if len(outcomes[0].actions) else 0
        tips = [float(tip_to_object(task, o.obs[-1], nj)) for o in outcomes]
        out["final_tip_to_cube"] = float(np.mean(tips))
    return out


def _scalars(result: dict[str, Any]) -> dict[str, float]:
    """The per-run scalars of an evaluation (what metrics.csv logs beyond success/distance)."""
    return {k: v for k, v in result.items() if k == "final_tip_to_cube"}


def run_schedule(
    backend: Backend,
    config: ExperimentConfig,
    recorder: RunRecorder,
    *,
    explore_episodes: int,
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[Trajectory]]:
    """Run the whole schedule of `config`; returns (recorder.finish()'s summary, the training
    trajectories).

    The first `explore_episodes` training episodes explore; the others control with the
    latest artifact. The starting point (mode explore, nothing learned) is evaluated first
    and logged at 0 steps. `extra` goes into the summary (callables are called at the end).
    """
    rng = np.random.default_rng(config.seed)
    task = config.task
    start = evaluate(backend, config.eval_goals, config.episode_steps, "explore", task)
    recorder.log(
        env_steps=0,
        success_rate=start["success_rate"],
        final_distance=start["final_distance"],
        **_scalars(start),
    )
    history: list[Trajectory] = []
    steps = 0
    for k in range(config.num_episodes):
        length = min(config.episode_steps, config.budget_steps - steps)
        if length <= 0:
            break
        mode = "explore" if k < explore_episodes else "control"
        outcome = backend.run_episode(mode, train_seed(rng), length, k)
        steps += outcome.ticks
        history.append((outcome.obs, outcome.actions))
        metrics = backend.fit(history, k)
        last = k == config.num_episodes - 1 or steps >= config.budget_steps
        if (k + 1) % config.eval_every == 0 or last:
            result = evaluate(backend, config.eval_goals, config.episode_steps, "control", task)
            recorder.log(
                env_steps=steps,
                success_rate=result["success_rate"],
                final_distance=result["final_distance"],
                train_final_distance=outcome.final_distance,
                **_scalars(result),
                **metrics,
            )
        if last:
            break
    more = {k: v() if callable(v) else v for k, v in (extra or {}).items()}
    summary = recorder.finish(
        real_steps=steps,
        start_success_rate=start["success_rate"],
        start_final_distance=start["final_distance"],
        **more,
    )
    return summary, history

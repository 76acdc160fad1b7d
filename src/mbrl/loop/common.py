"""The seam every learning-loop driver shares: experiment config, run recorder, evaluation on
held-out goals, and the task envs with their observation layout (docs/loops.md).

A driver is `run(config, recorder) -> summary` (mbrl.loop.registry); it spends at most
`config.budget_steps` real env steps on learning, calls `recorder.log` after each evaluation
and returns `recorder.finish()`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from mbrl.config import ArmConfig
from mbrl.costs.tasks import EVAL_SEED, TASKS, obs_layout
from mbrl.costs.tasks import train_seed as train_reset_seed

__all__ = ["EVAL_SEED", "TASKS", "obs_layout", "train_reset_seed"]  # shared task facts


@dataclasses.dataclass(frozen=True)
class ScheduleSettings:
    """What the shared schedule (mbrl.loop.schedule) spends and evaluates: the fields both
    drivers' configs carry, declared once (`mbrl experiment`'s ExperimentConfig and the
    experiment node's ExperimentNodeConfig).

    Attributes:
        seed: seeds every Generator of the run (training resets, model init, planner noise).
        budget_steps: real steps the learner may use, all training episodes together.
        episode_steps: steps per episode (20 Hz -> 100 steps = 5 s).
        eval_goals: held-out goals per evaluation (seeds EVAL_SEED + i; not in the budget).
        eval_every: evaluate after every N training episodes (and after the last).
        out_dir: runs are written to out_dir/name/.
        name: run name; "" means a name from the algorithm, task and seed.
    """

    seed: int = 0
    budget_steps: int = 500
    episode_steps: int = 100
    eval_goals: int = 20
    eval_every: int = 1
    out_dir: str = "runs"
    name: str = ""

    def check_schedule(self, error: type[Exception] = ValueError) -> None:
        """Raise `error` naming the first count that is not >= 1."""
        for field in ("budget_steps", "episode_steps", "eval_goals", "eval_every"):
            if int(getattr(self, field)) < 1:
                raise error(f"{field} must be >= 1, got {getattr(self, field)!r}")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig(ScheduleSettings):
    """One learning run: the schedule's settings (ScheduleSettings) and

    Attributes:
        algo: driver name, a key of mbrl.loop.registry.DRIVERS ("alg1", "alg2", "mpc",
            "policy", "gps", "pilco"); keyword only.
        task: "reach" or "push" (mbrl.sim.tasks).
        algo_params: per-algorithm overrides of the shipped presets (mbrl.loop.presets).
        arm: the arm file (mbrl.config.ArmConfig, with its servo profile) the envs run.
    """

    algo: str = dataclasses.field(kw_only=True)
    task: str = "reach"
    algo_params: dict = dataclasses.field(default_factory=dict)
    arm: ArmConfig = dataclasses.field(default_factory=ArmConfig)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r} unknown; expected one of {TASKS}")
        self.check_schedule()
        if not self.name:
            object.__setattr__(self, "name", f"{self.algo}-{self.task}-s{self.seed}")

    @property
    def num_episodes(self) -> int:
        """Training episodes the budget allows (the last may be cut short)."""
        return math.ceil(self.budget_steps / self.episode_steps)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def make_task_env(
    task: str, seed: int, arm: ArmConfig | None = None, **kwargs: Any
) -> gymnasium.Env:
    """The `task` env on `arm` (default: the bundled arm; mbrl.sim.make_env); `seed` seeds
    its noise.

    kwargs go to the env (max_steps, success_threshold, ...). pybullet is imported here only,
    so that importing mbrl.loop stays free of the simulator (test/test_layering.py).
    """
    from mbrl.sim.tasks import make_env

    return make_env(task, arm, seed=seed, **kwargs)


Controller = Callable[[np.ndarray, gymnasium.Env], np.ndarray]


def evaluate(
    env_factory: Callable[[], gymnasium.Env] | gymnasium.Env,
    act: Controller | Any,
    *,
    n_goals: int,
    seed: int = EVAL_SEED,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Run a controller on `n_goals` held-out goals, one episode each; no learning, no budget.

    Args:
        env_factory: a callable making the env (closed afterwards) or an env (left open).
        act: `act(obs (dobs,), env) -> action (du,)`, or an object with `reset()` (called
            after each env reset) and `act(obs, env)`.
        n_goals: episodes; episode i resets with seed `seed + i` (same goals for every run).
        max_steps: stop an episode after this many steps (default: the env's truncation).
    Returns:
        success_rate (share of episodes whose FINAL step is a success, i.e. distance below
        the env's success_threshold: 2 cm reach, 3 cm push), final_distance (mean final
        distance, m), and per-goal lists `distances` and `successes`.
    """
    own = not isinstance(env_factory, gymnasium.Env)
    env = env_factory() if own else env_factory
    step_fn = act.act if hasattr(act, "act") else act
    distances, successes = [], []
    try:
        for i in range(n_goals):
            obs, info = env.reset(seed=seed + i)
            if hasattr(act, "reset"):
                act.reset()
            steps, done = 0, False
            while not done:
                obs, _, terminated, truncated, info = env.step(step_fn(obs, env))
                steps += 1
                done = terminated or truncated or (max_steps is not None and steps >= max_steps)
            distances.append(float(info["distance"]))
            successes.append(bool(info["is_success"]) and not terminated)
    finally:
        if own:
            env.close()
    return {
        "success_rate": float(np.mean(successes)),
        "final_distance": float(np.mean(distances)),
        "distances": distances,
        "successes": successes,
    }


class RunRecorder:
    """Writes runs/<name>/: config.json, metrics.csv, learning_curve.png, summary.json,
    episodes/ (one MCAP file per real episode, mbrl.data.episodes), data.npz (the collected
    transitions) and checkpoints/ (model files). Prints one progress line per `log`."""

    def __init__(self, config: ExperimentConfig, *, verbose: bool = True) -> None:
        self.config = config
        self.run_dir = Path(config.out_dir) / config.name
        # episodes/ and checkpoints/ appear with their first file: a graph run's data are
        # the collector's and the fitter's (no empty directories that look like lost data)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        self.rows: list[dict[str, float]] = []
        self.verbose = verbose
        self._start = time.perf_counter()

    def record_episode(
        self,
        episode_index: int,
        obs: np.ndarray,
        actions: np.ndarray,
        joint_names: Sequence[str],
        goal: np.ndarray,
        control_period: float,
    ) -> Path:
        """Store one real episode as MCAP: obs (T+1, dobs) whose first 2 nj columns are q
        (rad) and qdot (rad/s); actions (T, nj), the normalised joint increments in [-1, 1]
        sent to the env (recorded on the command topic; metadata says so); goal (3,) m."""
        from mbrl.data.episodes import EpisodeWriter  # mcap only when episodes are written

        obs, actions = np.asarray(obs, float), np.asarray(actions, float)
        nj = len(joint_names)
        if obs.ndim != 2 or actions.shape != (len(obs) - 1, nj):
            raise ValueError(
                f"episode {episode_index}: obs {obs.shape} and actions {actions.shape}; "
                f"expected (T+1, dobs) and (T, {nj})"
            )
        path = self.run_dir / "episodes" / f"episode_{episode_index:04d}.mcap"
        path.parent.mkdir(exist_ok=True)
        meta = {
            "episode": episode_index,
            "task": self.config.task,
            "algo": self.config.algo,
            "control_period": control_period,
            "command_units": "normalised joint-position increment in [-1, 1]",
        }
        with EpisodeWriter(path, joint_names, meta) as writer:
            writer.write_goal(0.0, np.asarray(goal, float))
            for t, row in enumerate(obs):
                stamp = t * control_period
                writer.write_joint_state(stamp, row[:nj], row[nj : 2 * nj])
                if t < len(actions):
                    writer.write_command(stamp, actions[t])
        return path

    def save_params(self, params: dict[str, Any], name: str = "params.json") -> Path:
        """Write the *effective* parameters of the run (the preset merged with the overrides,
        not only the overrides config.json holds), so a result can be audited and rerun."""
        path = self.run_dir / name
        path.write_text(json.dumps(params, indent=2, default=_jsonable) + "\n")
        return path

    def save_data(self, dataset: Any) -> Path:
        """Write the collected transitions (a TransitionDataset) to data.npz."""
        path = self.run_dir / "data.npz"
        dataset.save(path)
        return path

    def log(
        self, *, env_steps: int, success_rate: float, final_distance: float, **extra: float
    ) -> None:
        """Append one metrics.csv row (rewritten whole, so columns may grow) and print it."""
        row = {
            "env_steps": int(env_steps),
            "success_rate": float(success_rate),
            "final_distance": float(final_distance),
            "wall_seconds": round(time.perf_counter() - self._start, 2),
            **{k: float(v) for k, v in extra.items()},
        }
        self.rows.append(row)
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        with open(self.run_dir / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(self.rows)
        if self.verbose:
            more = " ".join(f"{k}={v:.4g}" for k, v in extra.items())
            print(
                f"[{self.config.name}] steps={row['env_steps']} success={success_rate:.2f} "
                f"final_distance={final_distance:.4f} m t={row['wall_seconds']:.0f}s {more}",
                flush=True,
            )

    def checkpoint(self, model: Any, tag: str) -> Path:
        """model.save(run_dir/checkpoints/<tag>.npz); returns the path."""
        path = self.run_dir / "checkpoints" / f"{tag}.npz"
        path.parent.mkdir(exist_ok=True)
        model.save(path)
        return path

    def finish(self, **extra: Any) -> dict[str, Any]:
        """Write learning_curve.png and summary.json; return the summary (last row, curve)."""
        last = self.rows[-1] if self.rows else {}
        summary = {
            "name": self.config.name,
            "algo": self.config.algo,
            "task": self.config.task,
            "seed": self.config.seed,
            "run_dir": str(self.run_dir),
            "env_steps": last.get("env_steps", 0),
            "success_rate": last.get("success_rate", float("nan")),
            "final_distance": last.get("final_distance", float("nan")),
            "curve": self.rows,
            **extra,
        }
        if self.rows:
            self._plot()
        # summary.json last: its existence says the run is complete (the demo waits on it)
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [r["env_steps"] for r in self.rows]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
        ax1.plot(steps, [r["success_rate"] for r in self.rows], "o-")
        ax1.set(xlabel="real env steps", ylabel="success rate", ylim=(-0.05, 1.05))
        ax2.plot(steps, [r["final_distance"] for r in self.rows], "o-")
        ax2.set(xlabel="real env steps", ylabel="final distance (m)", yscale="log")
        fig.suptitle(self.config.name)
        fig.tight_layout()
        fig.savefig(self.run_dir / "learning_curve.png", dpi=80)
        plt.close(fig)


def _jsonable(value: Any) -> Any:
    """JSON for what configs hold beside plain types: tuples, numpy scalars, dataclasses."""
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with `n` torch intra-op threads, restoring the previous count after.

    Small matrices (policy and GP work) run faster on one thread than on two on a shared
    2-core machine.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

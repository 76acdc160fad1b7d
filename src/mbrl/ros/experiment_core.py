"""What the experiment node computes without ROS: its config, the goals it sets, and the
arrays of one observed episode (the same layout the CLI's RunRecorder stores).

The node (mbrl.ros.experiment) only moves messages; the schedule's arithmetic lives here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from mbrl.config import ArmConfig, ConfigError
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.loop.common import EVAL_SEED, ExperimentConfig

MIN_GOAL_HEIGHT = 0.02  # m above the table, as mbrl.sim.tasks


@dataclasses.dataclass(frozen=True)
class ExperimentNodeConfig:
    """Settings of node `experiment` (config/experiment.yaml; docs/ros_interface.md).

    Attributes:
        arm: the arm (joint names, URDF for limits and FK, rate, max_increment).
        seed: seeds the training goals (evaluation goals use a fixed seed, EVAL_SEED).
        budget_steps: real control ticks the learner may use, all training episodes.
        episode_steps: ticks per episode (20 Hz -> 100 ticks = 5 s).
        explore_episodes: first training episodes in controller mode `explore`.
        eval_goals: held-out goals per evaluation (not in the budget).
        eval_every: evaluate after every N training episodes (and after the last).
        success_threshold: final end-effector distance counted as success, m.
        out_dir / name: the run report goes to out_dir/name/ (name "" = ros-mpc-reach-s<seed>).
        lockstep: the sim advances one period per command (mbrl.ros.sim_node mode lockstep):
            after a reset the node sends one hold command so the controller sees a new state.
        reset_service: std_srvs/Trigger that puts the arm home before each episode
            ("" = none: a real arm starts each episode where the last one ended).
        controller_node / fitter_node / collector_node: node names whose services,
            parameters and /diagnostics reports are used.
        controller_name: ros2_control position controller; commands are read (and the
            lockstep hold is sent) on /<controller_name>/commands.
        frame_id: frame of the published goals.
        timeout: s to wait for any one answer of another node before giving up.
        exit_when_done: stop the node after the report is written.
    """

    arm: ArmConfig = dataclasses.field(default_factory=ArmConfig)
    seed: int = 0
    budget_steps: int = 300
    episode_steps: int = 100
    explore_episodes: int = 1
    eval_goals: int = 10
    eval_every: int = 1
    success_threshold: float = 0.02
    out_dir: str = "runs"
    name: str = ""
    lockstep: bool = True
    reset_service: str = "/sim/reset"
    controller_node: str = "mpc_controller"
    fitter_node: str = "model_fitter"
    collector_node: str = "collector"
    controller_name: str = "forward_position_controller"
    frame_id: str = "base_link"
    timeout: float = 300.0
    exit_when_done: bool = False

    def __post_init__(self) -> None:
        for name in ("budget_steps", "episode_steps", "eval_goals", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.explore_episodes < 0 or self.success_threshold <= 0 or self.timeout <= 0:
            raise ConfigError(
                "need explore_episodes >= 0, success_threshold > 0 and timeout > 0; got "
                f"{self.explore_episodes}, {self.success_threshold}, {self.timeout}"
            )

    def experiment_config(self) -> ExperimentConfig:
        """The CLI's run description of this schedule (algorithm 'mpc' on 'reach')."""
        return ExperimentConfig(
            algo="mpc",
            task="reach",
            seed=self.seed,
            budget_steps=self.budget_steps,
            episode_steps=self.episode_steps,
            eval_goals=self.eval_goals,
            eval_every=self.eval_every,
            out_dir=self.out_dir,
            name=self.name or f"ros-mpc-reach-s{self.seed}",
            algo_params={"via": "ros", "explore_episodes": self.explore_episodes},
        )


class GoalSampler:
    """Reachable reach goals: the end effector (3,) m at joint positions drawn uniformly
    within the limits, kept if at least MIN_GOAL_HEIGHT above the table (the rule of
    mbrl.sim.tasks without its PyBullet self-collision check; the sampler has no simulator).

    Args:
        fk: forward kinematics of the arm; lower / upper: (nj,) joint limits, rad.
    """

    def __init__(self, fk: ForwardKinematics, lower: np.ndarray, upper: np.ndarray) -> None:
        self.fk, self.lower, self.upper = fk, np.asarray(lower), np.asarray(upper)

    def ee(self, q: np.ndarray) -> np.ndarray:
        """q (..., nj) rad -> end effector (..., 3) m."""
        with torch.no_grad():
            return self.fk(torch.as_tensor(q, dtype=self.fk.dtype)).double().numpy()

    def sample(self, rng: np.random.Generator, tries: int = 1000) -> np.ndarray:
        """One goal (3,) m; RuntimeError if `tries` draws all end below the table."""
        for _ in range(tries):
            goal = self.ee(rng.uniform(self.lower, self.upper))
            if goal[2] >= MIN_GOAL_HEIGHT:
                return goal
        raise RuntimeError(
            f"no goal above {MIN_GOAL_HEIGHT} m in {tries} draws within the joint limits "
            f"{self.lower.tolist()} .. {self.upper.tolist()}"
        )

    def eval_goals(self, n: int) -> np.ndarray:
        """(n, 3) held-out goals: the same for every run (seed EVAL_SEED), never trained on."""
        rng = np.random.default_rng(EVAL_SEED)
        return np.array([self.sample(rng) for _ in range(n)])


def episode_arrays(
    sampler: GoalSampler,
    q: np.ndarray,
    qdot: np.ndarray,
    commands: np.ndarray,
    goal: np.ndarray,
    max_increment: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One observed episode in the layout of the CLI's episodes (mbrl.sim.tasks ReachEnv).

    Args:
        q, qdot: (T+1, nj) joint states, rad and rad/s, at each tick (row 0 before the first
            command); commands: (T, nj) commanded positions, rad; goal: (3,) m.
        max_increment: rad per tick that the action 1.0 means (ArmConfig.max_increment).
    Returns:
        obs (T+1, 2 nj + 6) = [q, qdot, ee, goal] and actions (T, nj): the commanded
        increments divided by max_increment, the first one relative to the measured q (the
        controller starts an episode from the measured position).
    """
    q, qdot, commands = (np.asarray(a, dtype=float) for a in (q, qdot, commands))
    if q.shape != qdot.shape or commands.shape != (len(q) - 1, q.shape[1]):
        raise ValueError(
            f"episode arrays q {q.shape}, qdot {qdot.shape}, commands {commands.shape}; "
            "expected (T+1, nj), (T+1, nj), (T, nj)"
        )
    previous = np.vstack([q[:1], commands[:-1]])
    actions = (commands - previous) / max_increment
    goals = np.broadcast_to(np.asarray(goal, dtype=float), (len(q), 3))
    return np.hstack([q, qdot, sampler.ee(q), goals]), actions

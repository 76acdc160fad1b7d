"""What the experiment node computes without ROS: its config and the arrays of one observed
episode (the layout of the loop driver's trajectories).

The node (mbrl.ros.experiment) only moves messages; the schedule itself is the one of
mbrl.loop.schedule, and episode starts come from the shared sampler (mbrl.costs.tasks).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from mbrl.agents.config import AgentConfig
from mbrl.config import ArmConfig, ConfigError
from mbrl.costs.tasks import cube_velocities, observation
from mbrl.loop.common import ExperimentConfig, ScheduleSettings
from mbrl.ros.status import FitterStatus

if TYPE_CHECKING:  # (a type only: the nodes check parameters against this config, torch-free)
    from mbrl.agents.arm import ArmModel


@dataclasses.dataclass(frozen=True)
class ExperimentNodeConfig(ScheduleSettings):
    """Settings of node `experiment` (config/experiment.yaml; docs/ros_interface.md): the
    schedule's (mbrl.loop.common.ScheduleSettings: seed, budget_steps, episode_steps,
    eval_goals, eval_every, out_dir, name; the report goes to out_dir/name/, "" =
    ros-<algo>-<task>-s<seed>; the shipped YAML runs 300 steps and 10 goals) and

    Attributes:
        arm: the arm (joint names, URDF for limits and FK, rate, max_increment).
        agent: which algorithm, task and preset overrides the schedule runs (the
            controller and the fitter must be started with the same; mbrl.agents.config).
        timing: the graph's timing switch (graph.yaml); in "lockstep" the sim advances one
            period per command, so after a reset the node sends one hold command for the
            controller to see a new state.
        reset_service: std_srvs/Trigger that puts the arm (and cube) at the episode's start
            ("" = none: a real arm starts each episode where the last one ended).
        sim_node: the node whose reset_q / reset_cube parameters set that start ("" = none).
        controller_node / fitter_node / collector_node: node names whose services,
            parameters and /mbrl/status reports are used.
        controller_name: ros2_control position controller; commands are read (and the
            lockstep hold is sent) on /<controller_name>/commands.
        frame_id: frame of the published goals.
        timeout: s to wait for any one answer of another node before giving up.
        exit_when_done: stop the node after the report is written.
        call_timeout: s one try of a service call may take before it is retried (at most
            the timeout; a lost request or answer must not cost the whole timeout).
        call_tries: tries of each service call before the schedule stops, naming it.
        episode_retries: a recorded episode the collector rejects (a stream missing, e.g.
            no joint states) is run again this many times before the schedule stops.
    """

    arm: ArmConfig = dataclasses.field(default_factory=ArmConfig)
    agent: AgentConfig = dataclasses.field(default_factory=AgentConfig)
    timing: str = "realtime"
    reset_service: str = "/sim/reset"
    sim_node: str = "sim"
    controller_node: str = "mpc_controller"
    fitter_node: str = "model_fitter"
    collector_node: str = "collector"
    controller_name: str = "forward_position_controller"
    frame_id: str = "base_link"
    timeout: float = 300.0
    exit_when_done: bool = False
    call_timeout: float = 10.0
    call_tries: int = 3
    episode_retries: int = 2

    def __post_init__(self) -> None:
        self.check_schedule(ConfigError)
        if self.timing not in ("realtime", "lockstep"):
            raise ConfigError(f"timing must be realtime or lockstep, got {self.timing!r}")
        if self.timeout <= 0 or self.call_timeout <= 0:
            raise ConfigError(
                f"timeout and call_timeout must be > 0 s, got {self.timeout}, {self.call_timeout}"
            )
        if self.call_tries < 1 or self.episode_retries < 0:
            raise ConfigError(
                f"need call_tries >= 1 and episode_retries >= 0; got {self.call_tries}, "
                f"{self.episode_retries}"
            )

    @property
    def lockstep(self) -> bool:
        return self.timing == "lockstep"

    def experiment_config(self) -> ExperimentConfig:
        """The CLI's run description of this schedule."""
        agent = self.agent
        return ExperimentConfig(
            algo=agent.algo,
            task=agent.task,
            seed=self.seed,
            budget_steps=self.budget_steps,
            episode_steps=self.episode_steps,
            eval_goals=self.eval_goals,
            eval_every=self.eval_every,
            out_dir=self.out_dir,
            name=self.name or f"ros-{agent.algo}-{agent.task}-s{self.seed}",
            algo_params=agent.overrides(),
        )


class ScheduleError(RuntimeError):
    """Another node did not answer as the schedule needs (names the node and the wait)."""


def awaited_model(
    seen: int, previous: int, status: FitterStatus | None, failed_before: int, fitter: str
) -> int | None:
    """The fit the schedule requested, as far as it has got: the new model's version once
    one newer than `previous` has been seen, None while it may still come.

    Raises:
        ScheduleError with the fitter's error once the fitter has counted a failed fit
        since the request (`failed_before`) and is idle: no model is coming, and waiting
        for the timeout would only hide why.
    """
    if seen > previous:
        return seen
    if status is not None and status.failed_fits > failed_before and not status.fitting:
        raise ScheduleError(f"{fitter}'s fit failed: {status.last_error}")
    return None


def episode_arrays(
    arm: ArmModel,
    task: str,
    q: np.ndarray,
    qdot: np.ndarray,
    commands: np.ndarray,
    goal: np.ndarray,
    cubes: np.ndarray | None = None,
    action_base: str = "command",
) -> tuple[np.ndarray, np.ndarray]:
    """One observed episode as the schedule's trajectory (the loop driver's layout).

    Args:
        q, qdot: (T+1, nj) joint states, rad and rad/s, at each tick (row 0 before the first
            command); commands: (T, nj) commanded positions, rad; goal: (3,) m.
        cubes: push: (T+1, 4) cube [x, y, z, yaw] at the same ticks.
        action_base: "command": actions are the commanded increments (the first relative to
            the measured q); "measured": relative to the measured q.
    Returns:
        obs (T+1, dobs) of mbrl.costs.tasks and actions (T, nj) divided by max_increment.
    """
    q, qdot, commands = (np.asarray(a, dtype=float) for a in (q, qdot, commands))
    if q.shape != qdot.shape or commands.shape != (len(q) - 1, q.shape[1]):
        raise ValueError(
            f"episode arrays q {q.shape}, qdot {qdot.shape}, commands {commands.shape}; "
            "expected (T+1, nj), (T+1, nj), (T, nj)"
        )
    previous = q[:-1] if action_base == "measured" else np.vstack([q[:1], commands[:-1]])
    actions = (commands - previous) / arm.max_increment
    ee = arm.ee(q)
    # the cube velocity as the controller and the recorded episodes estimate it
    velocity = None if cubes is None else cube_velocities(cubes[:, :3], cubes[:, 3], arm.period)
    rows = []
    for k in range(len(q)):
        cube, yaw = (cubes[k, :3], float(cubes[k, 3])) if cubes is not None else (None, None)
        v = velocity[k] if velocity is not None else None
        rows.append(observation(task, q[k], qdot[k], ee[k], goal, cube, yaw, v))
    return np.array(rows), actions

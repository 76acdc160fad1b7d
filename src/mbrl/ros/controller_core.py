"""What the mpc_controller node computes, without ROS: its config and the bundle of the agent
layer's actor (mbrl.agents.registry: for MPC the model, the task cost and the planners; for
Algorithm 4 the policy; the very objects `mbrl experiment` runs) that is swapped in as one
unit.

Actions u (du = nj) are joint-position increments scaled by arm.max_increment rad and added
to the previous command (or the measured joints, as the agent's preset says), exactly as the
task envs' action (mbrl.sim.tasks), so models learned from the sim envs and from the
controller's own data mean the same thing.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from mbrl.agents.config import AgentConfig
from mbrl.config import ArmConfig, ConfigError

CONTROL_MODES = ("explore", "mpc", "lqr", "policy")
COMMAND_INTERFACES = ("position", "trajectory")
TRIGGERS = ("timer", "joint_states")
TIMINGS = ("realtime", "lockstep")


@dataclasses.dataclass(frozen=True)
class MpcControllerConfig:
    """Settings of node `mpc_controller` (config/mpc_controller.yaml; docs/ros_interface.md).

    Attributes:
        arm: the controlled arm (joint names, URDF for limits and FK, rate, max_increment).
        agent: which actor runs (algorithm, task, preset overrides; mbrl.agents.config): the
            planner, its budget and the cost come from that preset, as in `mbrl experiment`.
        controller_name: position commands go to /<controller_name>/commands.
        trajectory_controller_name: trajectories go to /<name>/joint_trajectory.
        command_interface: "position" (Float64MultiArray) or "trajectory" (JointTrajectory).
        start_enabled: publish commands from the start; false on a real arm (enable with
            the ~/enable service).
        timing: the graph's timing switch (graph.yaml): "lockstep" ticks on every new joint
            state and plans each tick to completion (no deadline: the sim waits, so results
            do not depend on the machine's load); "realtime" ticks as `trigger` says, under
            the deadline.
        trigger: realtime only: "timer" (fixed-rate tick at arm.control_rate_hz) or
            "joint_states" (tick on the first new joint state after each period boundary,
            mbrl.ros.controller_support.AlignedTicks); the timer always runs as the
            watchdog's heartbeat.
        deadline_fraction: realtime: the planner must finish within this fraction of the
            period.
        plan_ahead: realtime, mode mpc: send the command planned on the previous tick (from
            the model's prediction of this tick's state) as soon as the state arrives, then
            plan the next one; the state -> command latency is then a lookup, not a plan. The
            first tick on a new goal or episode sends the zero increment. Lockstep always
            plans on the measured state (the sim waits for it).
        stale_periods: joint states older than this many periods hold the arm.
        max_velocity: speed limit of the commands, rad/s; 0 takes the URDF velocity limits.
        lqr_horizon / lqr_iterations: the iLQR budget of mode lqr.
        explore_scale: mode explore's actions are the agent's explorer's times this factor
            (1 = as in `mbrl experiment`; a real arm's first session may want less).
        goal: default reach goal (3,) m until /mbrl/goal gives one; empty holds the
            end effector where it is at the first joint state.
        standalone: publish /mbrl/goal and /mbrl/episode_control itself (no experiment node).
        episode_ticks: standalone episode length, ticks.
        policy_path: a policy file in the safe model format (mbrl.agents.policy_nets
            save_policy; e.g. a run's checkpoints/policy_final.npz) that mode policy runs
            until the fitter publishes one; empty: mode policy waits for /mbrl/model.
        frame_id: frame of the rviz plan (base of the URDF chain).
        viz_every: publish the plan for rviz every this many ticks (0 = never).
        diagnostics_rate_hz: /diagnostics publishing rate.
        data_dir: the node's own directory for received model files ("" = system temp).
        seed: seeds the planners' and the explorer's generators.
        model_min_transitions: the model gate (mbrl.ros.model_gate): a model fitted on
            fewer transitions is refused.
        model_gate_margin: a new model is refused if its one-step MSE on the controller's
            recent transitions exceeds (1 + this) x the running learned model's.
        model_gate_min_check: recent transitions needed before that comparison runs.
    """

    arm: ArmConfig = dataclasses.field(default_factory=ArmConfig)
    agent: AgentConfig = dataclasses.field(default_factory=AgentConfig)
    controller_name: str = "forward_position_controller"
    trajectory_controller_name: str = "joint_trajectory_controller"
    command_interface: str = "position"
    start_enabled: bool = True
    timing: str = "realtime"
    trigger: str = "timer"
    deadline_fraction: float = 0.6
    plan_ahead: bool = True
    stale_periods: int = 3
    max_velocity: float = 0.0
    lqr_horizon: int = 10
    lqr_iterations: int = 2
    explore_scale: float = 1.0
    goal: tuple[float, ...] = ()
    standalone: bool = False
    episode_ticks: int = 100
    policy_path: str = ""
    frame_id: str = "base_link"
    viz_every: int = 2
    diagnostics_rate_hz: float = 2.0
    data_dir: str = ""
    seed: int = 0
    model_min_transitions: int = 30
    model_gate_margin: float = 0.5
    model_gate_min_check: int = 40

    def __post_init__(self) -> None:
        if self.command_interface not in COMMAND_INTERFACES:
            raise ConfigError(
                f"command_interface must be one of {list(COMMAND_INTERFACES)}, "
                f"got {self.command_interface!r}"
            )
        if self.timing not in TIMINGS:
            raise ConfigError(f"timing must be one of {list(TIMINGS)}, got {self.timing!r}")
        if self.trigger not in TRIGGERS:
            raise ConfigError(f"trigger must be one of {list(TRIGGERS)}, got {self.trigger!r}")
        if not 0.0 < self.deadline_fraction < 1.0:
            raise ConfigError(f"deadline_fraction must be in (0, 1), got {self.deadline_fraction}")
        for name in ("stale_periods", "lqr_horizon", "lqr_iterations", "episode_ticks"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.goal and (len(self.goal) != 3 or not all(math.isfinite(g) for g in self.goal)):
            raise ConfigError(f"goal must be empty or 3 finite numbers (m), got {self.goal}")
        if self.max_velocity < 0 or not 0 <= self.explore_scale <= 1:
            raise ConfigError(
                f"need max_velocity >= 0 and 0 <= explore_scale <= 1; got {self.max_velocity}, "
                f"{self.explore_scale}"
            )
        if self.model_min_transitions < 0 or self.model_gate_min_check < 1:
            raise ConfigError(
                f"need model_min_transitions >= 0 and model_gate_min_check >= 1; got "
                f"{self.model_min_transitions}, {self.model_gate_min_check}"
            )
        if not (self.model_gate_margin >= 0 and math.isfinite(self.model_gate_margin)):
            raise ConfigError(f"model_gate_margin must be >= 0, got {self.model_gate_margin}")
        if self.diagnostics_rate_hz <= 0:
            raise ConfigError(f"diagnostics_rate_hz must be > 0, got {self.diagnostics_rate_hz}")

    @property
    def period(self) -> float:
        return self.arm.control_period

    @property
    def ticks_on_states(self) -> bool:
        """Tick on each new joint state (lockstep always; realtime if trigger says so)."""
        return self.timing == "lockstep" or self.trigger == "joint_states"

    def deadline(self, start: float) -> float | None:
        """The planner's deadline for a tick that started at `start` (None in lockstep)."""
        return None if self.timing == "lockstep" else start + self.deadline_fraction * self.period


class ActorBundle:
    """The agent's actor on one artifact version, with its iLQR feedback planner when the
    actor plans on a model, built off the tick path and swapped in between ticks as one
    reference.

    Args:
        actor: an actor of mbrl.agents.registry (an MPC actor's model must be Linearizable
            for mode lqr; a policy actor has no planner).
        version: artifact version (0 = the known kinematic model or a policy file);
        kind: "known", "ensemble", "policy", ...; cfg: controller config (the iLQR budget).
    """

    def __init__(self, actor: Any, version: int, kind: str, cfg: MpcControllerConfig):
        self.actor, self.version, self.kind = actor, int(version), kind
        planner = getattr(actor, "feedback_planner", None)
        self.lqr = planner(cfg.lqr_horizon, cfg.lqr_iterations) if planner else None

    @property
    def plans(self) -> bool:
        """The actor plans (MPC family: plan(), rviz, deadlines); else it only acts."""
        return hasattr(self.actor, "plan")

    @property
    def mpc(self):
        return self.actor.mpc

    @property
    def goal(self) -> np.ndarray:
        return self.actor.goal

    def set_goal(self, goal: np.ndarray) -> None:
        """New goal (3,) m: the cost changes, so the warm starts are forgotten."""
        self.actor.set_goal(goal)
        if self.lqr is not None:
            self.lqr.reset()

    def reset(self) -> None:
        self.actor.reset()
        if self.lqr is not None:
            self.lqr.reset()

"""What the mpc_controller node computes, without ROS: its config, the model bundle (model,
state layout, cost, planners) that is swapped in as one unit, exploration noise and policies.

Actions u (du = nj) are joint-position increments in [-1, 1] scaled by arm.max_increment rad
and added to the previous command, exactly as ReachEnv's action (mbrl.sim.tasks), so models
learned from the sim envs and from the controller's own data mean the same thing.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from mbrl.config import ArmConfig, ConfigError
from mbrl.control.anytime import AnytimeMPC
from mbrl.control.icem import ICEMPlanner, coloured_noise
from mbrl.control.ilqr import ILQRConfig, ILQRPlanner
from mbrl.control.presets import REALTIME_20HZ
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.costs.reach import ReachCost, StateLayout
from mbrl.models.kinematic import KinematicArmModel

CONTROL_MODES = ("explore", "mpc", "lqr", "policy")
COMMAND_INTERFACES = ("position", "trajectory")
TRIGGERS = ("timer", "joint_states")


@dataclasses.dataclass(frozen=True)
class MpcControllerConfig:
    """Settings of node `mpc_controller` (config/mpc_controller.yaml; docs/ros_interface.md).

    Attributes:
        arm: the controlled arm (joint names, URDF for limits and FK, rate, max_increment).
        controller_name: position commands go to /<controller_name>/commands.
        trajectory_controller_name: trajectories go to /<name>/joint_trajectory.
        command_interface: "position" (Float64MultiArray) or "trajectory" (JointTrajectory).
        start_enabled: publish commands from the start; false on a real arm (enable with
            the ~/enable service).
        trigger: "timer" (fixed-rate tick at arm.control_rate_hz) or "joint_states" (tick
            on every new joint state, the timer still runs as the watchdog's heartbeat).
        deadline_fraction: the planner must finish within this fraction of the period.
        stale_periods: joint states older than this many periods hold the arm.
        max_velocity: speed limit of the commands, rad/s; 0 takes the URDF velocity limits.
        horizon / num_samples / iterations / particles: the iCEM budget of mode mpc
            (defaults: the shipped 20 Hz preset, mbrl.control.presets.REALTIME_20HZ).
        lqr_horizon / lqr_iterations: the iLQR budget of mode lqr.
        explore_std: std of the exploration increments, in action units ([-1, 1]).
        explore_beta: colour of the exploration noise along time (0 white, 2 brown).
        goal: default reach goal (3,) m until /mbrl/goal gives one; empty holds the
            end effector where it is at the first joint state.
        standalone: publish /mbrl/goal and /mbrl/episode_control itself (no experiment node).
        episode_ticks: standalone episode length, ticks.
        policy_path: TorchScript policy file for mode policy (maps the reach observation
            (1, 2 nj + 6) to actions (1, nj)); empty: mode policy holds and reports it.
        frame_id: frame of the rviz plan (base of the URDF chain).
        viz_every: publish the plan for rviz every this many ticks (0 = never).
        diagnostics_rate_hz: /diagnostics publishing rate.
        data_dir: the node's own directory for received model files ("" = system temp).
        seed: seeds the planners' and the explorer's generators.
    """

    arm: ArmConfig = dataclasses.field(default_factory=ArmConfig)
    controller_name: str = "forward_position_controller"
    trajectory_controller_name: str = "joint_trajectory_controller"
    command_interface: str = "position"
    start_enabled: bool = True
    trigger: str = "timer"
    deadline_fraction: float = 0.6
    stale_periods: int = 3
    max_velocity: float = 0.0
    horizon: int = REALTIME_20HZ.horizon
    num_samples: int = REALTIME_20HZ.num_samples
    iterations: int = REALTIME_20HZ.iterations
    particles: int = REALTIME_20HZ.particles
    lqr_horizon: int = 10
    lqr_iterations: int = 2
    explore_std: float = 0.5
    explore_beta: float = 1.0
    goal: tuple[float, ...] = ()
    standalone: bool = False
    episode_ticks: int = 100
    policy_path: str = ""
    frame_id: str = "base_link"
    viz_every: int = 2
    diagnostics_rate_hz: float = 2.0
    data_dir: str = ""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.command_interface not in COMMAND_INTERFACES:
            raise ConfigError(
                f"command_interface must be one of {list(COMMAND_INTERFACES)}, "
                f"got {self.command_interface!r}"
            )
        if self.trigger not in TRIGGERS:
            raise ConfigError(f"trigger must be one of {list(TRIGGERS)}, got {self.trigger!r}")
        if not 0.0 < self.deadline_fraction < 1.0:
            raise ConfigError(f"deadline_fraction must be in (0, 1), got {self.deadline_fraction}")
        for name in (
            "stale_periods",
            "horizon",
            "num_samples",
            "iterations",
            "particles",
            "lqr_horizon",
            "lqr_iterations",
            "episode_ticks",
        ):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.goal and (len(self.goal) != 3 or not all(math.isfinite(g) for g in self.goal)):
            raise ConfigError(f"goal must be empty or 3 finite numbers (m), got {self.goal}")
        if self.max_velocity < 0 or self.explore_std < 0 or self.diagnostics_rate_hz <= 0:
            raise ConfigError("max_velocity, explore_std >= 0 and diagnostics_rate_hz > 0 needed")

    @property
    def period(self) -> float:
        return self.arm.control_period


def arm_limits(arm: ArmConfig, fk: ForwardKinematics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower, upper, velocity) (nj,) rad, rad/s: the URDF's unless the ArmConfig overrides."""
    lower = np.array(arm.position_lower or fk.lower.tolist(), dtype=float)
    upper = np.array(arm.position_upper or fk.upper.tolist(), dtype=float)
    velocity = np.array(arm.velocity_limit or fk.velocity_limit.tolist(), dtype=float)
    return lower, upper, velocity


def state_layout(dx: int, nj: int) -> StateLayout:
    """Where q (and the EE and goal) sit in a model's state of size dx.

    dx = nj: joint positions (the known kinematic model); 2 nj: positions and velocities;
    2 nj + 6: the reach observation [q, qdot, ee, goal] of mbrl.sim.tasks.
    """
    if dx == nj:
        return StateLayout(q=(0, nj))
    if dx == 2 * nj:
        return StateLayout(q=(0, nj))
    if dx == 2 * nj + 6:
        return StateLayout(q=(0, nj), ee=(2 * nj, 2 * nj + 3), goal=(2 * nj + 3, 2 * nj + 6))
    raise ValueError(
        f"model state dimension dx={dx} is none of the layouts the controller builds from "
        f"joint states: {nj} (q), {2 * nj} (q, qdot), {2 * nj + 6} (q, qdot, ee, goal)"
    )


class ModelBundle:
    """A model with everything that depends on it, built off the tick path and swapped in
    between ticks as one reference.

    Args:
        model: a TorchDynamics + Linearizable model with dx, du (du must be nj).
        version: model version (0 = the known kinematic model).
        kind: "known", "ensemble" or "local_lg".
        cfg: controller config; fk: forward kinematics of cfg.arm; lower/upper (nj,) rad.
        goal: (3,) m; generator: planner randomness.
    """

    def __init__(
        self,
        model: Any,
        version: int,
        kind: str,
        cfg: MpcControllerConfig,
        fk: ForwardKinematics,
        lower: np.ndarray,
        upper: np.ndarray,
        goal: np.ndarray,
        generator: torch.Generator,
    ) -> None:
        nj = len(cfg.arm.joint_names)
        if int(model.du) != nj:
            raise ValueError(f"model du={model.du}; the controller commands {nj} joints")
        self.model, self.version, self.kind = model, int(version), kind
        self.nj, self.dx, self.fk = nj, int(model.dx), fk
        self.layout = state_layout(self.dx, nj)
        self.goal = np.asarray(goal, dtype=float)
        self.cost = ReachCost(self.layout, fk, self.goal, lower=lower, upper=upper)
        E = int(getattr(model, "ensemble_size", 1))
        icem = dataclasses.replace(
            REALTIME_20HZ,
            horizon=cfg.horizon,
            num_samples=cfg.num_samples,
            iterations=cfg.iterations,
            action_low=-1.0,
            action_high=1.0,
            nominal_rollout=True,  # Plan.states feed the rviz path
            particles=1 if E == 1 else E * math.ceil(cfg.particles / E),  # ts1 needs P % E == 0
            propagation="mean" if E == 1 else "ts1",
        )
        self.mpc = AnytimeMPC(ICEMPlanner(model, self.cost, nj, icem, generator=generator), nj)
        ilqr = ILQRConfig(
            horizon=cfg.lqr_horizon, iterations=cfg.lqr_iterations, action_low=-1.0, action_high=1.0
        )
        self.lqr = AnytimeMPC(ILQRPlanner(model, self.cost, nj, ilqr), nj)

    def state(self, q: np.ndarray, qdot: np.ndarray) -> np.ndarray:
        """The model state x (dx,) from measured q, qdot (nj,) and the current goal."""
        if self.dx == self.nj:
            return np.asarray(q, dtype=float)
        if self.dx == 2 * self.nj:
            return np.concatenate([q, qdot])
        return reach_observation(self.fk, q, qdot, self.goal)

    def set_goal(self, goal: np.ndarray) -> None:
        """New goal (3,) m: the cost changes, so the warm starts are forgotten."""
        self.goal = np.asarray(goal, dtype=float)
        self.cost.set_goal(self.goal)
        self.mpc.reset()
        self.lqr.reset()

    def ee_points(self, states: np.ndarray) -> np.ndarray:
        """states (T+1, dx) -> (T+1, 3) end-effector positions, m."""
        x = torch.as_tensor(states, dtype=self.fk.dtype)
        with torch.no_grad():
            return self.cost.ee(x).double().numpy()

    def ee_spread(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray | None:
        """(T,) std (m) of the ensemble's predicted EE at each planned step, or None when the
        model has no EE in its state or no uncertainty."""
        if self.layout.ee is None or not hasattr(self.model, "member_predict"):
            return None
        lo, hi = self.layout.ee
        mean, var = self.model.predict(states[:-1], actions)  # (T, dx) each
        return np.sqrt(np.maximum(var[:, lo:hi], 0.0).mean(-1))


def reach_observation(
    fk: ForwardKinematics, q: np.ndarray, qdot: np.ndarray, goal: np.ndarray
) -> np.ndarray:
    """The reach observation [q, qdot, ee, goal] (2 nj + 6,) of mbrl.sim.tasks from q, qdot
    (nj,) rad, rad/s and goal (3,) m; the EE by forward kinematics."""
    with torch.no_grad():
        ee = fk(torch.as_tensor(q, dtype=fk.dtype)).double().numpy()
    return np.concatenate([q, qdot, ee, goal])


def known_model(
    cfg: MpcControllerConfig, lower: np.ndarray, upper: np.ndarray, velocity: np.ndarray
) -> KinematicArmModel:
    """The known kinematic model of the arm: usable before any learned model arrives."""
    return KinematicArmModel(lower, upper, velocity, cfg.arm.max_increment, cfg.period)


class ColouredExplorer:
    """Exploration actions: coloured noise along time (PSD ~ 1/f^beta, as iCEM samples),
    pushed away from joints near their limits so the data do not pile up at the stops.

    Args:
        nj: joints; std: noise std (action units); beta: colour; chunk: steps drawn at once.
        lower / upper: (nj,) rad; margin: rad inside a limit where noise is reflected.
    """

    def __init__(
        self,
        nj: int,
        std: float,
        beta: float,
        lower: np.ndarray,
        upper: np.ndarray,
        generator: torch.Generator,
        chunk: int = 64,
        margin: float = 0.1,
    ) -> None:
        self.nj, self.std, self.beta, self.chunk = nj, std, beta, chunk
        self.lower, self.upper, self.margin = lower, upper, margin
        self.generator = generator
        self._buffer = np.zeros((0, nj))

    def action(self, q: np.ndarray) -> np.ndarray:
        """q (nj,) rad -> u (nj,) in [-1, 1]."""
        if len(self._buffer) == 0:
            noise = coloured_noise(
                self.beta, (1, self.chunk, self.nj), self.generator, torch.float64
            )
            self._buffer = noise[0].numpy()
        u, self._buffer = self._buffer[0] * self.std, self._buffer[1:]
        u = np.where(q > self.upper - self.margin, -np.abs(u), u)
        u = np.where(q < self.lower + self.margin, np.abs(u), u)
        return np.clip(u, -1.0, 1.0)


def load_policy(path: str) -> torch.jit.ScriptModule:
    """A TorchScript policy file (torch.jit.save); ValueError names the file if unreadable."""
    try:
        policy = torch.jit.load(path, map_location="cpu")
    except (RuntimeError, OSError, ValueError) as exc:
        raise ValueError(
            f"policy file {path!r} is not a loadable TorchScript module: {exc}"
        ) from exc
    policy.eval()
    return policy


def policy_action(policy: torch.jit.ScriptModule, obs: np.ndarray, du: int) -> np.ndarray:
    """obs (dx,) -> u (du,) in [-1, 1]; ValueError if the policy's output is not (1, du) finite."""
    with torch.no_grad():
        out = policy(torch.as_tensor(obs, dtype=torch.float32)[None])
    u = np.asarray(out, dtype=float).reshape(-1)
    if u.shape != (du,) or not np.all(np.isfinite(u)):
        raise ValueError(f"policy returned {u.tolist()}; expected {du} finite actions")
    return np.clip(u, -1.0, 1.0)

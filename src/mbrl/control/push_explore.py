"""Exploration that finds contact on the push task: scripted pushes (rise, travel over the
cube, come down behind it, push through it) with smoothed noise, tracked in joint increments
through the FK Jacobian. Random actions touch the cube in ~0.05 % of ticks (issue 12).

Works on the push observation [q, qdot, ee, cube, sin/cos yaw, goal, ...] (mbrl.sim.tasks)
and needs only what a learner has: the URDF (FK), the observed cube and the goal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import torch

from mbrl.costs.kinematics import ForwardKinematics


@dataclasses.dataclass(frozen=True)
class PushExplorerConfig:
    """Shape of the scripted pushes (lengths in m, speeds in m/s).

    Attributes:
        offset: pushing point behind the cube centre, away from the push direction (the push
            cost's approach_offset: half the 4 cm cube plus 1.5 cm).
        push_height: tip height while pushing (the cube centre is at 0.02).
        clearance: travel height above push_height while moving over to the pushing point.
        push_length: (low, high) distance the tip pushes past the cube's start, drawn per push.
        speed: (low, high) commanded tip speed, drawn per push (pushes range from gentle to
            shoves, so the model sees both).
        toward_goal: probability that a push points at the goal (else a uniform direction).
        noise: std of the smoothed action noise, normalised action units.
        smoothing: noise_t = smoothing * noise_{t-1} + sqrt(1 - smoothing^2) * white.
        gain: joint increment per tick = gain * J^+ (tip step); > 1 makes up for the servo
            covering only part of a commanded increment in one tick.
        damping: lambda of the damped least-squares inverse, m.
        action_bound: actions are clipped to +-action_bound.
        tolerance: a waypoint counts as reached within this distance.
        phase_steps: a phase ends after this many ticks even if its waypoint is not reached.
    """

    offset: float = 0.035
    push_height: float = 0.02
    clearance: float = 0.05
    push_length: tuple[float, float] = (0.03, 0.12)
    speed: tuple[float, float] = (0.05, 0.3)
    toward_goal: float = 0.5
    noise: float = 0.1
    smoothing: float = 0.7
    gain: float = 2.0
    damping: float = 0.02
    action_bound: float = 1.0
    tolerance: float = 0.01
    phase_steps: int = 25


class PushExplorer:
    """Actor (observe_first / select_action / observe / update) making contact-rich data.

    Args:
        urdf, ee_link, joint_names: the arm (as in ArmConfig) for forward kinematics.
        max_increment: rad per unit action (ArmConfig.max_increment).
        control_period: s per tick.
        rng: draws directions, lengths, speeds and noise.
        config: see PushExplorerConfig.
    """

    def __init__(
        self,
        urdf: str,
        ee_link: str,
        joint_names: tuple[str, ...],
        max_increment: float,
        control_period: float,
        rng: np.random.Generator,
        config: PushExplorerConfig = PushExplorerConfig(),  # noqa: B008 - frozen
    ) -> None:
        self.fk = ForwardKinematics(urdf, ee_link, tuple(joint_names), dtype=torch.float64)
        self.nj = len(joint_names)
        self.max_increment, self.dt = float(max_increment), float(control_period)
        self.rng, self.config = rng, config
        self._noise = np.zeros(self.nj)
        self._phase, self._ticks = 0, 0
        self._push: dict[str, np.ndarray | float] = {}

    @classmethod
    def for_env(
        cls,
        env,
        rng: np.random.Generator,
        config: PushExplorerConfig = PushExplorerConfig(),  # noqa: B008 - frozen
    ) -> PushExplorer:
        """An explorer for a push env (its ArmConfig gives the URDF, joints and scaling)."""
        c = env.unwrapped.config
        return cls(
            c.urdf, c.ee_link, tuple(c.joint_names), c.max_increment, c.control_period, rng, config
        )

    # -- Actor -------------------------------------------------------------------------------
    def observe_first(self, obs: np.ndarray, env=None) -> None:
        self._noise = np.zeros(self.nj)
        self._phase, self._ticks = 0, 0
        self._new_push(np.asarray(obs, float))

    def select_action(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, float)
        nj, c = self.nj, self.config
        if not self._push:
            self._new_push(obs)
        q, ee = obs[:nj], obs[2 * nj : 2 * nj + 3]
        target = self._waypoint(ee)
        if np.linalg.norm(target - ee) < c.tolerance or self._ticks >= c.phase_steps:
            self._phase, self._ticks = (self._phase + 1) % 4, 0
            if self._phase == 0:
                self._new_push(obs)
            target = self._waypoint(ee)
        self._ticks += 1
        gap = target - ee
        dist = float(np.linalg.norm(gap))
        step = gap * min(1.0, float(self._push["speed"]) * self.dt / max(dist, 1e-9))
        J = self._jacobian(q)  # (3, nj) m/rad
        dq = J.T @ np.linalg.solve(J @ J.T + c.damping**2 * np.eye(3), step)
        white = self.rng.standard_normal(nj)
        self._noise = c.smoothing * self._noise + np.sqrt(1 - c.smoothing**2) * white
        action = c.gain * dq / self.max_increment + c.noise * self._noise
        return np.clip(action, -c.action_bound, c.action_bound)

    def observe(self, action: np.ndarray, next_obs: np.ndarray, reward: float) -> None:
        pass

    def update(self) -> None:
        pass

    # -- evaluate() controller interface -----------------------------------------------------
    def reset(self) -> None:
        self._push = {}
        self._phase, self._ticks = 0, 0

    def act(self, obs: np.ndarray, env=None) -> np.ndarray:
        return self.select_action(obs)

    # -- internals ---------------------------------------------------------------------------
    def _new_push(self, obs: np.ndarray) -> None:
        """Pick a direction (toward the goal or uniform), a length and a speed from the cube's
        current position."""
        nj, c = self.nj, self.config
        cube, goal = obs[2 * nj + 3 : 2 * nj + 6], obs[2 * nj + 8 : 2 * nj + 11]
        to_goal = (goal - cube)[:2]
        if self.rng.random() < c.toward_goal and np.linalg.norm(to_goal) > 1e-6:
            direction = to_goal / np.linalg.norm(to_goal)
        else:
            angle = self.rng.uniform(-np.pi, np.pi)
            direction = np.array([np.cos(angle), np.sin(angle)])
        self._push = {
            "cube": cube[:2].copy(),
            "dir": direction,
            "length": self.rng.uniform(*c.push_length),
            "speed": self.rng.uniform(*c.speed),
        }

    def _waypoint(self, ee: np.ndarray) -> np.ndarray:
        """Phase 0 rise, 1 over the pushing point, 2 down onto it, 3 through the cube."""
        c, p = self.config, self._push
        start = p["cube"] - c.offset * p["dir"]
        high = c.push_height + c.clearance
        if self._phase == 0:
            return np.array([ee[0], ee[1], high])
        if self._phase == 1:
            return np.array([start[0], start[1], high])
        if self._phase == 2:
            return np.array([start[0], start[1], c.push_height])
        end = p["cube"] + p["length"] * p["dir"]
        return np.array([end[0], end[1], c.push_height])

    def _jacobian(self, q: np.ndarray) -> np.ndarray:
        qt = torch.as_tensor(q, dtype=torch.float64)
        return torch.func.jacrev(self.fk)(qt).numpy()


def explore_episodes(
    env, explorer: PushExplorer, seeds: Iterable[int]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One episode per reset seed (taken from `seeds` as each episode starts) until the env
    ends it: [(obs (T+1, dobs), actions (T, nj))]."""
    episodes = []
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        explorer.observe_first(obs)
        observations, actions = [obs], []
        done = False
        while not done:
            a = explorer.select_action(obs)
            obs, _, terminated, truncated, _ = env.step(a)
            observations.append(obs)
            actions.append(a)
            done = terminated or truncated
        episodes.append((np.array(observations, float), np.array(actions, float)))
    return episodes

"""An acme-style environment loop: the env and the actor meet only here (Hoffman et al. 2020,
"Acme", sec. 3), so the same actor runs in this loop, in evaluation and behind a ROS node.

The loop calls `observe_first` after reset, then per step `select_action`, `env.step`,
`observe`, and `update` (the actor may refit or replan there; the loop does not care).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import gymnasium
import numpy as np

from mbrl.agents.explore import SmoothedRandom


@runtime_checkable
class Actor(Protocol):
    """What the loop drives. obs (dobs,) float32; action (du,) in the env's action space."""

    def observe_first(self, obs: np.ndarray, env: gymnasium.Env) -> None:
        """A new episode started at `obs` (the env is passed for its goal / task info)."""
        ...

    def select_action(self, obs: np.ndarray) -> np.ndarray:
        """The action (du,) to take at `obs`."""
        ...

    def observe(self, action: np.ndarray, next_obs: np.ndarray, reward: float) -> None:
        """The env answered `action` with `next_obs` and `reward`."""
        ...

    def update(self) -> None:
        """Learn from what was observed (may do nothing)."""
        ...


@dataclasses.dataclass
class EpisodeResult:
    """One episode: obs (T+1, dobs), actions (T, du), rewards (T,), the final info dict,
    and the env's goal (3,) m."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    info: dict[str, Any]
    goal: np.ndarray
    terminated: bool

    @property
    def steps(self) -> int:
        return len(self.actions)

    @property
    def final_distance(self) -> float:
        return float(self.info["distance"])

    @property
    def success(self) -> bool:
        return bool(self.info["is_success"]) and not self.terminated


class EnvironmentLoop:
    """Runs `actor` on `env` episode by episode, counting real env steps in `total_steps`."""

    def __init__(self, env: gymnasium.Env, actor: Actor) -> None:
        self.env, self.actor = env, actor
        self.total_steps = 0

    def run_episode(
        self, *, seed: int | None = None, max_steps: int | None = None, options: dict | None = None
    ) -> EpisodeResult:
        """One episode from env.reset(seed, options) until termination, truncation or
        `max_steps` steps (used to stop exactly at a step budget)."""
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
        obs, info = self.env.reset(seed=seed, options=options)
        self.actor.observe_first(obs, self.env)
        observations, actions, rewards = [obs], [], []
        terminated = truncated = False
        while not (terminated or truncated):
            action = np.asarray(self.actor.select_action(obs), dtype=np.float64)
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.total_steps += 1
            self.actor.observe(action, obs, float(reward))
            self.actor.update()
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            if max_steps is not None and len(actions) >= max_steps:
                truncated = True
        return EpisodeResult(
            np.asarray(observations),
            np.asarray(actions),
            np.asarray(rewards, dtype=np.float64),
            dict(info),
            np.asarray(self.env.unwrapped.goal, dtype=np.float64).copy(),
            bool(terminated),
        )


class PolicyActor:
    """An Actor over any policy with `reset()` and `act(obs) -> action` (the agent layer's
    actors and explorers): nothing is learned during the episode."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def observe_first(self, obs: np.ndarray, env: gymnasium.Env) -> None:
        self.policy.reset()

    def select_action(self, obs: np.ndarray) -> np.ndarray:
        return self.policy.act(obs)

    def observe(self, action: np.ndarray, next_obs: np.ndarray, reward: float) -> None:
        pass

    def update(self) -> None:
        pass


class RandomActor(PolicyActor):
    """The random base policy of Algorithm 1 (mbrl.agents.explore.SmoothedRandom) as an
    Actor: uniform actions in [-1, 1]^du, optionally smoothed along time."""

    def __init__(self, du: int, rng: np.random.Generator, smoothing: float = 0.0) -> None:
        super().__init__(SmoothedRandom(du, rng, smoothing))

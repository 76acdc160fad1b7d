"""Shared machinery of the sampling planners (CEM, iCEM, MPPI): config, batched rollouts.

Shapes: N samples (action sequences), P particles per sample, T horizon, dx, du, E members.
The rollout is batched over all N * P particles; the only Python loop is over T.
Particle rows are laid out as r = p * N + n (particle p of sample n), so with P a multiple
of E every sample keeps P / E particles on each member under "ts1" (PETS, Chua et al. 2018).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from mbrl.control.plan import Clock, IterationBudget, Plan
from mbrl.costs.base import Cost
from mbrl.models.base import PropagationMode, TorchDynamics


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """Budget and bounds common to the sampling planners.

    Attributes:
        horizon: T, steps planned ahead.
        num_samples: N, action sequences per iteration.
        iterations: optimisation iterations per replan.
        particles: P, model rollouts per action sequence (cost averaged over them).
        propagation: how particles move through an ensemble ("ts1", "tsinf",
            "expectation", "mean"; see mbrl.models.base).
        disagreement_weight: weight of the particle spread penalty: the summed over time
            variance of the P particles of a sample (epistemic + aleatoric disagreement).
        action_low / action_high: action bounds, one value for all du or a tuple of du.
        init_std: initial sampling std as a fraction of the half range of the bounds.
        nominal_rollout: also roll out the returned plan once (mode "mean") for Plan.states.
        chunk_rows: roll out at most about this many particle rows at a time (whole
            samples per chunk; 0 = all at once). Rows are independent, so chunking only
            changes memory traffic: activations of ~1000 rows stay in cache, which made
            the ensemble step ~1.5x faster per FLOP than 8000 rows at once here.
    """

    horizon: int = 25
    num_samples: int = 400
    iterations: int = 5
    particles: int = 1
    propagation: PropagationMode = "mean"
    disagreement_weight: float = 0.0
    action_low: float | tuple[float, ...] = -1.0
    action_high: float | tuple[float, ...] = 1.0
    init_std: float = 0.5
    nominal_rollout: bool = True
    chunk_rows: int = 0

    def __post_init__(self) -> None:
        for name in ("horizon", "num_samples", "iterations", "particles"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be >= 1")
        if self.propagation not in ("ts1", "tsinf", "expectation", "mean"):
            raise ValueError(f"unknown propagation {self.propagation!r}")
        if self.init_std <= 0:
            raise ValueError(f"{type(self).__name__}.init_std must be > 0")


class SamplingPlanner:
    """Base of CEM/iCEM/MPPI: bounds, warm start, rollout, deadline loop.

    Subclasses implement `_begin(mean)` and `_iteration(i, x0) -> bool (improved)`, keeping
    their own distribution, and `_result() -> actions (T, du)`.
    """

    def __init__(
        self,
        dynamics: TorchDynamics,
        cost: Cost,
        du: int,
        config: SamplingConfig,
        *,
        generator: torch.Generator | None = None,
        clock: Clock = time.perf_counter,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.dynamics, self.cost, self.du, self.config = dynamics, cost, du, config
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.dtype = dtype
        self.budget = IterationBudget(clock)
        self.low = self._bound(config.action_low)
        self.high = self._bound(config.action_high)
        if bool((self.low >= self.high).any()):
            raise ValueError(f"action_low {config.action_low} must be < action_high")
        E = int(getattr(dynamics, "ensemble_size", 1))
        per_member = config.propagation in ("ts1", "tsinf", "mean")
        if E > 1 and per_member and (config.num_samples * config.particles) % E:
            raise ValueError(
                f"{config.propagation} needs num_samples * particles divisible by "
                f"ensemble_size {E}; got "
                f"{config.num_samples} * {config.particles}"
            )
        self.model_steps = 0  # particle-steps through the model, for FLOP accounting
        self._clock = clock
        self._nominal_seconds: float | None = None
        self.reset()

    def _bound(self, b: float | tuple[float, ...]) -> torch.Tensor:
        t = torch.as_tensor(b, dtype=self.dtype).flatten()
        if t.numel() == 1:
            t = t.expand(self.du).clone()
        if t.numel() != self.du:
            raise ValueError(f"action bound {b} has {t.numel()} entries; expected du={self.du}")
        return t

    @property
    def half_range(self) -> torch.Tensor:
        return (self.high - self.low) / 2

    def reset(self) -> None:
        self._warm: torch.Tensor | None = None  # (T, du) previous plan, already shifted

    def _initial_mean(self) -> torch.Tensor:
        if self._warm is not None:
            return self._warm.clone()
        mid = (self.high + self.low) / 2
        return mid.expand(self.config.horizon, self.du).clone()

    def rollout(self, x0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """x0 (dx,), actions (N, T, du) -> (N,) expected cost over P particles (+ penalty)."""
        cfg = self.config
        N = actions.shape[0]
        E = int(getattr(self.dynamics, "ensemble_size", 1))
        # One particle suffices for a deterministic rollout: "mean" on a single model, or
        # a model that declares `deterministic = True` (its particles would be identical).
        single = (cfg.propagation == "mean" and E == 1) or getattr(
            self.dynamics, "deterministic", False
        )
        P = 1 if single else cfg.particles
        if cfg.chunk_rows <= 0 or N * P <= cfg.chunk_rows:
            return self._rollout_chunk(x0, actions, P)
        per = max(1, cfg.chunk_rows // P)
        while (per * P) % E:  # every chunk must keep the ts1 row layout valid
            per += 1
        return torch.cat(
            [self._rollout_chunk(x0, actions[i : i + per], P) for i in range(0, N, per)]
        )

    def _rollout_chunk(self, x0: torch.Tensor, actions: torch.Tensor, P: int) -> torch.Tensor:
        cfg = self.config
        N, T, _ = actions.shape
        x = x0.to(self.dtype).expand(P * N, -1).contiguous()
        u_all = actions.repeat(P, 1, 1)  # (P*N, T, du), row r = p * N + n
        xs = torch.empty(T + 1, P * N, x.shape[-1], dtype=self.dtype)
        xs[0] = x
        for t in range(T):
            x = self.dynamics.step(x, u_all[:, t], cfg.propagation, self.generator)
            xs[t + 1] = x
        self.model_steps += P * N * T
        xs_b = xs.transpose(0, 1)  # (P*N, T+1, dx)
        c = self.cost.stage(xs_b[:, :-1], u_all).sum(1) + self.cost.terminal(xs_b[:, -1])
        c = c.view(P, N).mean(0)
        if cfg.disagreement_weight > 0 and P > 1:
            spread = xs[1:].view(T, P, N, -1).var(dim=1, unbiased=False).mean(-1).sum(0)
            c = c + cfg.disagreement_weight * spread
        return torch.nan_to_num(c, nan=float("inf"))

    def _clip(self, a: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(a, self.high), self.low)

    def plan(self, x0: np.ndarray, deadline: float | None = None) -> Plan:
        """x0 (dx,) -> Plan (actions (T, du)); stops early to meet `deadline` (clock s)."""
        x0_t = torch.as_tensor(np.asarray(x0), dtype=self.dtype)
        with torch.no_grad():
            self.budget.start(deadline)
            self._begin(self._initial_mean())
            done = 0
            for i in range(self.config.iterations):
                if not self.budget.may_start():
                    break
                self._iteration(i, x0_t)
                self.budget.lap()
                done += 1
            actions = self._result()
            self._warm = torch.cat([actions[1:], ((self.high + self.low) / 2)[None]], 0)
            states, cost = None, float("nan")
            # The nominal rollout is optional output: skipped rather than run late.
            if self.config.nominal_rollout and done and self.budget.fits(self._nominal_seconds):
                t0 = self._clock()
                states, cost = self._nominal(x0_t, actions)
                self._nominal_seconds = self._clock() - t0
        return Plan(
            actions=actions.numpy().copy(),
            states=states,
            cost=cost,
            iterations=done,
            complete=done == self.config.iterations,
        )

    def _nominal(self, x0: torch.Tensor, actions: torch.Tensor) -> tuple[np.ndarray, float]:
        # "expectation" gives one deterministic row for an ensemble of any size.
        mode = "mean" if int(getattr(self.dynamics, "ensemble_size", 1)) == 1 else "expectation"
        x = x0[None]
        xs = [x]
        for t in range(actions.shape[0]):
            x = self.dynamics.step(x, actions[None, t], mode, self.generator)
            xs.append(x)
        traj = torch.stack(xs, 1)  # (1, T+1, dx)
        c = self.cost.stage(traj[:, :-1], actions[None]).sum() + self.cost.terminal(traj[:, -1])
        return traj[0].numpy().copy(), float(c)

    # Subclass hooks.
    def _begin(self, mean: torch.Tensor) -> None:
        raise NotImplementedError

    def _iteration(self, i: int, x0: torch.Tensor) -> None:
        raise NotImplementedError

    def _result(self) -> torch.Tensor:
        raise NotImplementedError

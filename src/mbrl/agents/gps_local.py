"""Local pieces of guided policy search: the local cost, the initial controller, the cost
expansion the KL-constrained LQG step needs, and expected costs under linear-Gaussian
dynamics (for the step-size rule). No env: the learner (mbrl.agents.gps) uses them in both
drivers.

Local state x (dx,) (local_state): reach [q, qdot, ee] (dx = 2 nj + 3), push [q, qdot, ee,
cube, cube velocity] (dx = 2 nj + 9). The goal is fixed
per initial condition, so the local cost holds it instead of the state.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from mbrl.control.gps_kl import LinearGaussianDynamics, LinearGaussianPolicy, state_marginals
from mbrl.costs.base import Cost, autodiff_quadratize, trajectory_cost
from mbrl.costs.push import PushCost, PushCostConfig
from mbrl.costs.reach import ReachCost, ReachCostConfig, StateLayout
from mbrl.costs.tasks import object_velocity_span


def local_dim(task: str, nj: int) -> int:
    """dx of the local state for `task` with nj joints."""
    return 2 * nj + (9 if task == "push" else 3)


def local_state(task: str, nj: int, obs: np.ndarray) -> np.ndarray:
    """The local state (..., dx) of task observations (..., dobs): reach [q, qdot, ee];
    push [q, qdot, ee, cube, cube velocity (3, m/s)]: the pose-difference estimate the push
    observation carries (mbrl.costs.tasks.object_velocity_span), so the contact's effect on
    the cube is in the state the per-step linear fit sees."""
    obs = np.asarray(obs, float)
    if task != "push":
        return obs[..., : 2 * nj + 3]
    start = object_velocity_span(nj)[0]
    return np.concatenate([obs[..., : 2 * nj + 6], obs[..., start : start + 3]], axis=-1)


def local_layout(task: str, nj: int) -> StateLayout:
    """Where q, ee and the object sit in the local state (the goal lives in the cost)."""
    obj = (2 * nj + 3, 2 * nj + 6) if task == "push" else None
    return StateLayout(q=(0, nj), ee=(2 * nj, 2 * nj + 3), obj=obj)


Points = Callable[[torch.Tensor], torch.Tensor]


class SquaredDistanceTerms:
    """A task cost plus w * ||a(x) - b(x)||^2 for each pair of point functions (stage;
    `terminal_scale` times that at T). The task costs are distances (cones): their
    second-order expansion is almost flat along the direction to the target, so an LQG step
    on it extrapolates linearly past the goal. The squared term (the l2 part of the l2 + log
    cost of Levine et al. 2016, sec. 5) gives the expansion curvature and a minimum at the
    target.

    Args:
        base: the task cost; pairs: (a, b) functions x (..., dx) -> (..., 3) m; weight: per
        m^2 per step; terminal_scale: terminal multiplier.
    """

    def __init__(
        self,
        base: ReachCost,
        pairs: list[tuple[Points, Points]],
        weight: float,
        terminal_scale: float,
    ) -> None:
        self.base, self.pairs, self.weight, self.terminal_scale = (
            base,
            pairs,
            weight,
            terminal_scale,
        )

    def _sq(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[:-1], dtype=x.dtype)
        for a, b in self.pairs:
            out = out + ((a(x) - b(x)) ** 2).sum(-1)
        return self.weight * out

    def stage(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """x (N, T, dx), u (N, T, du) -> (N, T)."""
        return self.base.stage(x, u) + self._sq(x)

    def terminal(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, dx) -> (N,)."""
        return self.base.terminal(x) + self.terminal_scale * self._sq(x)


def goal_of(cost: ReachCost) -> Points:
    """x (..., dx) -> the cost's goal (3,) m broadcast over x's batch dims."""
    return lambda x: cost.goal.to(x.dtype).expand(*x.shape[:-1], 3)


def make_cost(
    task: str,
    nj: int,
    goal: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    l2_weight: float = 0.0,
    approach_offset: float = 0.0,
    action_weight: float | None = None,
    cone_weight: float = 1.0,
    l2_terminal: float = 5.0,
    limit_weight: float | None = None,
) -> Cost:
    """The task cost (mbrl.costs) on the local state for one condition's goal, plus
    l2_weight * squared distances (SquaredDistanceTerms) when l2_weight > 0: end effector
    to goal (reach), or end effector to the pushing point `approach_offset` m behind the
    cube (mbrl.costs.push.PushCost.pushing_point) and cube to goal (push).
    action_weight replaces the cost's weight of ||u||^2 when given. cone_weight scales the
    task cost's distance terms (the cones); l2_terminal is the squared terms' multiplier at
    T; limit_weight, when given, replaces the joint-limit barrier's weight. With cone_weight
    0 the local cost is exactly quadratic in the local state (ee and the cube are state
    entries) apart from the barriers, so the LQG step's expansion of it is exact
    (docs/gps.md, "why the local controllers did not converge")."""
    layout = local_layout(task, nj)
    extra: dict[str, float] = {} if action_weight is None else {"action": action_weight}
    if limit_weight is not None:
        extra["limit"] = limit_weight
    base_cfg = PushCostConfig() if task == "push" else ReachCostConfig()
    for name in ("distance", "terminal", "tip_to_object", "object_to_goal"):
        if hasattr(base_cfg, name):
            extra[name] = cone_weight * getattr(base_cfg, name)
    if task == "push":
        cfg = PushCostConfig(approach_offset=approach_offset, **extra)
        base = PushCost(layout, goal=goal, config=cfg, lower=lower, upper=upper)
        pairs = [
            (base.ee, base.pushing_point),
            (partial(StateLayout.take, span=layout.obj), goal_of(base)),
        ]
    else:
        cfg = ReachCostConfig(**extra)
        base = ReachCost(layout, goal=goal, config=cfg, lower=lower, upper=upper)
        pairs = [(base.ee, goal_of(base))]
    if l2_weight <= 0:
        return base
    return SquaredDistanceTerms(base, pairs, l2_weight, l2_terminal)


def initial_controller(T: int, dx: int, du: int, std: float) -> LinearGaussianPolicy:
    """Zero-mean exploration: u_t ~ N(0, std^2 I) (the arm holds still on average)."""
    return LinearGaussianPolicy(
        np.zeros((T, du, dx)), np.zeros((T, du)), np.repeat(std**2 * np.eye(du)[None], T, 0)
    )


def sample_costs(cost: Cost, X: np.ndarray, U: np.ndarray) -> np.ndarray:
    """X (S, T+1, dx), U (S, T, du) -> (S,) true trajectory costs."""
    with torch.no_grad():
        c = trajectory_cost(cost, torch.as_tensor(X), torch.as_tensor(U))
    return c.numpy()


def quadratic_cost(
    cost: Cost, X: np.ndarray, U: np.ndarray, dyn: LinearGaussianDynamics
) -> tuple[np.ndarray, np.ndarray]:
    """The cost as 1/2 z'C_t z + cv_t'z (z = [x; u], absolute coordinates) for kl_step.

    Each sample's second-order expansion (autodiff) is averaged over the S samples, as in the
    GPS code (Finn et al. 2016, `eval_cost`). The terminal cost on x_T = F z_{T-1} + c is
    folded into the last stage through the fitted dynamics (its noise term is a constant).
    X (S, T+1, dx), U (S, T, du) -> C (T, dz, dz), cv (T, dz).
    """
    S, T, du = U.shape
    dx = X.shape[2]
    C = np.zeros((T, dx + du, dx + du))
    cv = np.zeros((T, dx + du))
    HT, gT = np.zeros((dx, dx)), np.zeros(dx)
    for s in range(S):
        lx, lu, lxx, luu, lux = autodiff_quadratize(cost, X[s], U[s])
        H = np.block([[lxx[:T], np.swapaxes(lux, 1, 2)], [lux, luu]])
        g = np.concatenate([lx[:T], lu], axis=1)
        z = np.concatenate([X[s, :T], U[s]], axis=1)
        C += H / S
        cv += (g - np.einsum("tij,tj->ti", H, z)) / S
        HT += lxx[T] / S
        gT += (lx[T] - lxx[T] @ X[s, T]) / S
    F = np.concatenate([dyn.A[T - 1], dyn.B[T - 1]], axis=1)
    C[T - 1] += F.T @ HT @ F
    cv[T - 1] += F.T @ (HT @ dyn.c[T - 1] + gT)
    return 0.5 * (C + np.swapaxes(C, 1, 2)), cv


def expected_cost(
    dyn: LinearGaussianDynamics, policy: LinearGaussianPolicy, C: np.ndarray, cv: np.ndarray
) -> float:
    """E[sum_t 1/2 z_t'C_t z_t + cv_t'z_t] under the controller and linear-Gaussian dynamics
    (the Laplace estimate of the GPS step-size rule; constants of the expansion left out)."""
    mu, Sx = state_marginals(dyn, policy)
    total = 0.0
    for t in range(len(mu)):
        K = policy.K[t]
        m = np.concatenate([mu[t], K @ mu[t] + policy.k[t]])
        Szz = np.block([[Sx[t], Sx[t] @ K.T], [K @ Sx[t], K @ Sx[t] @ K.T + policy.cov[t]]])
        total += 0.5 * (m @ C[t] @ m + np.trace(C[t] @ Szz)) + cv[t] @ m
    return float(total)


def step_multiplier(mult: float, predicted: float, actual: float, lo: float, hi: float) -> float:
    """New KL step multiplier from predicted vs actual cost improvement (Levine & Abbeel
    2014, sec. 3.1; GPS code `_set_new_mult`): grow while the model's predictions hold,
    shrink when the real improvement falls short of the predicted one."""
    new = predicted / (2.0 * max(1e-4, predicted - actual))
    new = float(np.clip(new, 0.1, 5.0))
    return float(np.clip(new * mult, lo, hi))

"""Guided policy search (MDGPS; Montgomery & Levine 2016) as a learner and two actors that
both drivers host: mbrl.loop.gps in one process, the fitter and controller nodes through
the graph (docs/gps.md).

Learner: the episodes of every training condition -> per condition a time-varying
linear-Gaussian dynamics fit with a GMM/NIW prior on all data (Levine & Abbeel 2014, sec.
3.1), a KL-bounded LQG step of its local controller (mbrl.control.gps_kl), the step size
adapted from predicted vs actual improvement; then the S-step of the global policy on the new
local controllers' mean actions (mbrl.agents.gps_policy). Artifacts: "gps_local" (the local
controllers with their goals, LocalControllers) and "gps_policy" (the GlobalPolicy).
Actors: LocalActor (u_t = K_t x_t + k_t + chol(S_t) eps_t for the condition whose goal is
set, t counted from reset) and GlobalPolicyActor (the global policy's mean action).

A condition is a training episode seed: its start (joints, goal, cube) is what the shared
sampler (mbrl.costs.tasks.TaskSampler) draws for it, so `env.reset(seed=s)` and the graph's
episode s start the same. Local state x (dx,) = the observation up to the cube's yaw:
reach [q, qdot, ee], push [q, qdot, ee, cube].
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from mbrl.agents.arm import ArmModel
from mbrl.agents.gps_local import (
    expected_cost,
    initial_controller,
    local_dim,
    local_state,
    make_cost,
    quadratic_cost,
    sample_costs,
    step_multiplier,
)
from mbrl.agents.gps_params import (  # noqa: F401 (PRESETS, GPSConfig: re-exported)
    PRESETS,
    GPSConfig,
    condition_seeds,
    gps_config,
)
from mbrl.agents.gps_policy import GlobalPolicy
from mbrl.control.gps_kl import (
    KLStepConfig,
    LinearGaussianDynamics,
    LinearGaussianPolicy,
    kl_step,
)
from mbrl.costs.tasks import obs_layout, obs_size
from mbrl.data.dataset import TransitionDataset
from mbrl.models.base import FitReport, ModelFileError
from mbrl.models.gmm_prior import GMMPrior
from mbrl.models.io import check_arrays, load_model_file, save_model_file
from mbrl.models.local_lg import TimeVaryingLinearGaussian

Trajectory = tuple[np.ndarray, np.ndarray]  # obs (T+1, dobs), actions (T, nj)
LOCAL, POLICY = "gps_local", "gps_policy"  # artifact kinds
GOAL_TOLERANCE = 1e-4  # m: an episode belongs to the condition whose goal is this close


def _dynamics(fit: TimeVaryingLinearGaussian, X: np.ndarray) -> LinearGaussianDynamics:
    x0 = X[:, 0]
    x0_cov = np.cov(x0.T, bias=True) + 1e-6 * np.eye(X.shape[2])
    return LinearGaussianDynamics(fit.A, fit.B, fit.c, fit.Sigma, x0.mean(0), x0_cov)


class LocalControllers:
    """The local controllers as one artifact: goals (C, 3) m, K (C, T, du, dx),
    k (C, T, du), cov (C, T, du, du) and the action limit (normalised units)."""

    def __init__(
        self,
        goals: np.ndarray,
        policies: Sequence[LinearGaussianPolicy],
        action_limit: float,
        task: str,
    ) -> None:
        self.task = task
        self.goals = np.asarray(goals, float).reshape(-1, 3)
        self.K = np.stack([p.K for p in policies])
        self.k = np.stack([p.k for p in policies])
        self.cov = np.stack([p.cov for p in policies])
        self.action_limit = float(action_limit)
        C, T, du, dx = self.K.shape
        if len(self.goals) != C or self.k.shape != (C, T, du) or self.cov.shape != (C, T, du, du):
            raise ValueError(
                f"LocalControllers: goals {self.goals.shape}, K {self.K.shape}, "
                f"k {self.k.shape}, cov {self.cov.shape} do not agree"
            )
        self.dx, self.du, self.T = dx, du, T

    def policy(self, i: int) -> LinearGaussianPolicy:
        return LinearGaussianPolicy(self.K[i], self.k[i], self.cov[i])

    def condition_of(self, goal: np.ndarray) -> int:
        """The index of the controller for `goal` (3,) m; ValueError if none is that close."""
        d = np.linalg.norm(self.goals - np.asarray(goal, float), axis=1)
        i = int(np.argmin(d))
        if d[i] > GOAL_TOLERANCE:
            raise ValueError(
                f"no local controller for goal {np.round(goal, 4).tolist()}: the nearest "
                f"training condition's goal is {d[i]:.4f} m away (GPS local controllers run "
                f"only on their own conditions)"
            )
        return i

    def save(self, path: str | Path) -> None:
        meta = {"action_limit": self.action_limit, "task": self.task}
        arrays = dict(goals=self.goals, K=self.K, k=self.k, cov=self.cov)
        save_model_file(path, "GPSLocalControllers", meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> LocalControllers:
        """ModelFileError names the file when it is not a local-controller file."""
        meta, arrays = load_model_file(path, "GPSLocalControllers")
        C, T, du, dx = np.shape(arrays.get("K", np.zeros((0, 0, 0, 0))))
        shapes = {"goals": (C, 3), "K": (C, T, du, dx), "k": (C, T, du), "cov": (C, T, du, du)}
        check_arrays(path, arrays, shapes)
        pols = [LinearGaussianPolicy(arrays["K"][i], arrays["k"][i], arrays["cov"][i])
                for i in range(C)]  # fmt: skip
        try:
            return cls(arrays["goals"], pols, float(meta["action_limit"]), str(meta["task"]))
        except (KeyError, ValueError) as exc:
            raise ModelFileError(f"{path}: not a GPS local-controller file: {exc}") from exc


def layout(algo: str, task: str, nj: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the GPS artifacts' inputs and outputs mean (sent with them; the actor checks)."""
    return {"learner": "gps", "task": task, "observation": obs_size(task, nj),
            "local_state": local_dim(task, nj), "action": "increment"}  # fmt: skip


class GPSLearner:
    """MDGPS (module docstring) over the episodes of its own training conditions.

    Args:
        task: "reach" or "push"; arm: the arm (its sampler draws the conditions);
        params: GPSConfig fields (the preset merged with overrides); seed; horizon: T,
            steps per episode (the local controllers are time-varying over T).
    Attributes:
        seeds: (conditions,) the training episode seeds; goals: (conditions, 3) m.
        config: the GPSConfig; local: the current local controllers; policy: GlobalPolicy.
        last: metrics of the last fit (cost, KL, step multiplier, S-step loss, ...).
    """

    def __init__(
        self,
        task: str,
        arm: ArmModel,
        params: dict[str, Any],
        seed: int,
        horizon: int | None = None,
    ) -> None:
        torch.set_num_threads(1)
        extra = {} if horizon is None else {"horizon": int(horizon)}
        self.config = gps_config(task, {**params, **extra})
        c = self.config
        self.task, self.arm, self.T, self.params = task, arm, c.horizon, dict(params)
        self.rng = np.random.default_rng(seed)
        self.torch_gen = torch.Generator().manual_seed(int(self.rng.integers(2**31)))
        nj = arm.nj
        self.nj, self.du, self.dx = nj, nj, local_dim(task, nj)
        sampler = arm.sampler(task)
        self.seeds = condition_seeds(c.condition_seed, c.conditions)
        self.goals = np.array([sampler.episode(s).goal for s in self.seeds], float)
        self.goal_slice = slice(*obs_layout(task, nj).goal)
        self.costs = [
            make_cost(task, nj, g, arm.lower, arm.upper, c.l2_weight, c.approach_offset,
                      c.action_weight, c.cone_weight, c.l2_terminal, c.limit_weight)
            for g in self.goals
        ]  # fmt: skip
        self.local = [initial_controller(self.T, self.dx, self.du, c.init_std) for _ in self.seeds]
        obj = (2 * nj + 3, 2 * nj + 6) if task == "push" else None
        self.policy = GlobalPolicy(self.dx, self.du, (2 * nj, 2 * nj + 3), obj, c.hidden,
                                   self.torch_gen, c.relative_features)  # fmt: skip
        self.prior = GMMPrior(c.prior_components, c.prior_strength, max_rows=c.prior_max_rows)
        n = len(self.seeds)
        self.mult = np.ones(n)
        self.prev_cost, self.predicted = np.full(n, np.nan), np.full(n, np.nan)
        self.z_rows: list[np.ndarray] = []
        self.history: list[list[np.ndarray]] = [[] for _ in self.seeds]
        self.seen = 0  # trajectories consumed by earlier fits
        self.iterations = 0
        self.last: dict[str, float] = {}

    def dataset(self, trajectories: Sequence[Trajectory]) -> TransitionDataset:
        """All transitions in the local state (what the fitter counts and checks)."""
        kept = [(o, a) for o, a in trajectories if len(a) > 0]
        if not kept:
            raise ValueError(f"no transitions in {len(trajectories)} trajectories")
        return TransitionDataset.from_episodes(
            [local_state(self.task, self.nj, o).astype(np.float32) for o, _ in kept],
            [np.clip(np.asarray(a, float), -1.0, 1.0) for _, a in kept],
        )

    # -- which condition an episode belongs to ----------------------------------------
    def condition_of(self, obs: np.ndarray) -> int:
        """The condition whose goal the episode (obs (T+1, dobs)) has; ValueError if none."""
        return self.controllers().condition_of(np.asarray(obs, float)[0, self.goal_slice])

    def controllers(self) -> LocalControllers:
        return LocalControllers(self.goals, self.local, self.config.action_limit, self.task)

    # -- the learner protocol ---------------------------------------------------------
    def fit(self, trajectories: Sequence[Trajectory]) -> FitReport:
        """One GPS iteration on the trajectories not seen by earlier fits (every driver
        passes all trajectories so far): each condition with new episodes gets a dynamics
        fit and a C-step; then one S-step. Episodes must be T steps long and belong to a
        training condition (ValueError names the one that does not)."""
        start = time.perf_counter()
        new = list(trajectories[self.seen :])
        if not new:  # a repeated fit request: nothing to learn from
            return FitReport(0, time.perf_counter() - start, {**self.last, "new_episodes": 0})
        by_cond: dict[int, list[Trajectory]] = {}
        for n, (obs, act) in enumerate(new):
            obs, act = np.asarray(obs, float), np.asarray(act, float)
            # (a graph episode may hold a tick or two more than T: the first T count)
            if act.shape[0] < self.T or obs.shape[0] < self.T + 1 or act.shape[1] != self.du:
                raise ValueError(
                    f"GPS episode {self.seen + n}: obs {obs.shape}, actions {act.shape}; "
                    f"expected at least ({self.T + 1}, dobs) and ({self.T}, {self.du})"
                )
            obs, act = obs[: self.T + 1], act[: self.T]
            by_cond.setdefault(self.condition_of(obs), []).append((obs, act))
        self.seen = len(trajectories)
        with threadpool_limits(1):
            self._iterate(by_cond)
        self.iterations += 1
        return FitReport(
            num_transitions=sum(len(a) for _, a in new),
            seconds=time.perf_counter() - start,
            extra={**self.last, "new_episodes": len(new), "iteration": self.iterations},
        )

    def _iterate(self, by_cond: dict[int, list[Trajectory]]) -> None:
        c, T, dx = self.config, self.T, self.dx
        data: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for i, eps in sorted(by_cond.items()):
            X = np.stack([local_state(self.task, self.nj, o) for o, _ in eps])
            U = np.clip(np.stack([a for _, a in eps]), -c.action_limit, c.action_limit)
            data[i] = (X, U)
            self.z_rows.append(
                np.concatenate([X[:, :-1], U, X[:, 1:]], axis=2).reshape(-1, 2 * dx + self.du)
            )
        # Dynamics: the GMM prior on recent data of all conditions, a fit per condition.
        self.prior.fit(np.concatenate(self.z_rows), self.rng)
        self.z_rows = self.z_rows[-(c.prior_max_rows // (T * max(c.samples, 1)) + 1) :]
        kls, costs, fallbacks = [], [], 0
        for i, (X, U) in data.items():
            fit = TimeVaryingLinearGaussian(dx, self.du, T)
            fit.fit_trajectories(X, U, self.prior)
            dyn = _dynamics(fit, X)
            cost_now = float(sample_costs(self.costs[i], X, U).mean())
            costs.append(cost_now)
            if np.isfinite(self.prev_cost[i]):
                self.mult[i] = step_multiplier(self.mult[i], self.predicted[i],
                                               self.prev_cost[i] - cost_now,
                                               c.min_step_mult, c.max_step_mult)  # fmt: skip
            self.prev_cost[i] = cost_now
            C, cv = quadratic_cost(self.costs[i], X, U, dyn)
            anchor = self.local[i]
            if self.policy.trained and c.anchor == "global":
                anchor = self.policy.linearize(X[:, :T].mean(0), self.goals[i])
            res = kl_step(
                dyn, anchor, C, cv, KLStepConfig(epsilon=c.base_kl_step * T * self.mult[i])
            )
            self.predicted[i] = expected_cost(dyn, self.local[i], C, cv) - expected_cost(
                dyn, res.policy, C, cv
            )
            self.local[i] = res.policy
            kls.append(res.kl)
            fallbacks += res.fallback != "none"
        loss = self._s_step(data)
        self.last = {
            "local_cost": float(np.mean(costs)),
            "kl": float(np.mean(kls)),
            "step_mult": float(np.mean(self.mult)),
            "policy_loss": loss,
            "kl_fallbacks": float(fallbacks),
        }

    def _s_step(self, data: dict[int, tuple[np.ndarray, np.ndarray]]) -> float:
        """The global policy regresses the new local mean actions at the sampled states of
        the last policy_memory iterations, weighted by the local precisions."""
        c, T, du = self.config, self.T, self.du
        xs, goals, targets, precs = [], [], [], []
        for i, (X, _) in data.items():
            self.history[i] = (self.history[i] + [X[:, :T]])[-c.policy_memory :]
            Xt = np.concatenate(self.history[i])  # (S, T, dx)
            # The env only ever applies clipped actions: regress on what would be applied.
            mean_u = np.clip(np.einsum("tux,stx->stu", self.local[i].K, Xt) + self.local[i].k,
                             -c.action_limit, c.action_limit)  # fmt: skip
            xs.append(Xt.reshape(-1, self.dx))
            targets.append(mean_u.reshape(-1, du))
            goals.append(np.broadcast_to(self.goals[i], (Xt.shape[0] * T, 3)))
            P = np.linalg.inv(self.local[i].cov)
            precs.append(np.broadcast_to(P, (Xt.shape[0], T, du, du)).reshape(-1, du, du))
        return self.policy.fit(
            np.concatenate(xs), np.concatenate(goals), np.concatenate(targets),
            np.concatenate(precs), generator=self.torch_gen, steps=c.policy_steps,
            batch=c.policy_batch, lr=c.policy_lr,
        )  # fmt: skip

    def artifacts(self) -> dict[str, Any]:
        """By kind: the local controllers and the global policy."""
        return {LOCAL: self.controllers(), POLICY: self.policy}

    def restore(self, artifacts: dict[str, Any]) -> None:
        """Continue from a checkpoint's local controllers and global policy."""
        if LOCAL in artifacts:
            ctl = artifacts[LOCAL]
            if not np.allclose(ctl.goals, self.goals, atol=GOAL_TOLERANCE):
                raise ValueError("GPS checkpoint: its conditions are not this learner's")
            self.local = [ctl.policy(i) for i in range(len(self.goals))]
        if POLICY in artifacts:
            self.policy = artifacts[POLICY]

    def layout(self) -> dict[str, Any]:
        return layout("gps", self.task, self.nj)


class LocalActor:
    """The local controller of the condition whose goal is set: u_t = K_t x_t + k_t +
    chol(cov_t) eps_t (eps from `rng`; noise=False gives the mean), clipped to the action
    limit; t counts act calls since reset (held at T - 1 after the horizon)."""

    def __init__(
        self, controllers: LocalControllers, rng: np.random.Generator, noise: bool = True
    ) -> None:
        self.ctl, self.rng, self.noise = controllers, rng, bool(noise)
        self.cond: int | None = None
        self.goal: np.ndarray | None = None
        self._refusal = ""
        self.t = 0
        self.chol = np.linalg.cholesky(controllers.cov)  # (C, T, du, du); cov is PD
        lim = controllers.action_limit
        self.action_bounds = (-lim, lim)

    def reset(self) -> None:
        self.t = 0

    def set_goal(self, goal: np.ndarray) -> None:
        """Select the condition of `goal`; a goal of no condition is refused by `act` (the
        controller then holds the arm and says why), not here in a goal callback."""
        self.goal = np.asarray(goal, float)
        try:
            self.cond, self._refusal = self.ctl.condition_of(goal), ""
        except ValueError as exc:
            self.cond, self._refusal = None, str(exc)

    def act(self, obs: np.ndarray, deadline: float | None = None) -> np.ndarray:
        if self.cond is None:
            raise ValueError(self._refusal or "LocalActor.act before set_goal")
        i, t = self.cond, min(self.t, self.ctl.T - 1)
        x = local_state(self.ctl.task, self.ctl.du, obs)
        u = self.ctl.K[i, t] @ x + self.ctl.k[i, t]
        if self.noise:
            u = u + self.chol[i, t] @ self.rng.standard_normal(self.ctl.du)
        self.t += 1
        if not np.all(np.isfinite(u)):
            raise ValueError(f"local controller {i} gave {u.tolist()} at t={t}")
        return np.clip(u, *self.action_bounds)

    def warmup(self, obs: np.ndarray, times: int = 1) -> None:
        """Nothing to compile or cache."""


class GlobalPolicyActor:
    """The global policy's mean action on the observation (its goal is in the observation)."""

    def __init__(self, policy: GlobalPolicy, task: str, nj: int, action_limit: float) -> None:
        self.policy, self.task, self.nj = policy, task, nj
        self.goal: np.ndarray | None = None
        self.goal_slice = slice(*obs_layout(task, nj).goal)
        self.action_bounds = (-action_limit, action_limit)

    def reset(self) -> None:
        """The policy is a function of the observation."""

    def set_goal(self, goal: np.ndarray) -> None:
        """The goal reaches the policy in the observation (kept for the controller)."""
        self.goal = np.asarray(goal, float)

    def act(self, obs: np.ndarray, deadline: float | None = None) -> np.ndarray:
        obs = np.asarray(obs, float)
        u = self.policy.mean(local_state(self.task, self.nj, obs)[None], obs[self.goal_slice])[0]
        if not np.all(np.isfinite(u)):
            raise ValueError(f"global policy gave {u.tolist()}")
        return np.clip(u, *self.action_bounds)

    def warmup(self, obs: np.ndarray, times: int = 1) -> None:
        for _ in range(times):
            self.act(obs)


def make_learner(
    algo: str, task: str, arm: ArmModel, params: dict[str, Any], seed: int
) -> GPSLearner:
    """The registry's learner factory; T is params["horizon"] (the graph's episode length)."""
    return GPSLearner(task, arm, params, seed)


def make_actor(
    algo: str,
    task: str,
    arm: ArmModel,
    artifact: Any,
    params: dict[str, Any],
    seed: int = 0,
    stream: int = 0,
    planner_overrides: dict[str, Any] | None = None,
) -> LocalActor | GlobalPolicyActor:
    """The actor for a GPS artifact: LocalControllers -> LocalActor (with exploration noise
    unless params["noise"] is False), GlobalPolicy -> GlobalPolicyActor."""
    lim = gps_config(task, {k: v for k, v in params.items() if k != "noise"}).action_limit
    if isinstance(artifact, LocalControllers):
        if artifact.task != task or artifact.dx != local_dim(task, arm.nj) or artifact.du != arm.nj:
            raise ValueError(
                f"local controllers for {artifact.task} map {artifact.dx} states to "
                f"{artifact.du} actions; {task} on this arm needs {local_dim(task, arm.nj)} "
                f"-> {arm.nj}"
            )
        rng = np.random.default_rng([int(seed), int(stream)])
        return LocalActor(artifact, rng, bool(params.get("noise", True)))
    if isinstance(artifact, GlobalPolicy):
        if artifact.dx != local_dim(task, arm.nj) or artifact.du != arm.nj:
            raise ValueError(
                f"global policy maps {artifact.dx} states to {artifact.du} actions; {task} "
                f"on this arm needs {local_dim(task, arm.nj)} -> {arm.nj}"
            )
        return GlobalPolicyActor(artifact, task, arm.nj, lim)
    raise ValueError(f"gps has no actor for a {type(artifact).__name__}")

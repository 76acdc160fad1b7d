"""PILCO (Deisenroth & Rasmussen 2011; Deisenroth, Rasmussen & Fox 2011, "Learning to
control a low-cost manipulator using data-efficient RL") as a learner and an actor that both
drivers host: mbrl.loop.pilco in one process, the fitter and controller nodes through the graph.

Learner (each fit, on all trajectories so far): a GP per joint on [q, u] -> q' - q (the
dynamics) and a GP on the measured q -> the measured end effector (the observation carries
it); then, for each goal the schedule runs next, a sine-squashed linear policy
u = sin(K (q_ref - q)) optimised by L-BFGS on the analytically predicted sum of expected
saturating costs of the end effector (mbrl.agents.pilco_mm: exact moment matching through
both GPs) plus the EE GP's expected cost where that integral servo comes to rest (q_ref).
Nothing in that objective knows the arm's geometry. The kinematic variant
(PilcoParams.kinematics) replaces the EE GP with FK of the predicted joints and scores
fk(q_ref) (the old objective, reported apart).
Artifact: `GoalPolicies` (kind "pilco_policy"), the per-goal parameters in the safe format.
Actor: `PilcoActor` picks the policy of the observation's goal and runs it.

PILCO's policy is per goal (its own setting: one target per learned controller), so the
learner optimises for goals it knows ahead: the next training episode's (the schedule's seeds,
mbrl.costs.tasks.train_seed from the run seed) and, when an evaluation follows, the held-out
goals (EVAL_SEED + i). A goal it did not optimise for is an error the actor names.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.optimize
import torch

from mbrl.agents.arm import ArmModel
from mbrl.agents.pilco_mm import GPTensors, fk_ee, gp_ee, gp_predict, predicted_cost
from mbrl.agents.pilco_params import PilcoParams
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.costs.saturating import expected_saturating_cost, saturating_cost
from mbrl.costs.tasks import EVAL_SEED, obs_layout, obs_size, train_seed
from mbrl.data.dataset import TransitionDataset
from mbrl.models.base import FitReport
from mbrl.models.gp import GPModel
from mbrl.models.io import check_arrays, load_model_file, save_model_file

ARTIFACT = "pilco_policy"  # what the fitter publishes and the controller runs
Trajectory = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass(frozen=True)
class PilcoModel:
    """What the policy objective predicts with: `dynamics` (q' - q from [q, u]), `ee` (the
    measured end effector from the measured q; None in the kinematic variant) and
    `rest` (the same kernel as `ee` on a larger basis, for the resting point only, where a
    prediction costs O(M) instead of moment matching's O(M^2); None: use `ee`)."""

    dynamics: GPModel
    ee: GPModel | None = None
    rest: GPModel | None = None


def fit_model(
    states: list[np.ndarray],
    actions: list[np.ndarray],
    layout: Any,
    params: PilcoParams,
    rng: np.random.Generator,
) -> tuple[PilcoModel, dict[str, Any]]:
    """Fit the GPs on episodes: states (T + 1, dobs) observations, actions (T, nj).

    The EE GP is fitted unless params.kinematics. Returns the model and fit facts (seconds,
    optimiser fallback per GP).

    Raises:
        GPFitError: a GP's posterior cannot be factorised even with jitter (its message).
    """
    q0, q1 = layout.q
    e0, e1 = layout.ee
    nj = q1 - q0
    data = TransitionDataset.from_episodes([s[:, q0:q1] for s in states], actions)
    dyn = GPModel(
        nj,
        nj,
        num_inducing=params.num_inducing if len(data) > params.num_inducing else 0,
        max_hyp_points=params.gp_hyp_points,
        max_iter=params.gp_max_iter,
    )
    rep = dyn.fit(data, rng)
    info = {
        "gp_fit_seconds": rep.seconds,
        "gp_fallback": float(rep.extra["optimiser_fallback"]),
    }
    ee = rest = None
    if not params.kinematics:
        # The measured (q, ee) pairs, the last state of each episode included; a state
        # within ee_min_step (rad, every joint) of the last one kept is dropped: a policy
        # episode rests at one q for most of its steps, and hundreds of copies of a few
        # points would dominate the hyper-parameters and the conditioning.
        X, Y = distinct_states(states, layout, params.ee_min_step)
        ee = GPModel(
            nj,
            0,
            num_inducing=params.ee_num_inducing if len(X) > params.ee_num_inducing else 0,
            max_hyp_points=params.gp_hyp_points,
            max_iter=params.gp_max_iter,
            outputs=3,
        )
        rep_ee = ee.fit_arrays(X, Y, rng)
        info["gp_fit_seconds"] += rep_ee.seconds
        info["ee_gp_fallback"] = float(rep_ee.extra["optimiser_fallback"])
        if params.rest_weight and params.rest_num_inducing != params.ee_num_inducing:
            M = params.rest_num_inducing
            rest = GPModel(nj, 0, num_inducing=M if len(X) > M else 0, outputs=3)
            rep_rest = rest.fit_arrays(X, Y, rng, hyper_from=ee)
            info["gp_fit_seconds"] += rep_rest.seconds
    return PilcoModel(dyn, ee, rest), info


def distinct_states(
    states: list[np.ndarray], layout: Any, min_step: float
) -> tuple[np.ndarray, np.ndarray]:
    """(q (N, nj), ee (N, 3)) of the episodes' observations, keeping a state only if some
    joint moved more than min_step rad since the last kept one of its episode."""
    q0, q1 = layout.q
    e0, e1 = layout.ee
    qs, es = [], []
    for s in states:
        last = None
        for row in np.asarray(s, np.float64):
            q = row[q0:q1]
            if last is None or np.max(np.abs(q - last)) > min_step:
                qs.append(q)
                es.append(row[e0:e1])
                last = q
    return np.asarray(qs), np.asarray(es)


@dataclasses.dataclass(frozen=True)
class OptimisationResult:
    """theta (B, dx * dx + dx) policy parameters [K.ravel(), q_ref] per goal, the predicted
    summed cost per goal (B,), L-BFGS iterations, and whether the optimiser failed and the
    start point was kept."""

    theta: np.ndarray
    predicted_cost: np.ndarray
    iterations: int
    fallback: bool
    message: str


def optimise_policies(
    model: PilcoModel,
    goals: np.ndarray,
    m0: np.ndarray,
    S0: np.ndarray,
    params: PilcoParams,
    theta0: np.ndarray,
    fk: ForwardKinematics | None = None,
) -> OptimisationResult:
    """All stages of params.cost_widths in turn (arguments as in `optimise_stage`)."""
    theta, iters, fallback, res = np.asarray(theta0, np.float64), 0, False, None
    for width in params.cost_widths:
        res = optimise_stage(model, goals, m0, S0, params, theta, width, fk)
        theta, iters, fallback = res.theta, iters + res.iterations, fallback or res.fallback
    if res is None:
        raise ValueError("PilcoParams.cost_widths is empty; expected at least one width (m)")
    return dataclasses.replace(res, iterations=iters, fallback=fallback)


def optimise_stage(
    model: PilcoModel,
    goals: np.ndarray,
    m0: np.ndarray,
    S0: np.ndarray,
    params: PilcoParams,
    theta0: np.ndarray,
    width: float,
    fk: ForwardKinematics | None = None,
) -> OptimisationResult:
    """Optimise B independent policies (one per goal) with one L-BFGS-B on their summed
    objective (the problems are separable, so each block's gradient is its own).

    The objective is the predicted expected saturating cost of the end effector. With
    params.kinematics False (the default) that end effector is model.ee's prediction and
    `fk` is never called; with it True, FK of the predicted joints plus
    params.fixed_point_weight x the cost of fk(q_ref) (needs `fk`).

    Args:
        goals: (B, 3) m. m0 (dx,), S0 (dx, dx): start distribution of q (rad, rad^2).
        theta0: (B, dx * dx + dx) start parameters [K.ravel(), q_ref] (see linear_params).
        width: sigma_c of the saturating cost, m.
        fk: the arm's forward kinematics, used only when params.kinematics.
    """
    gp = model.dynamics
    g = GPTensors.from_model(gp)
    dx = gp.dx
    if gp.du != dx:
        raise ValueError(f"the gain/target policy needs du == dx; GP has dx={dx}, du={gp.du}")
    if params.kinematics:
        if fk is None:
            raise ValueError("PilcoParams.kinematics=True needs the arm's forward kinematics")
        ee_model = fk_ee(fk)
        lower, upper = getattr(fk, "lower", None), getattr(fk, "upper", None)
        g_ee = g_rest = None
    else:
        if model.ee is None:
            raise ValueError("PilcoParams.kinematics=False needs the end-effector GP (model.ee)")
        g_ee = GPTensors.from_model(model.ee)
        ee_model = gp_ee(g_ee)
        g_rest = g_ee if model.rest is None else GPTensors.from_model(model.rest)
        fk = lower = upper = None  # the objective below must not see the arm's kinematics
    B = len(goals)
    goal_t = torch.as_tensor(np.asarray(goals, np.float64))
    m0_t = torch.as_tensor(m0, dtype=torch.float64).expand(B, dx)
    S0_t = torch.as_tensor(S0, dtype=torch.float64).expand(B, dx, dx)
    last_costs = np.full(B, np.nan)

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        th = torch.tensor(flat.reshape(B, -1), requires_grad=True)
        W, b = linear_params(th, dx)
        try:
            cost, _, _ = predicted_cost(
                g,
                W,
                b,
                m0_t,
                S0_t,
                params.horizon,
                ee_model,
                goal_t,
                width,
                1.0,
                params.terminal_weight,
            )
        except torch.linalg.LinAlgError:
            return 1e10, np.zeros_like(flat)  # a singular solve: make the line search back off
        if fk is not None and params.fixed_point_weight:
            q_ref = th[:, dx * dx :]
            fixed = torch.zeros_like(cost)
            if lower is not None:
                clamped = torch.maximum(torch.minimum(q_ref, upper.to(q_ref)), lower.to(q_ref))
                # The clamp has no gradient outside the limits: pull q_ref back in (1 per
                # 0.1 rad over), or a joint that crossed one stays there.
                fixed = (((q_ref - clamped) / 0.1) ** 2).sum(-1)
                q_ref = clamped
            fixed = fixed + saturating_cost(fk(q_ref), goal_t, width)
            cost = cost + params.fixed_point_weight * fixed
        if g_ee is not None and params.rest_weight:
            # Where the integral servo comes to rest (u = 0 at q = q_ref): the learned EE
            # GP's prediction there, with its predictive variance (no data: cost ~ 1).
            e_m, e_v = gp_predict(g_rest, th[:, dx * dx :])
            rest = expected_saturating_cost(e_m, torch.diag_embed(e_v), goal_t, width)
            cost = cost + params.rest_weight * rest
        total = cost.sum()
        if not torch.isfinite(total):
            return 1e10, np.zeros_like(flat)
        total.backward()
        last_costs[:] = cost.detach().numpy()
        return float(total.detach()), th.grad.numpy().ravel()

    res = scipy.optimize.minimize(
        objective,
        np.asarray(theta0, np.float64).ravel(),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": params.policy_iters},
    )
    fallback = not np.isfinite(res.fun) or res.fun >= 1e10
    theta = np.asarray(theta0, np.float64) if fallback else res.x.reshape(B, -1)
    final, _ = objective(theta.ravel())
    return OptimisationResult(
        theta=theta,
        predicted_cost=last_costs.copy(),
        iterations=int(res.nit),
        fallback=bool(fallback or final >= 1e10),
        message=str(res.message),
    )


def linear_params(theta: Any, nj: int) -> tuple[Any, Any]:
    """theta (..., nj * nj + nj) = [K.ravel(), q_ref] -> W = -K, b = K q_ref (the policy
    u = sin(K (q_ref - q)) = sin(W q + b)). The gain/target form is the same linear policy
    but well conditioned: q_ref moves the fixed point, K its speed (docs/pilco.md)."""
    K = theta[..., : nj * nj].reshape(*theta.shape[:-1], nj, nj)
    q_ref = theta[..., nj * nj :]
    return -K, (K @ q_ref[..., None])[..., 0]


def initial_theta(q_ref: np.ndarray, gain: float) -> np.ndarray:
    """(nj * nj + nj,) parameters of u = sin(gain (q_ref - q)) (a diagonal servo)."""
    nj = len(q_ref)
    return np.concatenate([gain * np.eye(nj).ravel(), q_ref])


def data_starts(
    fk: ForwardKinematics, q_data: np.ndarray, goals: np.ndarray, gain: float
) -> np.ndarray:
    """(B, nj * nj + nj) start parameters with q_ref = the recorded q (N, nj) whose end
    effector is nearest each goal (B, 3) m: a start inside the data, near the answer."""
    with torch.no_grad():
        ee = fk(torch.as_tensor(q_data, dtype=torch.float64)).numpy()
    nearest = np.argmin(((ee[None] - goals[:, None]) ** 2).sum(-1), axis=1)
    return np.stack([initial_theta(q_data[k], gain) for k in nearest])


def policy_action(theta: np.ndarray, q: np.ndarray) -> np.ndarray:
    """u = sin(clip(W q + b, -pi/2, pi/2)): theta (nj * nj + nj,), q (nj,) rad -> action
    (nj,) in [-1, 1].

    The clip changes nothing while |W q + b| <= pi/2; beyond it a plain sine turns back
    and has false fixed points at K (q_ref - q) = +-pi, where a far start stopped 0.4-0.7 m
    from the goal (docs/pilco.md); clipped, the action saturates towards q_ref instead.
    The moment matching keeps the sine (exact moments), which under-predicts the speed of
    such far starts, the cautious side.
    """
    W, b = linear_params(theta, len(q))
    return np.sin(np.clip(W @ q + b, -np.pi / 2, np.pi / 2))


class GoalPolicies:
    """The artifact: one optimised policy per known goal, chosen by the goal in the
    observation (obs[goal slice], m). goals (G, 3) m, thetas (G, nj * nj + nj)."""

    def __init__(self, goals: np.ndarray, thetas: np.ndarray, goal_slice: tuple[int, int], nj: int):
        self.goals = np.asarray(goals, np.float64).reshape(-1, 3)
        self.thetas = np.asarray(thetas, np.float64).reshape(len(self.goals), nj * nj + nj)
        self.goal_slice, self.nj = (int(goal_slice[0]), int(goal_slice[1])), int(nj)
        self.dx, self.du = 2 * self.nj + 6, self.nj  # the reach observation -> the action

    def act(self, obs: np.ndarray, env: Any = None) -> np.ndarray:
        goal = np.asarray(obs, np.float64)[self.goal_slice[0] : self.goal_slice[1]]
        if len(self.goals) == 0:
            raise ValueError("no PILCO policy optimised yet")
        dist = np.linalg.norm(self.goals - goal, axis=1)
        k = int(np.argmin(dist))
        if dist[k] > 1e-4:  # obs is float32: 1e-4 m is far above its rounding
            raise ValueError(
                f"goal {np.round(goal, 4).tolist()} has no optimised PILCO policy (the learner "
                f"optimised {len(dist)} goals; nearest {dist[k]:.4f} m away)"
            )
        return policy_action(self.thetas[k], np.asarray(obs[: self.nj], np.float64))

    def save(self, path: str | Path) -> None:
        meta = {"nj": self.nj, "goal_slice": list(self.goal_slice)}
        save_model_file(path, "GoalPolicies", meta, {"goals": self.goals, "thetas": self.thetas})

    @classmethod
    def load(cls, path: str | Path) -> GoalPolicies:
        meta, arrays = load_model_file(path, "GoalPolicies")
        nj = int(meta["nj"])
        G = len(arrays.get("goals", ()))
        check_arrays(path, arrays, {"goals": (G, 3), "thetas": (G, nj * nj + nj)})
        return cls(arrays["goals"], arrays["thetas"], tuple(meta["goal_slice"]), nj)


class PilcoLearner:
    """Trajectories -> the GPs -> policies for the goals the schedule runs next.

    Args:
        task: "reach" only. arm: the arm (joints, home, start noise). params: the merged
            ("pilco", "reach") preset. seed: the run's seed (the schedule's training
            episodes are drawn from it; mbrl.loop.schedule).
    """

    def __init__(self, task: str, arm: ArmModel, params: dict[str, Any], seed: int) -> None:
        layout(ARTIFACT, task, arm.nj)  # reach only
        self.task, self.arm, self.nj = task, arm, arm.nj
        self.params = dict(params)  # the merged preset (the fitter reads its env block)
        self.settings = PilcoParams.from_params(params)
        self.obs = obs_layout(task, arm.nj)
        self.rng = np.random.default_rng(seed)
        self.sampler = arm.sampler(task)
        seeds = np.random.default_rng(seed)  # the schedule's draws, in its order
        self.train_seeds = [train_seed(seeds) for _ in range(self.settings.num_episodes)]
        self.fk: ForwardKinematics | None = None
        if self.settings.kinematics:  # the kinematic variant only; float64 for the gradients
            cfg = arm.config
            self.fk = ForwardKinematics(cfg.urdf, cfg.ee_link, tuple(cfg.joint_names),
                                        dtype=torch.float64)  # fmt: skip
        # Start distribution of every episode: home + U(-n, n) per joint -> variance n^2 / 3.
        self.m0 = np.asarray(arm.home, np.float64)
        self.S0 = np.eye(self.nj) * self.sampler.init_noise**2 / 3
        self.policies = GoalPolicies(np.zeros((0, 3)), np.zeros((0, self.nj * (self.nj + 1))),
                                     self.obs.goal, self.nj)  # fmt: skip
        self.model: PilcoModel | None = None
        self._layout = layout(ARTIFACT, task, arm.nj)

    def goals_after(self, done: int) -> np.ndarray:
        """(G, 3) m: the goals run after `done` training episodes: the next training
        episode's and, when an evaluation follows, the held-out episodes'."""
        s = self.settings
        goals = []
        if done < s.num_episodes:
            goals.append(self.sampler.episode(self.train_seeds[done]).goal)
        if done % s.eval_every == 0 or done >= s.num_episodes:
            goals += [e.goal for e in self.sampler.held_out(s.eval_goals, EVAL_SEED)]
        return np.asarray(goals, np.float64).reshape(-1, 3)

    def dataset(self, trajectories: Sequence[Trajectory]) -> TransitionDataset:
        """The transitions of the trajectories: observations, actions as taken."""
        kept = [(o, a) for o, a in trajectories if len(a) > 0]
        if not kept:
            raise ValueError(f"no transitions in {len(trajectories)} trajectories")
        return TransitionDataset.from_episodes(
            [np.asarray(o, np.float64) for o, _ in kept],
            [np.clip(np.asarray(a, np.float64), -1.0, 1.0) for _, a in kept],
        )

    def goal_mismatches(self, trajectories: Sequence[Trajectory]) -> int:
        """How many control episodes carry a goal other than the schedule's for their index
        (0 when the nodes share the seed). Not an error: the GPs do not use the goal, and the
        graph's recordings can carry the previous episode's goal (reported as a metric)."""
        g0, g1 = self.obs.goal
        count = 0
        for k, (obs, _) in enumerate(trajectories[: self.settings.num_episodes]):
            if k < self.settings.random_episodes or len(obs) == 0:
                continue  # exploring needs no goal
            want = self.sampler.episode(self.train_seeds[k]).goal
            got = np.asarray(obs, np.float64)[-1, g0:g1]
            count += int(np.linalg.norm(got - want) > 1e-4)
        return count

    def fit(self, trajectories: Sequence[Trajectory]) -> FitReport:
        """The GPs on all trajectories, then policies for `goals_after(len(trajectories))`.

        Raises:
            GPFitError: a GP's posterior cannot be factorised even with jitter.
        """
        start = time.perf_counter()
        kept = [(np.asarray(o, np.float64), np.clip(np.asarray(a, np.float64), -1.0, 1.0))
                for o, a in trajectories if len(a) > 0]  # fmt: skip
        if not kept:
            raise ValueError(f"no transitions in {len(trajectories)} trajectories")
        mismatches = self.goal_mismatches(trajectories)
        model, info = fit_model([o for o, _ in kept], [a for _, a in kept], self.obs,
                                self.settings, self.rng)  # fmt: skip
        self.model = model
        goals = self.goals_after(len(trajectories))
        starts = np.tile(initial_theta(self.m0, self.settings.init_gain), (len(goals), 1))
        if self.settings.init_from_data:
            q_data = np.vstack([o[:, : self.nj] for o, _ in kept])
            starts = data_starts(self.fk, q_data, goals, self.settings.init_gain)
        t0 = time.perf_counter()
        opt = optimise_policies(model, goals, self.m0, self.S0, self.settings, starts, self.fk)
        self.policies = GoalPolicies(goals, opt.theta, self.obs.goal, self.nj)
        extra = {
            **info,
            "holdout_mse": float("nan"),  # no held-out split: every row trains the GPs
            "schedule_goal_mismatches": mismatches,
            "policy_seconds": time.perf_counter() - t0,
            "policy_goals": len(goals),
            "policy_iters": opt.iterations,
            "policy_fallback": float(opt.fallback),
            "predicted_cost": float(np.mean(opt.predicted_cost)),
        }
        return FitReport(num_transitions=sum(len(a) for _, a in kept),
                         seconds=time.perf_counter() - start, extra=extra)  # fmt: skip

    def artifacts(self) -> dict[str, Any]:
        """What a fit produced, by kind: the per-goal policies (run by the actor)."""
        return {ARTIFACT: self.policies}

    def restore(self, artifacts: dict[str, Any]) -> None:
        """Continue from a checkpoint's policies (the GPs are refitted on the next fit)."""
        if ARTIFACT in artifacts:
            self.policies = artifacts[ARTIFACT]

    def layout(self) -> dict[str, Any]:
        return dict(self._layout)


class PilcoActor:
    """The policies as the actor: observation (dobs,) -> the action of its goal's policy.

    `act` raises ValueError for a goal without a policy or a non-finite action (the
    controller then holds the arm and reports it)."""

    def __init__(self, policies: GoalPolicies) -> None:
        self.policies = policies
        self.goal: np.ndarray | None = None
        self.action_bounds = (-1.0, 1.0)

    def reset(self) -> None:
        """Nothing to forget: each policy is a function of the observation."""

    def set_goal(self, goal: np.ndarray) -> None:
        self.goal = np.asarray(goal, float)  # the goal reaches the policy in the observation

    def act(self, obs: np.ndarray, deadline: float | None = None) -> np.ndarray:
        u = self.policies.act(np.asarray(obs, float))
        if u.shape != (self.policies.nj,) or not np.all(np.isfinite(u)):
            raise ValueError(f"PILCO policy returned {u.tolist()}; expected finite actions")
        return u

    def warmup(self, obs: np.ndarray, times: int = 1) -> None:
        """Nothing to warm up (a matrix product per tick)."""


def make_learner(
    algo: str, task: str, arm: ArmModel, params: dict[str, Any], seed: int
) -> PilcoLearner:
    return PilcoLearner(task, arm, params, seed)


def make_actor(
    algo: str,
    task: str,
    arm: ArmModel,
    artifact: GoalPolicies,
    params: dict[str, Any],
    seed: int = 0,
    stream: int = 0,
    planner_overrides: dict[str, Any] | None = None,
) -> PilcoActor:
    """The registry's actor factory: the per-goal policies run as they are (no planner)."""
    layout(algo, task, arm.nj)  # reach only
    if getattr(artifact, "nj", None) != arm.nj:
        raise ValueError(
            f"PILCO policies are for {getattr(artifact, 'nj', '?')} joints; the arm has {arm.nj}"
        )
    return PilcoActor(artifact)


def layout(algo: str, task: str, nj: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the PILCO artifact's inputs and outputs mean: the reach observation (goal picks
    the policy, q feeds it) -> increments."""
    if task != "reach":
        raise ValueError(f"pilco is implemented for the reach task only, got {task!r}")
    return {"learner": "pilco", "task": task, "inputs": "reach observation",
            "dobs": obs_size(task, nj), "action": "increment"}  # fmt: skip

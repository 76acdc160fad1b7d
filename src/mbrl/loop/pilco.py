"""PILCO on the reach task (Deisenroth & Rasmussen 2011; Deisenroth, Rasmussen & Fox 2011,
"Learning to control a low-cost manipulator using data-efficient RL").

Loop: one episode of uniformly random actions; then repeat { fit a GP on all transitions of
the joint positions q; optimise a sine-squashed linear policy u = sin(W q + b) for the
episode's goal by L-BFGS on the analytically predicted sum of expected saturating costs
(mbrl.loop.pilco_mm) plus the cost at the policy's fixed point (where the arm settles after
the horizon); run it for one real episode }. Evaluation optimises one policy per held-out
goal on the current GP (no real steps) and runs it.

Simplifications (stated in docs/pilco.md): the model state is the joint positions only
(the position servos track each 0.1 rad increment within a 50 ms tick, so velocities add
little: docs/pilco.md has the one-step residuals); the goal is fixed per policy (PILCO's own
setting), so each goal gets its own 30-parameter policy; the end effector's distribution
comes from FK linearised at the state mean.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import scipy.optimize
import torch

from mbrl.agents.presets import ParamError
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.costs.saturating import expected_saturating_cost, saturating_cost
from mbrl.data.dataset import TransitionDataset
from mbrl.loop.common import (
    EVAL_SEED,
    ExperimentConfig,
    RunRecorder,
    evaluate,
    make_task_env,
    obs_layout,
    torch_threads,
    train_reset_seed,
)
from mbrl.loop.pilco_mm import GPTensors, fk_ee, gp_ee, gp_predict, predicted_cost
from mbrl.models.gp import GPModel


@dataclasses.dataclass(frozen=True)
class PilcoParams:
    """PILCO settings for the reach task; override any field through config.algo_params.

    Attributes:
        horizon: prediction horizon of the policy objective, steps (15 = 0.75 s at 20 Hz:
            at 0.1 rad per step every joint can cross 1.5 rad).
        cost_widths: sigma_c of the saturating cost (m) for successive optimisation stages,
            each warm-started from the last: a wide cost has gradients from 0.3 m away, a
            narrow one then pays for the last centimetres (a wide one barely does).
        num_inducing: sparse-GP basis size M once there are more transitions (moment
            matching is O(E^2 M^2 D) per step).
        gp_max_iter / gp_hyp_points: L-BFGS-B iterations and rows for the GP
            hyper-parameters.
        policy_iters: L-BFGS-B iterations of each optimisation stage.
        random_episodes: episodes of uniformly random actions before the first policy.
        init_gain: K = init_gain I at the start of each optimisation (with q_ref = home).
        terminal_weight: extra weight of the last predicted step's cost (the real episode
            continues after the horizon, at about that state).
        init_from_data: start q_ref at the recorded joint positions whose FK is nearest
            each goal instead of at home (off in the measured runs; docs/pilco.md).
        kinematics: use the arm's known forward kinematics in the objective (the old
            variant): the end effector is FK of the predicted joints and the fixed-point
            term below is added. False (default): the end effector is the learned EE GP's
            prediction, nothing else.
        ee_num_inducing: sparse basis size of the end-effector GP (measured q -> measured
            ee, fitted on every recorded state).
        rest_weight: (learned variant) weight of the expected saturating cost of the EE
            GP's prediction at the policy's resting point q_ref.
        rest_num_inducing: basis size of the resting-point EE GP (the EE GP's kernel; exact
            up to this many rows, 0 = always exact; equal to ee_num_inducing: the EE GP).
        fixed_point_weight: (kinematics only) weight of the saturating cost of the
            policy's fixed point fk(q_ref) (q_ref clamped to the joint limits, plus a
            quadratic pull back inside them). Actions are increments of the
            commanded position, so u = sin(K (q_ref - q)) keeps moving the command until
            q = q_ref: wherever it is stable the arm settles there, after the horizon, on
            any plant (docs/pilco.md). 0 = rollout cost only.
    """

    horizon: int = 15
    cost_widths: tuple[float, ...] = (0.25, 0.05, 0.02)
    num_inducing: int = 50
    gp_max_iter: int = 100
    gp_hyp_points: int = 300
    policy_iters: int = 20
    random_episodes: int = 1
    init_gain: float = 3.0
    terminal_weight: float = 0.0
    init_from_data: bool = False
    fixed_point_weight: float = 100.0
    kinematics: bool = False
    ee_num_inducing: int = 50
    rest_weight: float = 100.0
    rest_num_inducing: int = 1000

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> PilcoParams:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(config.algo_params) - known
        if unknown:
            raise ParamError(f"unknown pilco algo_params {sorted(unknown)}; known {sorted(known)}")
        kw = dict(config.algo_params)
        if "cost_widths" in kw:
            kw["cost_widths"] = tuple(float(w) for w in kw["cost_widths"])
        return cls(**kw)


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
        # Every measured (q, ee) pair, the last state of each episode included.
        X = np.vstack([s[:, q0:q1] for s in states])
        Y = np.vstack([s[:, e0:e1] for s in states])
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
    """Evaluation controller: one optimised policy per known goal, chosen by the goal in the
    observation (obs[goal slice], m)."""

    def __init__(self, goals: np.ndarray, thetas: np.ndarray, goal_slice: tuple[int, int], nj: int):
        self.goals, self.thetas, self.goal_slice, self.nj = goals, thetas, goal_slice, nj

    def act(self, obs: np.ndarray, env: Any = None) -> np.ndarray:
        goal = obs[self.goal_slice[0] : self.goal_slice[1]]
        dist = np.linalg.norm(self.goals - goal, axis=1)
        k = int(np.argmin(dist))
        if dist[k] > 1e-4:  # obs is float32: 1e-4 m is far above its rounding
            raise ValueError(f"goal {goal.tolist()} has no optimised policy; known {len(dist)}")
        return policy_action(self.thetas[k], obs[: self.nj].astype(np.float64))


def held_out_goals(env, n_goals: int) -> np.ndarray:
    """(n_goals, 3) the goals `evaluate` will reset to (seeds EVAL_SEED + i)."""
    goals = []
    for i in range(n_goals):
        env.reset(seed=EVAL_SEED + i)
        goals.append(np.array(env.unwrapped.goal, np.float64))
    return np.stack(goals)


def run_pilco(config: ExperimentConfig, recorder: RunRecorder) -> dict:
    """PILCO driver (mbrl.loop.registry "pilco"); reach task only."""
    if config.task != "reach":
        raise ValueError(f"pilco is implemented for the reach task only, got {config.task!r}")
    params = PilcoParams.from_config(config)
    with torch_threads(1):
        return _run(config, recorder, params)


def _run(config: ExperimentConfig, recorder: RunRecorder, params: PilcoParams) -> dict:
    rng = np.random.default_rng(config.seed)
    env = make_task_env(config.task, config.seed, max_steps=config.episode_steps)
    try:
        arm, cfg = env.unwrapped.arm, env.unwrapped.config
        nj = len(arm.joint_names)
        layout = obs_layout(config.task, nj)
        # The arm's kinematics are built only for the kinematic variant (and its data starts):
        # the default objective sees nothing but the learned GPs.
        fk = None
        if params.kinematics or params.init_from_data:
            fk = ForwardKinematics(cfg.urdf, cfg.ee_link, cfg.joint_names, dtype=torch.float64)
        # Start distribution of every episode: home + U(-n, n) per joint -> variance n^2 / 3.
        m0 = np.asarray(arm.home, np.float64)
        S0 = np.eye(nj) * env.unwrapped.init_noise**2 / 3
        eval_goals = held_out_goals(env, config.eval_goals)
        start_theta = initial_theta(m0, params.init_gain)
        eval_theta = np.tile(start_theta, (config.eval_goals, 1))

        def starts(goals: np.ndarray) -> np.ndarray:
            if params.init_from_data:
                q_data = np.vstack([x[:, :nj] for x in states])
                return data_starts(fk, q_data, goals, params.init_gain)
            return np.tile(start_theta, (len(goals), 1))

        def run_eval(steps: int, **extra: float) -> None:
            ctrl = GoalPolicies(eval_goals, eval_theta, layout.goal, nj)
            res = evaluate(env, ctrl, n_goals=config.eval_goals)
            recorder.log(
                env_steps=steps,
                success_rate=res["success_rate"],
                final_distance=res["final_distance"],
                **extra,
            )

        run_eval(0)  # the starting point: u = sin(K (home - q)) holds the arm at home
        states, actions, steps, episode, model = [], [], 0, 0, None
        theta = start_theta
        while steps < config.budget_steps:
            T = min(config.episode_steps, config.budget_steps - steps)
            obs, _ = env.reset(seed=train_reset_seed(rng))
            goal = obs[layout.goal[0] : layout.goal[1]].astype(np.float64)
            info: dict[str, float] = {}
            if episode >= params.random_episodes:
                res = optimise_policies(model, goal[None], m0, S0, params, starts(goal[None]), fk)
                theta = res.theta[0]
                info = {
                    "predicted_cost": float(res.predicted_cost[0]),
                    "policy_iters": res.iterations,
                }
            ep_obs, ep_act = [obs], []
            for _ in range(T):
                if episode < params.random_episodes:
                    a = rng.uniform(-1.0, 1.0, nj)
                else:
                    a = policy_action(theta, obs[:nj].astype(np.float64))
                obs, _, terminated, truncated, _ = env.step(a)
                ep_obs.append(obs)
                ep_act.append(np.clip(a, -1.0, 1.0))
                if terminated:
                    break
            ep_obs, ep_act = np.asarray(ep_obs, np.float64), np.asarray(ep_act, np.float64)
            recorder.record_episode(
                episode, ep_obs, ep_act, arm.joint_names, goal, cfg.control_period
            )
            states.append(ep_obs)
            actions.append(ep_act)
            steps += len(ep_act)
            episode += 1
            model, fit_info = fit_model(states, actions, layout, params, rng)
            recorder.checkpoint(model.dynamics, f"gp_episode{episode:03d}")
            if model.ee is not None:
                recorder.checkpoint(model.ee, f"ee_gp_episode{episode:03d}")
            if episode % config.eval_every == 0 or steps >= config.budget_steps:
                opt = optimise_policies(model, eval_goals, m0, S0, params, starts(eval_goals), fk)
                eval_theta = opt.theta
                run_eval(
                    steps,
                    eval_predicted_cost=float(np.mean(opt.predicted_cost)),
                    **fit_info,
                    **info,
                )
        full = TransitionDataset.from_episodes(states, actions)
        recorder.save_data(full)
        return recorder.finish(params=dataclasses.asdict(params))
    finally:
        env.close()

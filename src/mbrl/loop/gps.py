"""Mirror-descent guided policy search (MDGPS; Montgomery & Levine 2016) on the arm tasks.

Each iteration, for every training initial condition i (docs/gps.md):
1. run `samples` episodes of the local time-varying linear-Gaussian controller p_i on the
   real env (exploration from its own covariance);
2. fit local dynamics x_{t+1} ~ N(A_t x + B_t u + c_t, Sigma_t) to them, with a GMM/NIW
   prior fitted on all data so far (Levine & Abbeel 2014, sec. 3.1;
   mbrl.models.local_lg.TimeVaryingLinearGaussian);
3. C-step: LQG on the second-order cost expansion under KL(p_i || pi_bar_i) <= epsilon_i,
   where pi_bar_i is, with anchor="global", the global policy linearised about p_i's
   samples, and with anchor="local" (shipped) or before the global policy has been trained,
   the previous local controller (mbrl.control.gps_kl.kl_step);
   epsilon_i = base_kl_step * T * step_mult_i, step_mult_i adapted from predicted vs actual
   improvement;
4. S-step: the global MLP regresses the new local mean actions at the sampled states,
   weighted by the local precisions (mbrl.loop.gps_policy).
The global policy is evaluated on the held-out goals after every iteration.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from mbrl.agents.presets import ParamError
from mbrl.control.gps_kl import KLStepConfig, LinearGaussianDynamics, kl_step
from mbrl.data.dataset import TransitionDataset
from mbrl.loop.common import ExperimentConfig, RunRecorder, evaluate, make_task_env, obs_layout
from mbrl.loop.gps_local import (
    draw_conditions,
    expected_cost,
    initial_controller,
    local_dim,
    make_cost,
    quadratic_cost,
    rollout,
    sample_controller,
    sample_costs,
    step_multiplier,
)
from mbrl.loop.gps_policy import GlobalPolicy
from mbrl.models.gmm_prior import GMMPrior
from mbrl.models.local_lg import TimeVaryingLinearGaussian


@dataclasses.dataclass(frozen=True)
class GPSConfig:
    """MDGPS settings (shipped per task in PRESETS; override through algo_params).

    Attributes:
        conditions: training initial conditions (goal, cube) drawn from the task distribution.
        samples: real episodes per condition and iteration.
        init_std: std of the initial zero-mean controller, normalised action units.
        base_kl_step: KL bound per time step, nats; epsilon = base_kl_step * T * step_mult.
        min_step_mult / max_step_mult: bounds of the adaptive step multiplier.
        prior_components / prior_strength: GMM dynamics prior (mbrl.models.gmm_prior).
        hidden: global MLP hidden widths.
        policy_steps / policy_batch / policy_lr: Adam steps of each S-step.
        anchor: what the C-step's KL bound is measured to: "global" (MDGPS, the linearised
            global policy) or "local" (the previous local controller, as in Levine & Abbeel
            2014; the global policy is then a plain supervised learner).
        l2_weight: weight of the squared-distance terms added to the task cost, per m^2 and
            step (mbrl.loop.gps_local.SquaredDistanceTerms).
        action_limit: every action (local samples, global policy) is clipped to +- this,
            normalised units (1 = 0.1 rad per tick).
        action_weight: weight of ||u||^2 per step in the cost (normalised units).
        approach_offset: push: the tip terms pull the tip to the pushing point this far
            behind the cube, m (mbrl.costs.push.PushCost.pushing_point).
        random_start: training conditions start at the env's randomised start pose instead
            of exactly at home.
        policy_memory: the S-step regresses the new local controllers' mean actions at the
            sampled states of this many most recent iterations (1 = this iteration only).
        relative_features: the global policy sees the joint state and the tip-to-target
            vectors only (mbrl.loop.gps_policy.GlobalPolicy, `relative`).
        cone_weight: scale of the task cost's distance terms (cones) in the local cost; 0
            makes the local cost exactly quadratic in the local state (the C-step's expansion
            of a cone plus a squared term aims 1 / (2 l2_weight) m past the target,
            docs/gps.md).
        l2_terminal: multiplier of the squared-distance terms at the final step.
        limit_weight: weight of the joint-limit barrier in the local cost (the env clamps
            commands to the limits anyway; a barrier band inside the limits makes goals
            whose joint solution lies in it unreachable for the local controllers).
        prior_max_rows: the GMM prior is fitted on at most this many most recent rows.
    """

    conditions: int = 4
    samples: int = 5
    init_std: float = 0.1
    base_kl_step: float = 0.5
    min_step_mult: float = 0.1
    max_step_mult: float = 2.0
    prior_components: int = 8
    prior_strength: float = 1.0
    hidden: tuple[int, ...] = (64, 64)
    policy_steps: int = 1000
    policy_batch: int = 256
    policy_lr: float = 1e-3
    anchor: str = "local"
    l2_weight: float = 10.0
    action_limit: float = 1.0
    action_weight: float = 1e-3
    approach_offset: float = 0.0
    random_start: bool = False
    policy_memory: int = 1
    relative_features: bool = False
    cone_weight: float = 0.0
    l2_terminal: float = 5.0
    limit_weight: float = 0.0
    prior_max_rows: int = 20_000

    def __post_init__(self) -> None:
        if self.conditions < 1 or self.samples < 1 or self.policy_memory < 1:
            raise ValueError(
                f"GPSConfig needs conditions, samples and policy_memory >= 1; got "
                f"{self.conditions}, {self.samples}, {self.policy_memory}"
            )
        if self.anchor not in ("global", "local"):
            raise ValueError(f"GPSConfig.anchor must be 'global' or 'local', got {self.anchor!r}")
        if not (self.init_std > 0 and self.base_kl_step > 0):
            raise ValueError(
                f"GPSConfig needs init_std > 0 and base_kl_step > 0; got {self.init_std}, "
                f"{self.base_kl_step}"
            )
        if not 0 < self.action_limit <= 1:
            raise ValueError(f"GPSConfig.action_limit must be in (0, 1], got {self.action_limit}")


# Measured on validation goals (seeds unused by training and by the held-out evaluation),
# docs/gps.md. Both: small exploration noise (the action is a joint increment, so the noise
# integrates into a random walk of the arm), the KL bound to the previous local controller
# (with the MDGPS anchor the poorly fitted global policy pulled the local controllers back),
# step multiplier at most 2. Reach: many conditions with one sample each, because the global
# policy generalises from the number of goals it has seen. Push: gentle actions (+-0.35, the
# tip must not knock the cube away), the tip pulled to the pushing point behind the cube, and
# two samples per condition for the contact dynamics.
PRESETS: dict[str, GPSConfig] = {
    "reach": GPSConfig(conditions=20, samples=1, base_kl_step=4.0),
    "push": GPSConfig(
        conditions=10, samples=2, base_kl_step=3.0, action_limit=0.35, approach_offset=0.035
    ),
}


def gps_config(task: str, params: dict[str, Any]) -> GPSConfig:
    """The shipped preset for `task` with `params` (ExperimentConfig.algo_params) applied."""
    base = PRESETS[task]
    known = {f.name for f in dataclasses.fields(GPSConfig)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ParamError(f"gps: unknown algo_params {unknown}; expected some of {sorted(known)}")
    params = dict(params)
    if "hidden" in params:
        params["hidden"] = tuple(int(h) for h in params["hidden"])
    return dataclasses.replace(base, **params)


def _dynamics(fit: TimeVaryingLinearGaussian, X: np.ndarray) -> LinearGaussianDynamics:
    x0 = X[:, 0]
    x0_cov = np.cov(x0.T, bias=True) + 1e-6 * np.eye(X.shape[2])
    return LinearGaussianDynamics(fit.A, fit.B, fit.c, fit.Sigma, x0.mean(0), x0_cov)


def run_gps(config: ExperimentConfig, recorder: RunRecorder) -> dict[str, Any]:
    """MDGPS driver (module docstring); returns recorder.finish(...)."""
    torch.set_num_threads(1)
    # One BLAS thread: the per-step fits and LQG passes are many small dense operations,
    # which OpenBLAS's spinning threads slow down several times on a shared machine.
    with threadpool_limits(1):
        return _run_gps(config, recorder)


def _run_gps(config: ExperimentConfig, recorder: RunRecorder) -> dict[str, Any]:
    gcfg = gps_config(config.task, config.algo_params)
    rng = np.random.default_rng(config.seed)
    torch_gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    T = config.episode_steps
    env = make_task_env(config.task, seed=int(rng.integers(2**31)), max_steps=T)
    arm = env.unwrapped.arm
    nj, du = len(arm.joint_names), env.action_space.shape[0]
    dx = local_dim(config.task, nj)
    g = obs_layout(config.task, nj).goal
    conds = draw_conditions(env, gcfg.conditions, rng, slice(*g), gcfg.random_start)
    costs = [
        make_cost(
            config.task,
            nj,
            c.goal,
            arm.lower,
            arm.upper,
            gcfg.l2_weight,
            gcfg.approach_offset,
            gcfg.action_weight,
            gcfg.cone_weight,
            gcfg.l2_terminal,
            gcfg.limit_weight,
        )
        for c in conds
    ]
    lim = gcfg.action_limit
    local = [initial_controller(T, dx, du, gcfg.init_std) for _ in conds]
    obj = (2 * nj + 3, 2 * nj + 6) if config.task == "push" else None
    policy = GlobalPolicy(
        dx, du, (2 * nj, 2 * nj + 3), obj, gcfg.hidden, torch_gen, gcfg.relative_features
    )
    prior = GMMPrior(gcfg.prior_components, gcfg.prior_strength, max_rows=gcfg.prior_max_rows)
    mult = np.ones(len(conds))
    prev_cost, predicted = np.full(len(conds), np.nan), np.full(len(conds), np.nan)
    all_obs, all_act, z_rows = [], [], []
    history: list[list[np.ndarray]] = [[] for _ in conds]
    per_condition: list[dict[str, list[float]]] = []  # local_conditions.json, per iteration
    env_steps, episode, iteration = 0, 0, 0
    per_iter = len(conds) * gcfg.samples * T
    if per_iter > config.budget_steps:
        raise ValueError(
            f"gps: one iteration needs conditions*samples*episode_steps = {per_iter} steps; "
            f"budget_steps is {config.budget_steps}"
        )

    def act(obs: np.ndarray, _env: Any) -> np.ndarray:
        return np.clip(policy.mean(obs[None, :dx], obs[g[0] : g[1]])[0], -lim, lim)

    def eval_env():
        return make_task_env(config.task, seed=config.seed, max_steps=T)

    # The starting point: the untrained global policy (zero output: the arm holds still).
    ev = evaluate(eval_env, act, n_goals=config.eval_goals)
    recorder.log(env_steps=0, success_rate=ev["success_rate"], final_distance=ev["final_distance"])
    while env_steps + per_iter <= config.budget_steps:
        # 1. samples from the local controllers
        data, finals, pinned = [], [], []
        for i, cond in enumerate(conds):
            O, U = [], []
            for _ in range(gcfg.samples):
                obs, u, dist = sample_controller(
                    env, cond, local[i], rng, int(rng.integers(2**31)), lim
                )
                recorder.record_episode(
                    episode, obs, u, arm.joint_names, cond.goal, 1.0 / env.metadata["render_fps"]
                )
                episode += 1
                O.append(obs)
                U.append(u)
                finals.append(dist)
            O, U = np.asarray(O), np.asarray(U)
            # How close the final joints came to a hard limit (rad): a controller pinned
            # there has left the region its linear dynamics describe.
            q_end = O[:, -1, :nj]
            pinned.append(float(np.min(np.minimum(q_end - arm.lower, arm.upper - q_end))))
            all_obs += list(O)
            all_act += list(U)
            X = O[:, :, :dx]
            data.append((X, U))
            z_rows.append(np.concatenate([X[:, :-1], U, X[:, 1:]], axis=2).reshape(-1, 2 * dx + du))
        env_steps += per_iter
        # 2. dynamics: GMM prior on everything seen, a linear-Gaussian fit per condition
        prior.fit(np.concatenate(z_rows), rng)
        kls, sample_cost = [], []
        for i, (X, U) in enumerate(data):
            fit = TimeVaryingLinearGaussian(dx, du, T)
            fit.fit_trajectories(X, U, prior)
            dyn = _dynamics(fit, X)
            cost_now = float(sample_costs(costs[i], X, U).mean())
            sample_cost.append(cost_now)
            if np.isfinite(prev_cost[i]):
                mult[i] = step_multiplier(
                    mult[i],
                    predicted[i],
                    prev_cost[i] - cost_now,
                    gcfg.min_step_mult,
                    gcfg.max_step_mult,
                )
            prev_cost[i] = cost_now
            # 3. C-step towards the linearised global policy
            C, cv = quadratic_cost(costs[i], X, U, dyn)
            anchor = local[i]
            if policy.trained and gcfg.anchor == "global":
                anchor = policy.linearize(X[:, :T].mean(0), conds[i].goal)
            eps = gcfg.base_kl_step * T * mult[i]
            res = kl_step(dyn, anchor, C, cv, KLStepConfig(epsilon=eps))
            predicted[i] = expected_cost(dyn, local[i], C, cv) - expected_cost(
                dyn, res.policy, C, cv
            )
            local[i] = res.policy
            kls.append(res.kl)
        # 4. S-step on the new local controllers' mean actions at the sampled states
        xs, goals, targets, precs = [], [], [], []
        for i, (X, _) in enumerate(data):
            # States of the last `policy_memory` iterations, labelled by the new controller.
            history[i] = (history[i] + [X[:, :T]])[-gcfg.policy_memory :]
            Xt = np.concatenate(history[i])  # (S, T, dx)
            # The env only ever applies clipped actions: regress on what would be applied.
            mean_u = np.clip(np.einsum("tux,stx->stu", local[i].K, Xt) + local[i].k, -lim, lim)
            xs.append(Xt.reshape(-1, dx))
            targets.append(mean_u.reshape(-1, du))
            goals.append(np.broadcast_to(conds[i].goal, (Xt.shape[0] * T, 3)))
            P = np.linalg.inv(local[i].cov)
            precs.append(np.broadcast_to(P, (Xt.shape[0], T, du, du)).reshape(-1, du, du))
        loss = policy.fit(
            np.concatenate(xs),
            np.concatenate(goals),
            np.concatenate(targets),
            np.concatenate(precs),
            generator=torch_gen,
            steps=gcfg.policy_steps,
            batch=gcfg.policy_batch,
            lr=gcfg.policy_lr,
        )
        iteration += 1
        # Diagnostic only (no learning uses it, so not in the budget, like the evaluation):
        # the global policy's mean on the training conditions, against the local controllers.
        policy_train = [
            rollout(
                env,
                c,
                lambda t, x, goal=c.goal: policy.mean(x[None], goal)[0],
                T,
                dx,
                int(rng.integers(2**31)),
                lim,
            )[2]
            for c in conds
        ]
        ev = evaluate(eval_env, act, n_goals=config.eval_goals)
        by_cond = np.asarray(finals).reshape(len(conds), gcfg.samples)
        train_success = float(np.mean(by_cond < env.unwrapped.success_threshold))
        per_condition.append(
            {
                "final_distance": by_cond.mean(1).tolist(),
                "success": (by_cond < env.unwrapped.success_threshold).mean(1).tolist(),
                "joint_limit_margin": pinned,
                "policy_distance": [float(d) for d in policy_train],
            }
        )
        (recorder.run_dir / "local_conditions.json").write_text(json.dumps(per_condition) + "\n")
        recorder.log(
            env_steps=env_steps,
            success_rate=ev["success_rate"],
            final_distance=ev["final_distance"],
            iteration=iteration,
            local_cost=float(np.mean(sample_cost)),
            local_final_distance=float(np.mean(finals)),
            local_success=train_success,
            policy_train_distance=float(np.mean(policy_train)),
            kl=float(np.mean(kls)),
            step_mult=float(np.mean(mult)),
            policy_loss=loss,
        )
    env.close()
    recorder.checkpoint(policy, "global_policy")
    if all_obs:
        recorder.save_data(TransitionDataset.from_episodes(all_obs, all_act))
    return recorder.finish(iterations=iteration, conditions=len(conds), samples=gcfg.samples)

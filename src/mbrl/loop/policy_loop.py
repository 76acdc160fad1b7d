"""Algorithm 4: learn a neural policy by back-propagating through the learned model.

Loop: one episode of uniformly random actions; then repeat { fit the probabilistic ensemble
(PETS, Chua et al. 2018) on all transitions; train a goal-conditioned policy
pi(obs) = tanh(k (r(goal) - q)) (an MLP r maps the goal to the joint target the policy holds)
by gradient descent on the reach cost of imagined rollouts through the ensemble plus the
distance at the policy's fixed point, fk(r(goal)); run the policy for one real episode }.

The gradient is pathwise (PILCO's analytic gradient replaced by back-propagation through
sampled trajectories, as in Deisenroth & Rasmussen 2011 sec. 6 and later PIPPS, Parmas et al.
2018; Dreamer, Hafner et al. 2020): each imagined step is x' = x + mu_e(x, u) +
sigma_e(x, u) * eps with eps drawn once (reparameterisation), particles keep their member
(TS-1), so d cost / d theta flows through the model's mean and noise scale.
Model state: the observation without the goal, [q, qdot, ee] (2 nj + 3); the goal is
constant in an episode, so it is appended for the policy and the cost only.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor

from mbrl.costs.kinematics import ForwardKinematics
from mbrl.costs.reach import ReachCost, StateLayout
from mbrl.data.dataset import TransitionDataset
from mbrl.loop.common import (
    ExperimentConfig,
    RunRecorder,
    evaluate,
    make_task_env,
    obs_layout,
    torch_threads,
    train_reset_seed,
)
from mbrl.loop.policy_nets import MLPPolicy, TargetPolicy, sample_goals
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.models.ensemble_fit import FitConfig


@dataclasses.dataclass(frozen=True)
class PolicyParams:
    """Algorithm 4 settings for the reach task; override through config.algo_params.

    Attributes:
        ensemble_size / model_hidden / model_epochs: the ensemble (E members, MLP widths,
            maximum fit epochs per episode).
        policy_hidden: widths of the policy MLP (tanh hidden units and output).
        horizon: imagined rollout length, steps (20 = 1 s at 20 Hz).
        particles: imagined rollouts per gradient step (a multiple of ensemble_size).
        policy_steps: Adam steps on the policy after each model fit (the policy carries
            over between episodes, so training accumulates).
        lr: Adam learning rate of the policy.
        random_episodes: episodes of uniformly random actions before the first policy.
        policy_form: "target" (`TargetPolicy`: u = tanh(k (r(goal) - q)), an MLP maps the
            goal to the joint target r it holds) or "mlp" (`MLPPolicy`, any map of the
            observation).
        fixed_point_weight: "target" only: weight of the distance from fk(r(goal)) to the
            goal, the point the arm settles at after any horizon (docs/pilco.md), on
            `fixed_point_goals` goals per step; 0 = rollout cost only.
        fixed_point_steps: "target" only: extra Adam steps on the fixed-point term alone
            after each rollout step.
    """

    ensemble_size: int = 5
    model_hidden: tuple[int, ...] = (128, 128)
    model_epochs: int = 300
    policy_hidden: tuple[int, ...] = (128, 128)
    horizon: int = 20
    particles: int = 40
    policy_steps: int = 300
    lr: float = 1e-2
    random_episodes: int = 1
    policy_form: str = "target"
    fixed_point_weight: float = 30.0
    fixed_point_goals: int = 256
    fixed_point_steps: int = 10

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> PolicyParams:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(config.algo_params) - known
        if unknown:
            raise ValueError(f"unknown policy algo_params {sorted(unknown)}; known {sorted(known)}")
        kw = dict(config.algo_params)
        for k in ("model_hidden", "policy_hidden"):
            if k in kw:
                kw[k] = tuple(int(h) for h in kw[k])
        params = cls(**kw)
        if params.policy_form not in ("target", "mlp"):
            raise ValueError(f"policy_form {params.policy_form!r}; expected 'target' or 'mlp'")
        if params.particles % params.ensemble_size:
            raise ValueError(
                f"particles ({params.particles}) must be a multiple of ensemble_size "
                f"({params.ensemble_size})"
            )
        return params


def imagined_cost(
    model: ProbabilisticEnsemble,
    policy: MLPPolicy | TargetPolicy,
    cost: ReachCost,
    x0: Tensor,
    goals: Tensor,
    horizon: int,
    gen: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Mean reach cost of imagined rollouts, differentiable in the policy parameters.

    x0 (N, dm) model states [q, qdot, ee]; goals (N, 3) m. Cost states are [x, goal] so the
    ReachCost reads the goal from its layout. Returns the loss and the final states (N, dm).
    """
    x = x0
    stage = []
    for _ in range(horizon):
        obs = torch.cat([x, goals], -1)
        u = policy(obs)
        x = model.step(x, u, "ts1", gen)
        stage.append(cost.stage(torch.cat([x, goals], -1)[:, None], u[:, None])[:, 0])
    terminal = cost.terminal(torch.cat([x, goals], -1))
    return (torch.stack(stage, 1).sum(1) + terminal).mean(), x


def fixed_point_miss(policy: TargetPolicy, fk: ForwardKinematics, goals: Tensor) -> Tensor:
    """Mean distance (m) from fk(r(goal)), where the arm settles, to goals (N, 3) m."""
    return (((fk(policy.target(goals)) - goals) ** 2).sum(-1) + 1e-6).sqrt().mean()


def train_policy(
    model: ProbabilisticEnsemble,
    policy: MLPPolicy | TargetPolicy,
    cost: ReachCost,
    fk: ForwardKinematics,
    starts: np.ndarray,
    params: PolicyParams,
    gen: torch.Generator,
) -> list[float]:
    """Adam (learning rate cosine-annealed from params.lr to 5 % of it) on `imagined_cost`;
    returns the imagined cost per step. A non-finite loss skips its step.

    Half the particles start from recorded states `starts` (S, dm) with fresh goals from
    `sample_goals`; the other half continue the previous step's imagined rollouts (final
    states, same goals), so the policy also learns what to do after `horizon` steps (stay
    at the goal) without back-propagating through longer rollouts.
    A `TargetPolicy` also pays fixed_point_weight x `fixed_point_miss` on fresh goals each
    step, then takes fixed_point_steps steps on that term alone (FK only, ~50x cheaper
    than a rollout step, so r(goal) gets many more updates).
    """
    opt = torch.optim.Adam(policy.parameters(), lr=params.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, max(params.policy_steps, 1), eta_min=0.05 * params.lr
    )
    starts_t = torch.as_tensor(starts, dtype=torch.float32)
    half = params.particles // 2
    idx = torch.randint(len(starts_t), (params.particles,), generator=gen)
    x0, goals = starts_t[idx], sample_goals(fk, params.particles, gen)
    losses = []
    weight = params.fixed_point_weight if isinstance(policy, TargetPolicy) else 0.0

    def descend(loss: Tensor) -> bool:
        if not torch.isfinite(loss):
            return False  # a diverged imagined rollout: skip, do not step
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 10.0)
        opt.step()
        return True

    for _ in range(params.policy_steps):
        imagined, x_end = imagined_cost(model, policy, cost, x0, goals, params.horizon, gen)
        loss = imagined
        if weight:
            fixed = fixed_point_miss(policy, fk, sample_goals(fk, params.fixed_point_goals, gen))
            loss = loss + weight * fixed
        if descend(loss):
            losses.append(float(imagined.detach()))
        else:
            losses.append(float("nan"))
            x_end = x0
        for _ in range(params.fixed_point_steps if weight else 0):
            goals_fp = sample_goals(fk, params.fixed_point_goals, gen)
            descend(weight * fixed_point_miss(policy, fk, goals_fp))
        sched.step()
        idx = torch.randint(len(starts_t), (params.particles - half,), generator=gen)
        keep = torch.randperm(params.particles, generator=gen)[:half]
        x_keep = x_end.detach()[keep]
        ok = torch.isfinite(x_keep).all(1)
        x_keep = torch.where(ok[:, None], x_keep, x0[keep])
        x0 = torch.cat([x_keep, starts_t[idx]])
        goals = torch.cat([goals[keep], sample_goals(fk, params.particles - half, gen)])
    return losses


def run_policy(config: ExperimentConfig, recorder: RunRecorder) -> dict:
    """Algorithm 4 driver (mbrl.loop.registry "policy"); reach task only."""
    if config.task != "reach":
        raise ValueError(f"policy (Alg. 4) is implemented for reach only, got {config.task!r}")
    params = PolicyParams.from_config(config)
    with torch_threads(1):
        return _run(config, recorder, params)


def _run(config: ExperimentConfig, recorder: RunRecorder, params: PolicyParams) -> dict:
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    env = make_task_env(config.task, config.seed, max_steps=config.episode_steps)
    try:
        arm, cfg = env.unwrapped.arm, env.unwrapped.config
        nj = len(arm.joint_names)
        layout = obs_layout(config.task, nj)
        dm = layout.goal[0]  # model state: everything before the goal
        fk = ForwardKinematics(cfg.urdf, cfg.ee_link, cfg.joint_names)
        cost = ReachCost(StateLayout(q=(0, nj), goal=layout.goal), fk)
        policy: MLPPolicy | TargetPolicy
        if params.policy_form == "target":
            policy = TargetPolicy(nj, params.policy_hidden, gen, layout.goal, fk.lower, fk.upper)
        else:
            policy = MLPPolicy(
                layout.goal[1], nj, params.policy_hidden, gen, layout.ee, layout.goal
            )
        model = None

        def run_eval(steps: int, **extra: float) -> None:
            res = evaluate(env, policy, n_goals=config.eval_goals)
            recorder.log(
                env_steps=steps,
                success_rate=res["success_rate"],
                final_distance=res["final_distance"],
                **extra,
            )

        run_eval(0)  # the starting point: the untrained policy
        states, actions, steps, episode = [], [], 0, 0
        while steps < config.budget_steps:
            T = min(config.episode_steps, config.budget_steps - steps)
            obs, _ = env.reset(seed=train_reset_seed(rng))
            ep_obs, ep_act = [obs], []
            for _ in range(T):
                if episode < params.random_episodes:
                    a = rng.uniform(-1.0, 1.0, nj)
                else:
                    a = policy.act(obs)
                obs, _, terminated, _, _ = env.step(a)
                ep_obs.append(obs)
                ep_act.append(np.clip(a, -1.0, 1.0))
                if terminated:
                    break
            ep_obs, ep_act = np.asarray(ep_obs, np.float64), np.asarray(ep_act, np.float64)
            goal = ep_obs[0, layout.goal[0] : layout.goal[1]]
            recorder.record_episode(
                episode, ep_obs, ep_act, arm.joint_names, goal, cfg.control_period
            )
            states.append(ep_obs)
            actions.append(ep_act)
            steps += len(ep_act)
            episode += 1
            data = TransitionDataset.from_episodes([s[:, :dm] for s in states], actions)
            model = ProbabilisticEnsemble(
                dm,
                nj,
                params.ensemble_size,
                params.model_hidden,
                # As mbrl.loop.presets: small batches and no held-out episode for 1-5 episodes.
                fit_config=FitConfig(
                    lr=2e-3,
                    batch_size=32,
                    max_epochs=params.model_epochs,
                    patience=15,
                    holdout_fraction=0.0,
                ),
                seed=config.seed + episode,
            )
            fit = model.fit(data, rng, progress=False)
            recorder.checkpoint(model, f"ensemble_episode{episode:03d}")
            if episode == 1:
                # Fixed from here on, so later episodes do not shift a trained policy's
                # inputs. Goals from the distribution the policy is trained on: one
                # episode's goal has zero spread and would blow the goal inputs up.
                goals = sample_goals(fk, len(data), gen).numpy()
                policy.set_input_stats(np.hstack([data.obs, goals]))
            losses = train_policy(model, policy, cost, fk, data.obs, params, gen)
            if episode % config.eval_every == 0 or steps >= config.budget_steps:
                tail = [v for v in losses[-20:] if np.isfinite(v)]
                run_eval(
                    steps,
                    model_fit_seconds=fit.seconds,
                    imagined_cost=float(np.mean(tail)) if tail else float("nan"),
                )
        recorder.save_data(TransitionDataset.from_episodes(states, actions))
        return recorder.finish(params=dataclasses.asdict(params))
    finally:
        env.close()

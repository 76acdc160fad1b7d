"""Algorithm 4: learn a neural policy by back-propagating through the learned model, as a
learner (episodes -> ensemble -> policy) and an actor (observation -> the policy's action)
that both drivers host: mbrl.loop.policy_loop in one process, the fitter and controller
nodes through the graph.

Each fit: the probabilistic ensemble (PETS, Chua et al. 2018) on all transitions; then a
goal-conditioned policy pi(obs) = tanh(k (r(goal) - q)) (an MLP r maps the goal to the joint
target the policy holds) trained by gradient descent on the reach cost of imagined rollouts
through the ensemble plus the distance at the policy's fixed point, fk(r(goal)).

The gradient is pathwise (PILCO's analytic gradient replaced by back-propagation through
sampled trajectories, as in Deisenroth & Rasmussen 2011 sec. 6 and later PIPPS, Parmas et al.
2018; Dreamer, Hafner et al. 2020): each imagined step is x' = x + mu_e(x, u) +
sigma_e(x, u) * eps with eps drawn once (reparameterisation), particles keep their member
(TS-1), so d cost / d theta flows through the model's mean and noise scale.
Model state: the observation without the goal, [q, qdot, ee] (2 nj + 3); the goal is
constant in an episode, so it is appended for the policy and the cost only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mbrl.agents.arm import ArmModel
from mbrl.agents.policy_nets import MLPPolicy, Policy, TargetPolicy, sample_goals, tanh_mlp
from mbrl.agents.policy_params import PolicyParams
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.costs.reach import ReachCost, StateLayout
from mbrl.costs.tasks import obs_layout, obs_size
from mbrl.data.dataset import TransitionDataset
from mbrl.models.base import FitReport
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.models.ensemble_fit import FitConfig

Trajectory = tuple[np.ndarray, np.ndarray]
ARTIFACT = "policy"  # what the fitter publishes and the controller runs


def imagined_cost(
    model: ProbabilisticEnsemble,
    policy: Policy,
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


def fixed_point_miss(
    policy: TargetPolicy, ee_of_q: Callable[[Tensor], Tensor], goals: Tensor
) -> Tensor:
    """Mean distance (m) from ee_of_q(r(goal)), where the arm settles, to goals (N, 3) m.
    ee_of_q: the learned map `EEMap` (shipped default) or the arm's forward kinematics."""
    return (((ee_of_q(policy.target(goals)) - goals) ** 2).sum(-1) + 1e-6).sqrt().mean()


class EEMap(torch.nn.Module):
    """A learned static map q (N, nj) -> measured end effector (N, 3) m: the part of the
    learned model that says where a joint configuration puts the tip, fitted on the recorded
    (q, ee) pairs (MSE, Adam) instead of taken from the URDF's kinematics."""

    def __init__(self, nj: int, gen: torch.Generator, hidden: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.net = tanh_mlp([nj, *hidden, 3], gen)
        self.register_buffer("q_mean", torch.zeros(nj))
        self.register_buffer("q_std", torch.ones(nj))
        self.register_buffer("ee_mean", torch.zeros(3))
        self.register_buffer("ee_std", torch.ones(3))

    def forward(self, q: Tensor) -> Tensor:
        z = self.net((q - self.q_mean) / self.q_std)
        return self.ee_mean + self.ee_std * z

    def fit(self, q: np.ndarray, ee: np.ndarray, steps: int = 500, lr: float = 1e-2) -> float:
        """Full-batch Adam on (q (N, nj), ee (N, 3)); returns the final RMS error, m."""
        qt = torch.as_tensor(q, dtype=torch.float32)
        et = torch.as_tensor(ee, dtype=torch.float32)
        self.q_mean.copy_(qt.mean(0))
        self.q_std.copy_(qt.std(0).clamp_min(1e-3))
        self.ee_mean.copy_(et.mean(0))
        self.ee_std.copy_(et.std(0).clamp_min(1e-3))
        opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        for _ in range(steps):
            loss = ((self(qt) - et) ** 2).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float(loss.detach().sqrt())


def train_policy(
    model: ProbabilisticEnsemble,
    policy: Policy,
    cost: ReachCost,
    fk: ForwardKinematics,
    starts: np.ndarray,
    params: PolicyParams,
    gen: torch.Generator,
    ee_of_q: Callable[[Tensor], Tensor] | None = None,
) -> list[float]:
    """Adam (learning rate cosine-annealed from params.lr to 5 % of it) on `imagined_cost`;
    returns the imagined cost per step. A non-finite loss skips its step.

    fk draws the training goals (`sample_goals`: the task's goal distribution); the fixed
    point is scored with `ee_of_q` (the learned `EEMap`), or with fk when None.

    Half the particles start from recorded states `starts` (S, dm) with fresh goals from
    `sample_goals`; the other half continue the previous step's imagined rollouts (final
    states, same goals), so the policy also learns what to do after `horizon` steps (stay
    at the goal) without back-propagating through longer rollouts.
    A `TargetPolicy` also pays fixed_point_weight x `fixed_point_miss` on fresh goals each
    step, then takes fixed_point_steps steps on that term alone (~50x cheaper than a
    rollout step, so r(goal) gets many more updates).
    """
    settle = fk if ee_of_q is None else ee_of_q
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
            fixed = fixed_point_miss(
                policy, settle, sample_goals(fk, params.fixed_point_goals, gen)
            )
            loss = loss + weight * fixed
        if descend(loss):
            losses.append(float(imagined.detach()))
        else:
            losses.append(float("nan"))
            x_end = x0
        for _ in range(params.fixed_point_steps if weight else 0):
            goals_fp = sample_goals(fk, params.fixed_point_goals, gen)
            descend(weight * fixed_point_miss(policy, settle, goals_fp))
        sched.step()
        idx = torch.randint(len(starts_t), (params.particles - half,), generator=gen)
        keep = torch.randperm(params.particles, generator=gen)[:half]
        x_keep = x_end.detach()[keep]
        ok = torch.isfinite(x_keep).all(1)
        x_keep = torch.where(ok[:, None], x_keep, x0[keep])
        x0 = torch.cat([x_keep, starts_t[idx]])
        goals = torch.cat([goals[keep], sample_goals(fk, params.particles - half, gen)])
    return losses


def layout(algo: str, task: str, nj: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a policy's input and output mean (sent with it; the controller checks it)."""
    if task != "reach":
        raise ValueError(f"policy (Alg. 4) is implemented for reach only, got {task!r}")
    return {"learner": "policy", "task": task, "observation": obs_size(task, nj),
            "action": "increment"}  # fmt: skip


class PolicyLearner:
    """Trajectories -> a fresh ensemble on all of them -> the policy trained further on it.

    Args:
        task: "reach"; arm: FK and joints; params: the ("policy", "reach") preset; seed.
    Attributes:
        policy: the artifact (kept between fits: training accumulates); model: the latest
            ensemble (its checkpoint is saved beside the policy).
    """

    def __init__(self, task: str, arm: ArmModel, params: dict[str, Any], seed: int) -> None:
        self.task, self.arm, self.seed, self.params = task, arm, int(seed), params
        self.settings = PolicyParams.from_params(params)
        self.nj = arm.nj
        self._layout = layout("policy", task, self.nj)
        obs = obs_layout(task, self.nj)
        self.dm = obs.goal[0]  # model state: everything before the goal
        self.fk = arm.fk
        if self.settings.cost_ee == "model":  # the model's own end effector: no FK anywhere
            layout_ = StateLayout(q=(0, self.nj), ee=obs.ee, goal=obs.goal)
            self.cost = ReachCost(layout_, None, lower=arm.lower, upper=arm.upper)
        else:
            self.cost = ReachCost(StateLayout(q=(0, self.nj), goal=obs.goal), self.fk)
        self.gen = torch.Generator().manual_seed(self.seed)
        self.rng = np.random.default_rng(self.seed)
        s = self.settings
        if s.policy_form == "target":
            self.policy: Policy = TargetPolicy(
                self.nj, s.policy_hidden, self.gen, obs.goal, self.fk.lower, self.fk.upper
            )
        else:
            self.policy = MLPPolicy(obs.goal[1], self.nj, s.policy_hidden, self.gen, obs.ee,
                                    obs.goal)  # fmt: skip
        self.model: ProbabilisticEnsemble | None = None
        # where a joint target puts the tip: learned from the data (cost_ee model) or FK
        self.ee_map = EEMap(self.nj, self.gen) if s.cost_ee == "model" else None
        self.fits = 0

    def dataset(self, trajectories: Sequence[Trajectory]) -> TransitionDataset:
        """The ensemble's transitions: observations without the goal, actions as taken."""
        kept = [(o, a) for o, a in trajectories if len(a) > 0]
        if not kept:
            raise ValueError(f"no transitions in {len(trajectories)} trajectories")
        return TransitionDataset.from_episodes(
            [np.asarray(o, np.float32)[:, : self.dm] for o, _ in kept],
            [np.clip(np.asarray(a, float), -1.0, 1.0) for _, a in kept],
        )

    def fit(self, trajectories: Sequence[Trajectory]) -> FitReport:
        """A fresh ensemble on everything, then settings.policy_steps steps on the policy.
        The report is the ensemble's, with extra["imagined_cost"] (mean of the last 20 steps)
        and extra["policy_seconds"]."""
        data = self.dataset(trajectories)
        self.fits += 1
        s = self.settings
        self.model = ProbabilisticEnsemble(
            self.dm, self.nj, s.ensemble_size, s.model_hidden,
            # As the MPC presets: small batches and no held-out episode for 1-5 episodes.
            fit_config=FitConfig(lr=2e-3, batch_size=32, max_epochs=s.model_epochs,
                                 patience=15, holdout_fraction=0.0),
            seed=self.seed + self.fits,
        )  # fmt: skip
        report = self.model.fit(data, self.rng, progress=False)
        if self.fits == 1:
            # Fixed from here on, so later fits do not shift a trained policy's inputs.
            # Goals from the distribution the policy is trained on: one episode's goal has
            # zero spread and would blow the goal inputs up.
            goals = sample_goals(self.fk, len(data), self.gen).numpy()
            self.policy.set_input_stats(np.hstack([data.obs, goals]))
        start = time.perf_counter()
        if self.ee_map is not None:
            obs = obs_layout(self.task, self.nj)
            report.extra["ee_map_rms"] = self.ee_map.fit(
                data.obs[:, : self.nj], data.obs[:, obs.ee[0] : obs.ee[1]]
            )
        losses = train_policy(self.model, self.policy, self.cost, self.fk, data.obs, s, self.gen,
                              ee_of_q=self.ee_map)  # fmt: skip
        tail = [v for v in losses[-20:] if np.isfinite(v)]
        report.extra["imagined_cost"] = float(np.mean(tail)) if tail else float("nan")
        report.extra["policy_seconds"] = time.perf_counter() - start
        return report

    def artifacts(self) -> dict[str, Any]:
        """What a fit produced, by kind: the policy (run by the actor) and its ensemble."""
        out: dict[str, Any] = {ARTIFACT: self.policy}
        if self.model is not None:
            out["ensemble"] = self.model
        return out

    def restore(self, artifacts: dict[str, Any]) -> None:
        """Continue from a checkpoint's artifacts (a restarted fitter)."""
        if ARTIFACT in artifacts:
            self.policy = artifacts[ARTIFACT]
            self.fits = max(self.fits, 1)  # its input statistics are fixed already
        if "ensemble" in artifacts:
            self.model = artifacts["ensemble"]

    def layout(self) -> dict[str, Any]:
        return dict(self._layout)


class PolicyActor:
    """The policy as the actor: observation (dobs,) -> action (nj,) in [-1, 1].

    Raises ValueError from `act` when the policy's output is not finite (the controller
    then holds the arm and reports it).
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.goal: np.ndarray | None = None
        self.action_bounds = (-1.0, 1.0)

    def reset(self) -> None:
        """Nothing to forget: the policy is a function of the observation."""

    def set_goal(self, goal: np.ndarray) -> None:
        self.goal = np.asarray(goal, float)  # the goal reaches the policy in the observation

    def act(self, obs: np.ndarray, deadline: float | None = None) -> np.ndarray:
        u = np.asarray(self.policy.act(np.asarray(obs, float)), float).reshape(-1)
        if u.shape != (self.policy.du,) or not np.all(np.isfinite(u)):
            raise ValueError(f"policy returned {u.tolist()}; expected {self.policy.du} finite")
        return np.clip(u, -1.0, 1.0)

    def warmup(self, obs: np.ndarray, times: int = 1) -> None:
        for _ in range(times):
            self.act(obs)


def make_learner(
    algo: str, task: str, arm: ArmModel, params: dict[str, Any], seed: int
) -> PolicyLearner:
    return PolicyLearner(task, arm, params, seed)


def make_actor(
    algo: str,
    task: str,
    arm: ArmModel,
    artifact: Policy,
    params: dict[str, Any],
    seed: int = 0,
    stream: int = 0,
    planner_overrides: dict[str, Any] | None = None,
) -> PolicyActor:
    """The registry's actor factory: the policy artifact runs as it is (no planner)."""
    layout(algo, task, arm.nj)  # reach only
    if getattr(artifact, "dx", None) != obs_size(task, arm.nj) or artifact.du != arm.nj:
        raise ValueError(
            f"policy maps {getattr(artifact, 'dx', '?')} inputs to "
            f"{getattr(artifact, 'du', '?')} actions; {task} on this arm needs "
            f"{obs_size(task, arm.nj)} -> {arm.nj}"
        )
    return PolicyActor(artifact)

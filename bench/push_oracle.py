"""Push ceiling and floor on the held-out goals: the shipped push MPC (same cost, planner
and action bounds as mbrl.loop.presets; by default a 16 x 8 x 1 budget, `--budget preset`
for the shipped one) with the TRUE simulator as its dynamics, against the random policy of
the loop's starting point, on the goals `evaluate` uses.

The oracle snapshots the env each tick (`save_state`), rolls every candidate action
sequence out in the real PyBullet scene from that snapshot, and restores it before the
chosen action is executed, so the rollouts are exact (the smoke mode checks that to the
bit). `frozen` is the same planner believing the cube never moves (the true arm, the cube
held where it was at the start of the plan): what a learned model that ignores contact
can reach at best. Prints one JSON object per policy.

    .venv/bin/python bench/push_oracle.py                      # oracle + floor, 10 goals
    .venv/bin/python bench/push_oracle.py --budget preset --policies oracle --goals 2
    .venv/bin/python bench/push_oracle.py --smoke              # seconds; run by make test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import gymnasium
import numpy as np
import torch

from mbrl.control.cem import CEMConfig, CEMPlanner
from mbrl.control.icem import ICEMConfig, ICEMPlanner
from mbrl.control.mppi import MPPIConfig, MPPIPlanner
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.costs.push import PushCost, PushCostConfig
from mbrl.costs.reach import StateLayout
from mbrl.loop.common import EVAL_SEED, evaluate, make_task_env
from mbrl.loop.presets import preset

PLANNERS = {
    "icem": (ICEMConfig, ICEMPlanner),
    "cem": (CEMConfig, CEMPlanner),
    "mppi": (MPPIConfig, MPPIPlanner),
}
# The tiny budget of the independent check: 16 samples x horizon 8 x 1 iteration.
TINY = {"num_samples": 16, "horizon": 8, "iterations": 1, "num_elites": 4}
SMOKE = {"num_samples": 6, "horizon": 3, "iterations": 1, "num_elites": 2}


class _NoModel:
    """Stands where the planner expects a learned model; the oracle rolls out in the sim."""

    ensemble_size = 1
    deterministic = True

    def step(self, x, u, mode="mean", generator=None):
        raise NotImplementedError("the oracle planner rolls out in the simulator, not a model")


class SimRollout:
    """Mixin for a SamplingPlanner: `rollout` in the real env from its current state.

    Attributes (set by `attach`): env, the push env (restored to `root` before every
    sequence); root, its snapshot id at the start of this plan; frozen, hold the cube
    columns at their start value (a planner that believes the cube never moves).
    """

    env: gymnasium.Env
    root: int
    frozen: bool = False
    obj: tuple[int, int] = (0, 0)
    sim_ticks: int = 0

    def rollout(self, x0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """x0 (dobs,) the current observation, actions (N, T, du) -> (N,) cost."""
        env, a = self.env, actions.double().numpy()
        N, T, _ = a.shape
        xs = np.empty((N, T + 1, x0.shape[0]))
        xs[:, 0] = x0.numpy()
        for n in range(N):
            env.restore_state(self.root)
            for t in range(T):
                xs[n, t + 1] = env.step(a[n, t])[0]
        self.sim_ticks += N * T
        env.restore_state(self.root)
        if self.frozen:
            xs[:, :, self.obj[0] : self.obj[1]] = xs[:, :1, self.obj[0] : self.obj[1]]
        x = torch.as_tensor(xs, dtype=self.dtype)
        c = self.cost.stage(x[:, :-1], actions).sum(1) + self.cost.terminal(x[:, -1])
        return torch.nan_to_num(c, nan=float("inf"))


class OracleActor:
    """evaluate() controller: plans on the true sim each tick, executes the first action."""

    def __init__(
        self, env: gymnasium.Env, params: dict[str, Any], overrides: dict, frozen: bool, seed: int
    ) -> None:
        u = env.unwrapped
        arm, cfg = u.arm, u.config
        nj = len(arm.joint_names)
        # The cost reads q, ee and the cube straight from the observation
        # [q, qdot, ee, cube, sin/cos yaw, goal] (mbrl.sim.tasks.PushEnv).
        layout = StateLayout(q=(0, nj), ee=(2 * nj, 2 * nj + 3), obj=(2 * nj + 3, 2 * nj + 6))
        fk = ForwardKinematics(cfg.urdf, cfg.ee_link, tuple(cfg.joint_names))
        cost = PushCost(
            layout,
            fk,
            lower=arm.lower,
            upper=arm.upper,
            config=PushCostConfig(**params.get("cost", {})),
        )
        config_cls, planner_cls = PLANNERS[params["planner"]]
        config = config_cls(**{**params["planner_config"], **overrides, "nominal_rollout": False})
        cls = type(f"Sim{planner_cls.__name__}", (SimRollout, planner_cls), {})
        self.planner = cls(
            _NoModel(),
            cost,
            nj,
            config,
            generator=torch.Generator().manual_seed(seed),
            dtype=torch.float64,
        )
        self.planner.env, self.planner.frozen, self.planner.obj = u, frozen, layout.obj
        self.goal_span = (2 * nj + 8, 2 * nj + 11)
        self.replans = 0
        self.replay_error: float | None = None  # |predicted - real| of the first executed step
        self._predicted: np.ndarray | None = None

    def reset(self) -> None:
        self.planner.reset()

    def act(self, obs: np.ndarray, env: gymnasium.Env) -> np.ndarray:
        u = env.unwrapped
        if self._predicted is not None and self.replay_error is None:
            self.replay_error = float(np.max(np.abs(self._predicted - obs)))
        self.planner.cost.set_goal(np.asarray(obs, float)[self.goal_span[0] : self.goal_span[1]])
        root = u.save_state()
        self.planner.root = root
        action = self.planner.plan(np.asarray(obs, float)).actions[0].copy()
        if self._predicted is None:  # once: what the sim says this action does, from here
            self._predicted = u.step(action)[0]
        u.restore_state(root)
        u.discard_state(root)
        self.replans += 1
        return action


def run(
    policy: str,
    params: dict,
    overrides: dict,
    n_goals: int,
    first_goal: int,
    episode_steps: int,
    seed: int,
) -> dict[str, Any]:
    env = make_task_env("push", seed, max_steps=episode_steps, **params.get("env", {}))
    du = env.action_space.shape[0]
    rng = np.random.default_rng(seed)
    actor: Any
    if policy in ("oracle", "frozen"):
        actor = OracleActor(env, params, overrides, policy == "frozen", seed)
    elif policy == "random":  # the loop's starting point (mpc_loop.eval_random): U[-1, 1]
        actor = lambda obs, env: rng.uniform(-1.0, 1.0, du)  # noqa: E731
    elif policy == "random-bounded":  # uniform within the planner's action bounds
        cfg = params["planner_config"]
        low, high = cfg.get("action_low", -1.0), cfg.get("action_high", 1.0)
        actor = lambda obs, env: rng.uniform(low, high, du)  # noqa: E731
    elif policy == "zero":  # never touches the cube
        actor = lambda obs, env: np.zeros(du)  # noqa: E731
    else:
        raise ValueError(f"unknown policy {policy!r}")
    start = time.perf_counter()
    try:
        result = evaluate(env, actor, n_goals=n_goals, seed=EVAL_SEED + first_goal)
    finally:
        env.close()
    out = {
        "bench": "push_oracle",
        "policy": policy,
        "goals": f"EVAL_SEED + [{first_goal}, {first_goal + n_goals})",
        "episode_steps": episode_steps,
        "success_rate": result["success_rate"],
        "final_distance": result["final_distance"],
        "successes": result["successes"],
        "distances": [round(d, 5) for d in result["distances"]],
        "seconds": round(time.perf_counter() - start, 1),
    }
    if isinstance(actor, OracleActor):
        cfg = actor.planner.config
        out.update(
            planner=params["planner"],
            budget={k: getattr(cfg, k) for k in ("num_samples", "horizon", "iterations")},
            action_bounds=[cfg.action_low, cfg.action_high],
            sim_ticks_per_replan=round(actor.planner.sim_ticks / max(actor.replans, 1), 1),
            replay_max_abs_error=actor.replay_error,
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--policies",
        nargs="+",
        default=["oracle", "random"],
        choices=["oracle", "frozen", "random", "random-bounded", "zero"],
    )
    p.add_argument("--goals", type=int, default=10, help="held-out goals (results use 10)")
    p.add_argument("--first-goal", type=int, default=0, help="start at goal EVAL_SEED + this")
    p.add_argument("--episode-steps", type=int, default=100)
    p.add_argument(
        "--budget",
        choices=["preset", "tiny"],
        default="tiny",
        help="16 samples x horizon 8 x 1 iteration (default: ~20 s a goal), or the shipped "
        "planner budget (60 x 15 x 3: ~2300 simulated ticks per replan, ~10 min a goal)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--smoke",
        action="store_true",
        help="1 goal, 4 steps, a 6 x 3 x 1 budget: checks the machinery in seconds",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    params = preset("mpc", "push")
    overrides = {"preset": {}, "tiny": TINY}[args.budget]
    if args.smoke:
        args.goals, args.first_goal, args.episode_steps, overrides = 1, 0, 4, SMOKE
        args.policies = ["oracle", "random"]
    for policy in args.policies:
        print(
            json.dumps(
                run(
                    policy,
                    params,
                    overrides,
                    args.goals,
                    args.first_goal,
                    args.episode_steps,
                    args.seed,
                )
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Why a finished PILCO run misses the held-out goals it misses: replay its final policies on
the held-out episodes (no optimisation) and print per goal the final distance, the resting
GP's predicted distance and sd at the policy's q_ref, how far q_ref is from the nearest
recorded state, and whether the arm reached q_ref. Analysis only (nothing is tuned on it).

    nice .venv/bin/python bench/pilco_heldout.py runs/issue13/pilco-s0 [--goals 20]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from mbrl.agents.pilco import GoalPolicies, distinct_states
from mbrl.agents.pilco_params import PilcoParams
from mbrl.costs.tasks import EVAL_SEED
from mbrl.data.dataset import TransitionDataset
from mbrl.loop.common import make_task_env, obs_layout
from mbrl.models.gp import GPModel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--goals", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    p = PilcoParams()
    pol = GoalPolicies.load(f"{args.run}/checkpoints/pilco_policy_final.npz")
    ee = GPModel.load(f"{args.run}/checkpoints/ee_gp_final.npz")
    xs, _ = TransitionDataset.load(f"{args.run}/data.npz").trajectories()
    nj = pol.nj
    layout = obs_layout("reach", nj)
    X, Y = distinct_states(list(xs), layout, p.ee_min_step)
    M = p.rest_num_inducing
    rest = GPModel(nj, 0, num_inducing=M if len(X) > M else 0, outputs=3)
    rest.fit_arrays(X, Y, np.random.default_rng(0), hyper_from=ee)
    env = make_task_env("reach", 0, max_steps=100)
    g0, g1 = layout.goal
    try:
        for i in range(args.goals):
            obs, _ = env.reset(seed=EVAL_SEED + i)
            goal = obs[g0:g1].astype(float)
            for _ in range(100):
                obs, _, term, trunc, info = env.step(pol.act(obs))
                if term or trunc:
                    break
            k = int(np.argmin(np.linalg.norm(pol.goals - goal, axis=1)))
            q_ref = pol.thetas[k, nj * nj :]
            m, v = rest.predict_delta(q_ref[None])
            near = np.min(np.max(np.abs(X - q_ref), axis=1))
            print(
                f"goal {i:2d}: final {info['distance'] * 100:5.1f} cm, predicted rest "
                f"{np.linalg.norm(m[0] - goal) * 100:4.1f} cm (sd {np.sqrt(v[0]).max() * 100:4.1f}"
                f" cm), nearest recorded state {near:.2f} rad, |q - q_ref| max "
                f"{np.max(np.abs(obs[:nj] - q_ref)):.3f} rad"
            )
    finally:
        env.close()


if __name__ == "__main__":
    main()

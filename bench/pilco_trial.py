"""Step through PILCO trials offline: fit the GPs on a run's data, optimise one policy per
tuning goal (never the held-out goals), execute it, and print per step the measured state,
the model's predicted end effector (mean, sd), the action and the cost.

    nice .venv/bin/python bench/pilco_trial.py runs/<run>/data.npz [--goals 8] [--set k=v]...

The data file is a PILCO run's data.npz (full observations). Tuning goals are
env.reset(seed=EVAL_SEED + 5000 + i), disjoint from the held-out goals.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import yaml

from mbrl.agents.pilco import (
    fit_model,
    initial_theta,
    linear_params,
    optimise_policies,
    policy_action,
)
from mbrl.agents.pilco_mm import GPTensors, fk_ee, gp_ee, predicted_cost
from mbrl.agents.pilco_params import PilcoParams
from mbrl.costs.kinematics import ForwardKinematics
from mbrl.costs.tasks import EVAL_SEED
from mbrl.data.dataset import TransitionDataset
from mbrl.loop.common import make_task_env, obs_layout


def episodes(path: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    xs, us = TransitionDataset.load(path).trajectories()
    return list(xs), list(us)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--goals", type=int, default=8)
    ap.add_argument("--episodes", type=int, default=0, help="use the first N episodes (0 all)")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--verbose", type=int, default=2, help="goals printed step by step")
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    kw = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    if "cost_widths" in kw:
        kw["cost_widths"] = tuple(kw["cost_widths"])
    params = PilcoParams(**kw)
    torch.set_num_threads(1)
    env = make_task_env("reach", 0, max_steps=args.steps)
    arm, cfg = env.unwrapped.arm, env.unwrapped.config
    nj = len(arm.joint_names)
    layout = obs_layout("reach", nj)
    fk = ForwardKinematics(cfg.urdf, cfg.ee_link, cfg.joint_names, dtype=torch.float64)
    states, actions = episodes(args.data)
    if args.episodes:
        states, actions = states[: args.episodes], actions[: args.episodes]
    t0 = time.perf_counter()
    model, info = fit_model(states, actions, layout, params, np.random.default_rng(0))
    print(f"fit on {sum(len(a) for a in actions)} steps: {time.perf_counter() - t0:.1f} s {info}")
    if model.ee is not None:  # the EE GP's one-step error on the data (training error)
        X = np.vstack([s[:, :nj] for s in states])
        Y = np.vstack([s[:, layout.ee[0] : layout.ee[1]] for s in states])
        print(f"EE GP rows: {len(model.ee.Xb)} basis; {len(X)} states recorded")
        mu, var = model.ee.predict_delta(X)
        err = np.linalg.norm(mu - Y, axis=1)
        print(f"EE GP on its data: mean err {err.mean() * 100:.2f} cm, max {err.max() * 100:.2f}")
    m0 = np.asarray(arm.home, np.float64)
    S0 = np.eye(nj) * env.unwrapped.init_noise**2 / 3
    goals = []
    for i in range(args.goals):
        env.reset(seed=EVAL_SEED + 5000 + i)
        goals.append(np.array(env.unwrapped.goal, np.float64))
    goals = np.stack(goals)
    t0 = time.perf_counter()
    opt = optimise_policies(
        model, goals, m0, S0, params, np.tile(initial_theta(m0, 3.0), (len(goals), 1)), fk
    )
    print(
        f"optimised {len(goals)} policies: {time.perf_counter() - t0:.1f} s, iters {opt.iterations}"
    )
    g = GPTensors.from_model(model.dynamics)
    ee_fn = fk_ee(fk) if params.kinematics else gp_ee(GPTensors.from_model(model.ee))
    finals = []
    for i, goal in enumerate(goals):
        th = torch.tensor(opt.theta[i : i + 1])
        W, b = linear_params(th, nj)
        H = args.steps
        with torch.no_grad():
            # The prediction over the whole episode, not just the optimised horizon.
            m, S = torch.tensor(m0[None]), torch.tensor(S0[None])
            pred = []
            from mbrl.agents.pilco_mm import step_moments

            for _ in range(H):
                m, S, mz, Sz = step_moments(g, W, b, m, S)
                e_m, e_S = ee_fn(m, S, mz, Sz)
                pred.append((m[0].numpy(), e_m[0].numpy(), np.sqrt(np.diag(e_S[0].numpy()))))
            cost_h, _, _ = predicted_cost(
                g,
                W,
                b,
                torch.tensor(m0[None]),
                torch.tensor(S0[None]),
                params.horizon,
                ee_fn,
                torch.tensor(goal[None]),
                params.cost_widths[-1],
            )
        obs, _ = env.reset(seed=EVAL_SEED + 5000 + i)
        q_ref = opt.theta[i, nj * nj :]
        with torch.no_grad():
            fk_ref = fk(torch.tensor(q_ref[None]))[0].numpy()
        rows = []
        for t in range(H):
            a = policy_action(opt.theta[i], obs[:nj].astype(np.float64))
            obs, _, term, trunc, inf = env.step(a)
            ee = obs[layout.ee[0] : layout.ee[1]]
            q_pred, e_pred, e_sd = pred[t]
            rows.append(
                (
                    t + 1,
                    np.linalg.norm(ee - goal),
                    np.linalg.norm(e_pred - goal),
                    np.linalg.norm(e_pred - ee),
                    e_sd.max(),
                    np.abs(a).max(),
                    np.abs(obs[:nj] - q_pred).max(),
                )
            )
            if term or trunc:
                break
        finals.append(rows[-1][1])
        rest_txt = ""
        if model.ee is not None:
            rg = model.rest if model.rest is not None else model.ee
            rm, rv = rg.predict_delta(q_ref[None])
            rest_txt = (
                f", rest: predicted |ee-g| {np.linalg.norm(rm[0] - goal) * 100:.1f} cm "
                f"(sd {np.sqrt(rv[0]).max() * 100:.1f}), |pred - fk| "
                f"{np.linalg.norm(rm[0] - fk_ref) * 100:.1f} cm"
            )
        gains = np.round(np.diag(opt.theta[i, : nj * nj].reshape(nj, nj)), 1)
        print(
            f"goal {i}: final {rows[-1][1] * 100:.1f} cm, predicted cost over "
            f"H={params.horizon} {float(cost_h[0]):.2f}, |fk(q_ref) - goal| "
            f"{np.linalg.norm(fk_ref - goal) * 100:.1f} cm, K diag {gains}{rest_txt}"
        )
        if i < args.verbose:
            print("  t  |ee-g|cm  |pred-g|cm  |pred-ee|cm  pred_sd_cm  |a|max  |q-qpred|max")
            for r in rows:
                if r[0] in (1, 2, 3, 5, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100):
                    print(
                        f" {r[0]:3d}  {r[1] * 100:7.2f}  {r[2] * 100:8.2f}  {r[3] * 100:9.2f}  "
                        f"{r[4] * 100:8.2f}  {r[5]:6.2f}  {r[6]:8.3f}"
                    )
    finals = np.array(finals)
    print(
        f"SUMMARY {kw}: success {np.mean(finals < 0.02):.2f}, "
        f"mean final {finals.mean() * 100:.1f} cm, median {np.median(finals) * 100:.1f} cm"
    )
    env.close()


if __name__ == "__main__":
    main()

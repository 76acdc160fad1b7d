"""Algorithm 1 vs 2: how wrong is each final model on its own open-loop plans (the lecture's
distribution mismatch), next to how wrong it is on random-action data?

For each finished alg1/alg2 run in --out (scripts/pilco_alg12.py): load the final
ensemble, plan once per held-out goal exactly as the evaluation does, execute the plan in
the env, and compare the model's mean prediction of the joints and end effector (FK of the
predicted q, as the planner's cost sees it) with the measured ones at the end of the plan's
horizon; also the planned (predicted) distance to the goal there.
Also the model's one-step joint error on a fresh random-action episode (the data Alg. 1
learns from). Prints a markdown table (and writes <out>/mismatch.json).

    nice .venv/bin/python scripts/alg12_mismatch.py [--out runs/issue13] [--goals 20]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from mbrl.agents.arm import ArmModel
from mbrl.agents.explore import SmoothedRandom
from mbrl.agents.mpc import make_actor
from mbrl.costs.tasks import EVAL_SEED
from mbrl.loop.common import make_task_env
from mbrl.models.ensemble import ProbabilisticEnsemble

ROOT = Path(__file__).resolve().parents[1]


def measure(run: Path, algo: str, goals: int) -> dict:
    params = json.loads((run / "params.json").read_text())
    model = ProbabilisticEnsemble.load(run / "checkpoints" / "ensemble_final.npz")
    env = make_task_env("reach", 0, max_steps=100, **params.get("env", {}))
    arm = ArmModel.from_config(env.unwrapped.config)
    nj = arm.nj
    q_err, ee_err, final, planned = [], [], [], []
    try:
        for i in range(goals):
            obs, _ = env.reset(seed=EVAL_SEED + i)
            actor = make_actor(algo, "reach", arm, model, params, 0, 20_000 + i)
            actor.reset()
            plan = actor.plan(obs)
            H = len(plan.actions)
            qs = [obs[:nj]]
            for t in range(100):
                a = plan.actions[t] if t < H else np.zeros(nj)
                obs, _, term, trunc, info = env.step(a)
                qs.append(obs[:nj])
                if term or trunc:
                    break
            # The model's mean prediction of the plan (the planner keeps no states here).
            x = np.asarray(qs[0], np.float32)[None]
            with torch.no_grad():
                for a in plan.actions[:H]:
                    x, _ = model.predict(x, np.asarray(a, np.float32)[None])
                    x = np.asarray(x, np.float32)
            q_pred, q_real = x[0].astype(float), qs[min(H, len(qs) - 1)]
            q_err.append(float(np.max(np.abs(q_pred - q_real))))
            ee_err.append(float(np.linalg.norm(arm.ee(q_pred) - arm.ee(q_real))))
            planned.append(float(np.linalg.norm(arm.ee(q_pred) - env.unwrapped.goal)))
            final.append(float(info["distance"]))
        # One-step joint error on a fresh random-action episode (Alg. 1's kind of data).
        explorer = SmoothedRandom(nj, np.random.default_rng(123), params["random_smoothing"])
        obs, _ = env.reset(seed=EVAL_SEED + 9_999)
        xs, us, ys = [], [], []
        for _ in range(100):
            a = explorer.act()
            nxt, *_ = env.step(a)
            xs.append(obs[:nj])
            us.append(a)
            ys.append(nxt[:nj])
            obs = nxt
        with torch.no_grad():
            mean, _ = model.predict(np.asarray(xs, np.float32), np.asarray(us, np.float32))
        one_step = float(np.mean(np.max(np.abs(np.asarray(mean) - np.asarray(ys)), axis=1)))
    finally:
        env.close()
    return {
        "plan_q_error_rad": float(np.mean(q_err)),
        "plan_ee_error_m": float(np.mean(ee_err)),
        "final_distance_m": float(np.mean(final)),
        "planned_distance_m": float(np.mean(planned)),
        "random_one_step_q_error_rad": one_step,
        "horizon": int(H),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "issue13")
    parser.add_argument("--goals", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = {}
    for algo in ("alg1", "alg2"):
        for run in sorted(args.out.glob(f"{algo}-s*")):
            if (run / "summary.json").exists() and (run / "checkpoints").is_dir():
                rows[run.name] = measure(run, algo, args.goals)
                print(run.name, rows[run.name], flush=True)
    (args.out / "mismatch.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| run | model error at the plan's end: joints (max, rad) | EE (m) | "
          "one-step joint error on random data (rad) | planned distance to the goal "
          "(model, m) | final distance (m) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        one, plan = r["random_one_step_q_error_rad"], r["planned_distance_m"]
        print(f"| {name} | {r['plan_q_error_rad']:.3f} | {r['plan_ee_error_m']:.3f} | "
              f"{one:.4f} | {plan:.3f} | {r['final_distance_m']:.3f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

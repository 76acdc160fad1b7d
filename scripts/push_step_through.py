"""Step through held-out push episodes of a finished `mbrl experiment --task push` run: per
tick the tip-to-cube and cube-to-goal distances, the cube's true move and the learned
model's predicted move for the action taken, and the action; then where each episode failed.

    .venv/bin/python scripts/push_step_through.py runs/i12/mpc-push-s0 --goals 0 1 2 [--ticks]

Uses the run's params.json and checkpoints/ensemble_final.npz, or --model (a graph run's
model_fitter/models/ensemble_vNNNN.npz): MPC with the run's preset and seed on the run's
held-out episodes (the planner's random draws differ from the run's evaluation).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from mbrl.agents.arm import ArmModel
from mbrl.agents.mpc import MPCActor
from mbrl.costs.tasks import EVAL_SEED, obs_layout
from mbrl.loop.common import make_task_env
from mbrl.models.ensemble import ProbabilisticEnsemble

CONTACT = 0.002  # m of cube motion in one tick


def step_through(
    run: Path, goal: int, steps: int, show_ticks: bool, model_path: Path | None = None
) -> dict:
    params = json.loads((run / "params.json").read_text())
    config_path = run / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    model = ProbabilisticEnsemble.load(model_path or run / "checkpoints" / "ensemble_final.npz")
    env = make_task_env("push", int(config.get("seed", 0)), max_steps=steps, **params["env"])
    arm = ArmModel.from_config(env.unwrapped.config)
    lay = obs_layout("push", arm.nj)
    actor = MPCActor("push", arm, model, params, int(config.get("seed", 0)), 10_000 + goal)
    obs, _ = env.reset(seed=EVAL_SEED + goal)
    actor.reset()
    obj = slice(*lay.obj)
    rows = []
    for t in range(steps):
        action = actor.act(obs)
        x = actor.state(obs)[None]
        mean, var = model.predict(x, action[None].astype(np.float32))
        nxt, *_ = env.step(action)
        ocol = actor.layout.obj[0]
        pred = mean[0, ocol : ocol + 2] - x[0, ocol : ocol + 2]
        true = nxt[obj][:2] - obs[obj][:2]
        rows.append(
            {
                "t": t,
                "tip_cube": float(np.linalg.norm(obs[lay.ee[0] : lay.ee[1]] - obs[obj])),
                "tip_z": float(obs[lay.ee[0] + 2]),
                "cube_goal": float(np.linalg.norm(obs[obj] - obs[lay.goal[0] : lay.goal[1]])),
                "true_mm": 1e3 * float(np.linalg.norm(true)),
                "pred_mm": 1e3 * float(np.linalg.norm(pred)),
                "cos": float(true @ pred / (np.linalg.norm(true) * np.linalg.norm(pred) + 1e-12)),
                "pred_std_mm": 1e3 * float(np.sqrt(var[0, ocol : ocol + 2].mean())),
                "toward_goal_mm": 1e3
                * float(
                    true
                    @ (obs[lay.goal[0] : lay.goal[1]] - obs[obj])[:2]
                    / (np.linalg.norm((obs[lay.goal[0] : lay.goal[1]] - obs[obj])[:2]) + 1e-12)
                ),
                "action": float(np.abs(action).max()),
            }
        )
        obs = nxt
    env.close()
    contact = [r for r in rows if r["true_mm"] > 1e3 * CONTACT]
    phantom = [r for r in rows if r["true_mm"] <= 1e3 * CONTACT and r["pred_mm"] > 1e3 * CONTACT]
    final = float(np.linalg.norm(obs[obj] - obs[lay.goal[0] : lay.goal[1]]))
    first = next((r["t"] for r in rows if r["tip_cube"] < 0.045), None)
    out = {
        "goal": goal,
        "success": final < 0.03,
        "start_cube_goal": rows[0]["cube_goal"],
        "final_cube_goal": final,
        "first_tick_tip_within_4.5cm": first,
        "contact_ticks": len(contact),
        "contact_true_mm": float(np.mean([r["true_mm"] for r in contact])) if contact else 0.0,
        "contact_pred_mm": float(np.mean([r["pred_mm"] for r in contact])) if contact else 0.0,
        "contact_cos": float(np.mean([r["cos"] for r in contact])) if contact else None,
        "contact_toward_goal_mm": float(np.sum([r["toward_goal_mm"] for r in contact])),
        "phantom_push_ticks": len(phantom),
        "final_tip_cube": rows[-1]["tip_cube"],
    }
    if show_ticks:
        for r in rows:
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--goals", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--ticks", action="store_true", help="print every tick")
    ap.add_argument(
        "--model", type=Path, help="an ensemble file (e.g. a graph run's model_fitter/models/)"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for goal in args.goals:
        print(
            json.dumps(step_through(args.run, goal, args.steps, args.ticks, args.model)), flush=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 13's PILCO and Algorithm 1 vs 2 rows: runs them (resumable, one process at a time,
nice'd) and writes the marked section of docs/results.md and docs/img/pilco_alg12.png.

    nice .venv/bin/python scripts/pilco_alg12.py --run        # run what is missing, report
    .venv/bin/python scripts/pilco_alg12.py                   # report from existing runs
    .venv/bin/python scripts/pilco_alg12.py --run --rows pilco alg1 alg2 --seeds 3

Runs go to <out>/<row>-s<seed>/ (a run whose summary.json exists is not repeated); each
logs to <out>/<row>-s<seed>.log, with the load average at its start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from results_page import markers, update_section  # scripts/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = markers("pilco-alg12")

# row -> (algo, budget_steps, eval_goals, eval_every, [--set overrides], what it is)
ROWS: dict[str, tuple[str, int, int, int, list[str], str]] = {
    "pilco": (
        "pilco",
        1000,
        20,
        10,
        [],
        "PILCO, shipped default: the objective sees only the learned GPs' end effector",
    ),
    "pilco-fk": (
        "pilco",
        1000,
        20,
        10,
        ["kinematics=true"],
        "PILCO with the arm's FK in the objective (the old variant, an option)",
    ),
    "alg1": ("alg1", 1000, 20, 10, [], "Algorithm 1: random data for the whole budget"),
    "alg2": ("alg2", 1000, 20, 10, [], "Algorithm 2: iterate with on-policy data"),
}
GROUPS = {"pilco": ["pilco", "pilco-fk"], "alg12": ["alg1", "alg2"]}
# What the rows mean and what was (not) run (edit when re-measuring).
NOTES = """
**PILCO** (`pilco`, the shipped default; docs/pilco.md has the objective and the
diagnosis). Evaluated once, after the 10th trial (1,000 real steps; the 0-step row is the
random explorer). The target, >= 90 % of the 20 held-out goals, is **not met**: seeds 0
and 1 reach 0.80 each (1.5 and 1.2 cm mean final distance); an earlier seed-0 run of the
same objective before the EE GP dropped repeated resting states reached 0.70 at 500 steps
and 0.80 at 1,000. Before the fix the same learned-EE objective without the resting term
reached 0.12 (5.6 cm) on 8 held-out goals at 1,000 steps. `bench/pilco_heldout.py
runs/issue13/pilco-s0` explains the misses goal by goal: the arm rests at the policy's
`q_ref` (to 0.000 rad on 19 of 20 goals), and the 4 misses are the goals whose `q_ref`
lies 0.64-1.0 rad from any recorded state, where the EE GP's predictive sd at rest is
2.6-6.4 cm (it is <= 1 cm on most hits). The model is uncertain where it has no data and
says so; ten trials towards nine training goals do not cover the workspace the held-out
goals span. Seed 2 was not run in this session (one run takes ~30 min under load 11-39 on
the shared cores); the kinematic variant (`pilco-fk`) was not rerun: its 500-step rows
from before issue 13 (1.00 on 3 seeds) are in the PILCO section above.

**Algorithms 1 and 2** (same ensemble, same open-loop iCEM planner and preset; Alg. 1
explores for all 10 episodes, Alg. 2 for the first only). At 1,000 steps they are level
over 3 seeds (table: 0.10 vs 0.08 success, 4.6 vs 4.4 cm). `scripts/alg12_mismatch.py`
(final models, 20 held-out goals, one plan each; `runs/issue13/mismatch.json`) says why:

| run | plan-end q error (rad) | EE (m) | 1-step q, random (rad) | planned (m) | final (m) |
|---|---:|---:|---:|---:|---:|
| alg1-s0 | 0.053 | 0.015 | 0.0016 | 0.039 | 0.048 |
| alg1-s1 | 0.040 | 0.010 | 0.0014 | 0.044 | 0.050 |
| alg1-s2 | 0.051 | 0.015 | 0.0015 | 0.041 | 0.048 |
| alg2-s0 | 0.050 | 0.015 | 0.0017 | 0.038 | 0.048 |
| alg2-s1 | 0.046 | 0.011 | 0.0016 | 0.043 | 0.049 |
| alg2-s2 | 0.040 | 0.010 | 0.0018 | 0.042 | 0.045 |

(q: largest joint error; "planned": the model's predicted distance to the goal at the
plan's end; "final": measured at the end of the episode.)
Alg. 1's model is *not* worse on the states its own plans visit (1.0-1.5 cm at the plan's
end for both), and the plans themselves end 3.8-4.4 cm from the goal *in the model*: the
open-loop planner (200 samples x 8 iterations over 30 x 5 actions) is the bottleneck, not
the model. Smoothed random exploration covers the reach motions, so on-policy data has no
mismatch to fix here; the lecture's effect needs plans that leave the explored region
(push) or a planner strong enough that model error dominates. Neither was run.
"""


def command(out: Path, row: str, seed: int) -> list[str]:
    algo, budget, goals, every, sets, _ = ROWS[row]
    argv = [sys.executable, "-m", "mbrl", "experiment", "--algo", algo, "--task", "reach"]
    argv += ["--seed", str(seed), "--budget-steps", str(budget), "--episode-steps", "100"]
    argv += ["--eval-goals", str(goals), "--eval-every", str(every), "--out", str(out)]
    argv += ["--name", f"{row}-s{seed}"]
    for s in sets:
        argv += ["--set", s]
    return argv


def load(out: Path, rows: list[str], seeds: int) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for row in rows:
        for seed in range(seeds):
            path = out / f"{row}-s{seed}" / "summary.json"
            if path.exists():
                s = json.loads(path.read_text())
                log = out / f"{row}-s{seed}.log"
                s["load"] = [
                    ln.split("load ")[1].strip()
                    for ln in (log.read_text().splitlines() if log.exists() else [])
                    if ln.startswith("[pilco_alg12] load ")
                ]
                runs.setdefault(row, []).append(s)
    return runs


def table(runs: dict[str, list[dict]], rows: list[str]) -> str:
    lines = [
        "| row | budget | real env steps | success per seed | mean success | "
        "mean final distance, m | wall s per seed |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for row in rows:
        if row not in runs:
            lines.append(f"| {row} | {ROWS[row][1]} | - | not run | | | |")
            continue
        steps = sorted({r["env_steps"] for s in runs[row] for r in s["curve"]})
        for x in steps:
            at = [next((r for r in s["curve"] if r["env_steps"] == x), None) for s in runs[row]]
            at = [r for r in at if r is not None]
            succ = " / ".join(f"{r['success_rate']:.2f}" for r in at)
            walls = " / ".join(f"{r.get('wall_seconds', 0):.0f}" for r in at)
            lines.append(
                f"| {row} | {ROWS[row][1]} | {x} | {succ} | "
                f"{np.mean([r['success_rate'] for r in at]):.2f} | "
                f"{np.mean([r['final_distance'] for r in at]):.4f} | {walls} |"
            )
    return "\n".join(lines)


def plot(runs: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, group in zip(axes, GROUPS.values(), strict=True):
        for row in group:
            for k, s in enumerate(runs.get(row, [])):
                x = [r["env_steps"] for r in s["curve"]]
                y = [r["success_rate"] for r in s["curve"]]
                ax.plot(x, y, "o-", ms=3, color=f"C{group.index(row)}",
                        alpha=0.8, label=row if k == 0 else None)  # fmt: skip
        ax.set(xlabel="real env steps (20 Hz)", ylabel="success (20 held-out goals)",
               ylim=(-0.03, 1.03))  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_title("PILCO on reach (each line a seed)")
    axes[1].set_title("Algorithm 1 vs 2 on reach (each line a seed)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def section(out: Path, seeds: int, notes: str) -> str:
    rows = [r for g in GROUPS.values() for r in g]
    runs = load(out, rows, seeds)
    image = ROOT / "docs" / "img" / "pilco_alg12.png"
    if runs:
        plot(runs, image)
    cmds = "\n".join(
        "    nice "
        + " ".join([".venv/bin/python", *command(Path("runs/issue13"), r, 0)[1:]])
        .replace("--seed 0", "--seed SEED")
        .replace("-s0", "-sSEED")
        for r in rows
    )
    loads = "\n".join(
        f"- {row} s{k}: load average (1, 5, 15 min) at start / end: {' / '.join(s['load'])}"
        for row in rows
        for k, s in enumerate(runs.get(row, []))
    )
    what = "\n".join(f"- `{r}`: {ROWS[r][5]}." for r in rows)
    return f"""{BEGIN}
## Issue 13: PILCO without the kinematic term, and Algorithm 1 vs 2 (reach)

Generated by `scripts/pilco_alg12.py` (section kept by scripts/results.py). 100-step
episodes at 20 Hz, the same 20 held-out goals as every row above (`env.reset(seed=EVAL_SEED
+ i)`), success = end effector within 2 cm at the last step; seeds 0, 1, 2.
{what}

{table(runs, rows)}

![PILCO and Algorithms 1 and 2](img/pilco_alg12.png)

{notes}

Each run (one process at a time, nice'd; these runs: `{out}`):

{cmds}

Load on the shared 2-core machine:
{loads}
{END}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "issue13")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--run", action="store_true", help="run the missing runs first")
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=None,
                        help="run these rows (in this order, each over all seeds)")  # fmt: skip
    parser.add_argument("--order", choices=["row", "seed"], default="row")
    args = parser.parse_args()
    if args.run:
        args.out.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, AMENT_PREFIX_PATH=str(ROOT / ".venv"), OMP_NUM_THREADS="1")
        rows = args.rows or [r for g in GROUPS.values() for r in g]
        jobs = [(r, k) for r in rows for k in range(args.seeds)]
        if args.order == "seed":  # every row's seed 0 first: partial results stay balanced
            jobs = [(r, k) for k in range(args.seeds) for r in rows]
        for row, seed in jobs:
            if True:
                if (args.out / f"{row}-s{seed}" / "summary.json").exists():
                    continue
                argv = command(args.out, row, seed)
                print(f"[pilco_alg12] {row} seed {seed}: {' '.join(argv[1:])}", flush=True)
                with open(args.out / f"{row}-s{seed}.log", "w") as log:
                    log.write(
                        f"[pilco_alg12] load {' '.join(open('/proc/loadavg').read().split()[:3])}\n"
                    )
                    log.flush()
                    start = time.perf_counter()
                    rc = subprocess.run(["nice", *argv], stdout=log, stderr=subprocess.STDOUT,
                                        env=env, cwd=ROOT).returncode  # fmt: skip
                    log.write(
                        f"[pilco_alg12] load {' '.join(open('/proc/loadavg').read().split()[:3])}\n"
                    )
                print(
                    f"[pilco_alg12]   exit {rc} after {time.perf_counter() - start:.0f} s",
                    flush=True,
                )
    text = section(args.out, args.seeds, NOTES.strip())
    update_section("pilco-alg12", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The two drivers side by side: the same agent (mbrl.agents), schedule and seeds run in one
process (`mbrl experiment`) and through the ROS graph (`mbrl demo`, lockstep), then a table
and a plot in the marked section of docs/results.md (scripts/results.py keeps that section).

    .venv/bin/python scripts/drivers.py --run            # run what is missing, then report
    .venv/bin/python scripts/drivers.py                  # report from existing runs
    .venv/bin/python scripts/drivers.py --out runs/side --seeds 3

Runs go to <out>/loop/mpc-<task>-s<seed>/ and <out>/graph/ros-mpc-<task>-s<seed>/ (a run
whose summary.json exists is not repeated). Each run is its own process, one at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from results import PUSH_BOUNDS  # scripts/results.py: the push ceiling and floor
from results_page import markers, update_section  # scripts/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = markers("drivers")
# Conditions of the runs on the page (edit when re-measuring).
CONDITIONS = """Measured 2026-12-02 00:55-02:15 on the 2-core machine, one run at a time,
nice'd, on the code of this session (the collector's start-match and command-count checks
came in during the push runs; they change no recorded data). Beside the runs: my own
tests and benchmarks, including the 20-runs-in-a-row test (load average 2-5), so wall
times compare only roughly. Every lockstep run plans each tick to completion, as the loop
does. Reach: both drivers reach 0.98-1.00 of 20 held-out goals. Their curves agree within
the seeds' spread (after 100 steps: loop 0.75 / 0.70 / 0.65, graph 0.70 / 0.45 / 0.70).
Push is shown at 2,000 steps (the issue's 10k-step runs take about an hour a seed here),
with the current contact-model preset (qdot and the cube velocity in the state, MSE loss;
section "Push with the contact model" above). Both drivers sit low and together: loop
0.17, graph 0.10, with per-seed ranges 0.10-0.30 and 0.00-0.20 that overlap. The runs of
2026-12-01, on the preset before the contact model, gave 0.30 for both. Push is issue 12's
open target (80 % at 5k steps)."""
# task -> (budget_steps, eval_goals, eval_every): what each run may spend
PLAN = {"reach": (500, 20, 1), "push": (2000, 10, 10)}
# The conditions of a real arm (issue 14) beside the fast path, reach through the graph:
# condition -> demo options; each run spends PLAN_CONDITIONS' budget, evaluated at its end.
CONDITIONS_RUNS = {
    "lockstep-ideal": ["--timing", "lockstep", "--servo", "ideal"],
    "realtime-realistic": ["--timing", "realtime", "--servo", "realistic"],
}
PLAN_CONDITIONS = (500, 10, 5)
CONDITIONS_NOTE = """Reach through the ROS graph with the current reach preset (model state
[q, qdot, pending], expectation propagation; docs/real_arm.md), 500 real steps, the 10
held-out goals evaluated once at the end. Real time: nobody waits for the controller, the
planner has 40 ms of each 50 ms tick, the controller ticks on the joint state after each
period boundary; realistic servos: mbrl.config.SERVO_PROFILES["realistic"] (docs/sim.md).
The first table's reach rows were measured before that preset (model state q, ts1
propagation). Before the preset, real time with realistic servos reached 0/10 held-out goals
at 300 steps, ending 51 cm away (exploring: 35 cm). Measured 2026-12-01 19:33-20:19,
one run at a time, at load average 11-16 (other agents' jobs on the 2 cores).
The real-time row plans one tick ahead (the controller's `plan_ahead`, the default since
2026-12-02: each command was planned on the tick before, from the model's prediction of
the state; docs/ros_interface.md). Measured 2026-12-02 00:41-00:49, one run at a time,
nice'd, load average about 2 (beside it only a helper's nice-19 memory profiling). It meets
the done-when (>= 0.90 in real time on 3 seeds). Planning on the measured state instead
(the re-run of 2026-12-01 23:18-23:25 on the idle machine) gave 1.00, 0.90, 0.90, final
distance 6.2, 10.7, 8.9 mm. A first plan-ahead version that gave the model the command
just sent as the pending motion gave 0.60, 0.70, 0.70 (fixed, test/ros/test_plan_ahead.py).
The first real-time run, at load
11-16 beside a test of ours, gave 0.90, 0.60, 1.00: seed 1's four misses ended 2.1-2.3 cm
from their goals (success is < 2 cm), the arm wandering around the goal by the members'
residual error on backlash and lost reads (on a loaded machine the planner also gets
less of its 40 ms). Lockstep with ideal servos was re-run on 2026-12-02 02:12-02:15 on this
session's code: 1.00, 1.00, 1.00, 53 s a run. Its session-4 runs gave 0.80, 1.00, 0.80,
before session 5 gave lockstep's joint states a depth-1 queue. So lockstep (1.00) and real
time with realistic servos (0.97) are 3 points apart (target: within 10)."""


def commands(out: Path, task: str, seed: int) -> dict[str, list[str]]:
    budget, goals, every = PLAN[task]
    common = ["--seed", str(seed), "--eval-goals", str(goals), "--eval-every", str(every)]
    py = [sys.executable, "-m", "mbrl"]
    return {
        "loop": [*py, "experiment", "--algo", "mpc", "--task", task, "--budget-steps",
                 str(budget), "--out", str(out / "loop"), *common],
        "graph": [*py, "demo", "--task", task, "--timing", "lockstep", "--budget", str(budget),
                  "--out-dir", str(out / "graph"), "--name", f"ros-mpc-{task}-s{seed}",
                  "--timeout", "7200", *common],
    }  # fmt: skip


def condition_command(out: Path, condition: str, seed: int) -> list[str]:
    budget, goals, every = PLAN_CONDITIONS
    return [sys.executable, "-m", "mbrl", "demo", "--task", "reach", *CONDITIONS_RUNS[condition],
            "--budget", str(budget), "--eval-goals", str(goals), "--eval-every", str(every),
            "--seed", str(seed), "--out-dir", str(out / "graph"),
            "--name", f"ros-mpc-reach-{condition}-s{seed}", "--timeout", "7200"]  # fmt: skip


def condition_dir(out: Path, condition: str, seed: int) -> Path:
    return out / "graph" / f"ros-mpc-reach-{condition}-s{seed}"


def _figures(group: list[dict]) -> str:
    """A table row's last cells for the runs of one row: success per seed | mean | mean
    final distance | mean wall seconds per run."""
    per_seed = ", ".join(f"{s['success_rate']:.2f}" for s in group)
    mean = np.mean([s["success_rate"] for s in group])
    dist = np.mean([s["final_distance"] for s in group])
    walls = [s["curve"][-1]["wall_seconds"] for s in group if s.get("curve")]
    return f"{per_seed} | {mean:.2f} | {dist:.4f} | {np.mean(walls):.0f}"


def condition_table(out: Path, seeds: int) -> str:
    lines = [
        "| condition | budget (real steps) | held-out goals | success per seed | mean | "
        "final distance m (mean) | wall s/run (mean) |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    budget, goals, _ = PLAN_CONDITIONS
    for condition in CONDITIONS_RUNS:
        paths = [condition_dir(out, condition, s) / "summary.json" for s in range(seeds)]
        group = [json.loads(p.read_text()) for p in paths if p.exists()]
        if not group:
            continue
        lines.append(f"| ROS graph, {condition} | {budget} | {goals} | {_figures(group)} |")
    return "\n".join(lines)


def run_dir(out: Path, driver: str, task: str, seed: int) -> Path:
    name = f"mpc-{task}-s{seed}" if driver == "loop" else f"ros-mpc-{task}-s{seed}"
    return out / driver / name


def load(out: Path, seeds: int) -> dict[tuple[str, str], list[dict]]:
    runs: dict[tuple[str, str], list[dict]] = {}
    for task in PLAN:
        for driver in ("loop", "graph"):
            for seed in range(seeds):
                path = run_dir(out, driver, task, seed) / "summary.json"
                if path.exists():
                    runs.setdefault((task, driver), []).append(json.loads(path.read_text()))
    return runs


def _curve(summary: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    rows = summary["curve"]
    return np.array([r["env_steps"] for r in rows]), np.array([r[key] for r in rows])


def plot(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in PLAN if any(k[0] == t for k in runs)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.5), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for driver, colour in (("loop", "tab:blue"), ("graph", "tab:orange")):
            for i, summary in enumerate(runs.get((task, driver), [])):
                steps, success = _curve(summary, "success_rate")
                label = f"{driver} ({'mbrl experiment' if driver == 'loop' else 'ROS graph'})"
                ax.plot(
                    steps, success, "o-", color=colour, alpha=0.6, label=label if i == 0 else None
                )
        ax.set(
            title=f"mpc / {task}", xlabel="real steps", ylabel="success rate", ylim=(-0.05, 1.05)
        )
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def table(runs: dict, out: Path, seeds: int) -> str:
    lines = [
        "| task | budget (real steps) | held-out goals | driver | success per seed | mean | "
        "final distance m (mean) | wall s/run (mean) |",
        "|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for task, (budget, goals, _) in PLAN.items():
        for driver in ("loop", "graph"):
            group = runs.get((task, driver), [])
            if not group:
                continue
            name = "`mbrl experiment` (one process)" if driver == "loop" else "ROS graph, lockstep"
            lines.append(f"| {task} | {budget} | {goals} | {name} | {_figures(group)} |")
        if task == "push" and any(t == "push" for t, _ in runs):
            lines += [f"| push | (no learning) | {goals} | {what} | {success} | | {dist} | {wall} |"
                      for what, success, dist, wall in PUSH_BOUNDS]  # fmt: skip
    return "\n".join(lines)


def section(out: Path, seeds: int) -> str:
    runs = load(out, seeds)
    image = ROOT / "docs" / "img" / "drivers.png"
    if runs:
        plot(runs, image)
    cmds = []
    for task in PLAN:
        for argv in commands(Path("runs/side"), task, 0).values():
            text = " ".join([".venv/bin/python", *argv[1:]]).replace("--seed 0", "--seed SEED")
            cmds.append(f"    {text.replace('-s0', '-sSEED')}")
    for condition in CONDITIONS_RUNS:
        argv = condition_command(Path("runs/side"), condition, 0)
        text = " ".join([".venv/bin/python", *argv[1:]]).replace("--seed 0", "--seed SEED")
        cmds.append(f"    {text.replace('-s0', '-sSEED')}")
    cmds = "\n".join(cmds)
    return f"""{BEGIN}
## The two drivers side by side (mpc, same agent, schedule, seeds and held-out episodes)

Generated by `scripts/drivers.py` (section kept by scripts/results.py). One agent
(`mbrl.agents.mpc`), one schedule (`mbrl.loop.schedule`), one episode sampler
(`mbrl.costs.tasks`): once in one process (`mbrl experiment`), once through the ROS graph
(five node processes over DDS, `mbrl demo`, lockstep with ideal servos; real time with the
realistic servo profile in the second table). Success as above; push logs also
`final_tip_to_cube`.

{table(runs, out, seeds)}

![both drivers' learning curves](img/drivers.png)

### Real time with the realistic servo profile, beside the fast path

{condition_table(out, seeds)}

{CONDITIONS_NOTE}

{CONDITIONS}

Each run (seeds 0, 1, 2; these runs: `{out}`):

{cmds}
{END}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "side")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--run", action="store_true", help="run the missing runs first")
    args = parser.parse_args()
    if args.run:
        env = dict(os.environ, AMENT_PREFIX_PATH=str(ROOT / ".venv"))
        for task in PLAN:
            for seed in range(args.seeds):
                for driver, argv in commands(args.out, task, seed).items():
                    if (run_dir(args.out, driver, task, seed) / "summary.json").exists():
                        continue
                    print(f"[drivers] {driver} {task} seed {seed}: {' '.join(argv[1:])}",
                          flush=True)  # fmt: skip
                    subprocess.run(argv, check=True, env=env)
        for condition in CONDITIONS_RUNS:
            for seed in range(args.seeds):
                if (condition_dir(args.out, condition, seed) / "summary.json").exists():
                    continue
                argv = condition_command(args.out, condition, seed)
                print(f"[drivers] {condition} seed {seed}: {' '.join(argv[1:])}", flush=True)
                subprocess.run(argv, check=True, env=env)
    text = section(args.out, args.seeds)
    update_section("drivers", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sample-efficiency results of every mbrl.loop driver, plus a model-free SAC baseline:
runs them (resumable), then writes docs/results.md and docs/img/results_<task>.png.

    .venv/bin/python scripts/results.py [--jobs 3] [--seeds 3] [--sac-steps 50000]
    .venv/bin/python scripts/results.py --report-only     # rebuild the page from runs/results

Each run is `python -m mbrl experiment ...` in its own process (logs in runs/results/*.log);
a run whose summary.json exists is not repeated. stable-baselines3 is installed into the venv
on first use (pinned; it is a benchmark dependency only, not in requirements.txt).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from results_page import markers  # scripts/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
# marked sections of docs/results.md kept as they are: scripts/drivers.py,
# scripts/pilco_alg12.py, scripts/gps_results.py, and the push runs with the contact model
# (issue 12, by hand)
KEPT_SECTIONS = ("push-contact", "drivers", "pilco-alg12", "gps")
SB3_PIN = "stable-baselines3==2.9.2"  # needs torch>=2.8,<3: the pinned torch==2.13.0 satisfies it

# (algo, task, budget_steps, episode_steps, eval_goals, eval_every): what each run may spend.
# An algo may be a variant "algo:label" of VARIANTS (its own rows, runs named algo-label-...).
PLAN = [
    ("mpc", "reach", 500, 100, 20, 1),
    ("policy", "reach", 500, 100, 20, 2),
    ("policy:fk", "reach", 500, 100, 20, 2),
    ("pilco", "reach", 500, 100, 20, 2),
    ("alg2", "reach", 500, 100, 20, 2),
    ("alg1", "reach", 500, 100, 20, 2),
    ("gps", "reach", 60000, 100, 20, 1),
    ("mpc", "push", 10000, 100, 10, 20),
    ("gps", "push", 20000, 100, 10, 1),
]
# The push ceiling and the floor (bench/push_oracle.py on the same held-out goals; see NOTES),
# printed beside every push row of docs/results.md (here and by scripts/drivers.py):
# (what, success, final distance m, wall s).
PUSH_BOUNDS = [
    ("ceiling: mpc planner + push cost on the true sim", "1.00 (10 of 10; 20 of 20 goals)",
     "0.0022", "215 (20 goals)"),
    ("floor: random actions", "0.00 (0 of 10; 0 of 20 goals)", "0.0681", "6 (20 goals)"),
]  # fmt: skip
SUCCESS = {
    "reach": "end-effector within 2 cm of the goal at the last step of a 100-step (5 s) episode",
    "push": "cube centre within 3 cm of the goal at the last step of a 100-step episode "
    "(cube off the table = failure)",
}


NOTES = """## Budgets

- Reach: 500 real steps (5 episodes of 100 steps at 20 Hz) for the model-based algorithms,
  the issue's target budget, except GPS: 60k steps = 10 iterations of 30 training
  conditions x 2 samples x 100 steps (the issue's GPS target is per iteration: 10
  iterations of <= 5 samples per condition; its global policy generalises with the number
  of conditions). Both GPS numbers per iteration, the local controllers' on their own
  conditions and the global policy's, are in docs/gps_results.md (scripts/gps_results.py).
- Push: the issue's 10k real steps for MPC (100 episodes, evaluated every 20 episodes on
  10 held-out goals, so that evaluation stays under half of the run's time); GPS 20k
  (10 iterations of 4 conditions x 5 samples, evaluated after each).
- SAC (stable-baselines3 2.9.2 defaults, MlpPolicy 256x256, learning starts after 100
  steps) on the same ReachEnv and the same held-out goals: 50k steps, 3 seeds, evaluated
  every 2500 steps with the deterministic policy.
- Evaluations: MPC on reach after every episode; Algorithms 1, 2, 4 and PILCO every 2
  episodes (and at the end); each evaluation is one episode per held-out goal, not counted
  in the budget.
- "Steps to 90 % of final success": first evaluated step at which the seed-mean success
  reaches 0.9 x its final value (n/a when the final success is 0).
- Algorithm 4 (`policy`) and PILCO learn servo policies u = f(target - q) whose objective
  includes the distance from the known forward kinematics (URDF) of the policy's joint
  target to the goal (docs/pilco.md). With that term off they stop 5-8 cm short of the
  goals (tuning goals): most of their final accuracy comes from the arm's kinematics; the
  learned models shape the motion there.
- Push MPC peaks at a seed mean of 0.30 (4k and 8k steps) and ends at 0.17; its ensemble
  predicts ~1 mm of cube motion where the cube moves ~8 mm (docs/loops.md, "Push with
  MPC"). The push target (80 % within 10k steps) is not met by MPC or GPS.
- Machine: 2 cores shared by up to 6 runs at once (load average 6-8): wall seconds are
  not comparable between rows.
"""


# variant -> --set overrides of its algorithm's shipped defaults
VARIANTS: dict[str, dict[str, str]] = {
    # Alg. 4 with the arm's forward kinematics in its objective (the shipped default learns
    # the end effector from the data instead)
    "policy:fk": {"cost_ee": "fk"},
}


def run_name(algo: str, task: str, seed: int) -> str:
    return f"{algo.replace(':', '-')}-{task}-s{seed}"


def launch(out: Path, algo: str, task: str, seed: int, budget, episode, goals, every) -> str:
    name = run_name(algo, task, seed)
    if (out / name / "summary.json").exists():
        return f"{name}: kept (summary.json exists)"
    cmd = [sys.executable, "-m", "mbrl", "experiment", "--algo", algo.split(":")[0]]
    cmd += ["--task", task, "--name", name]
    cmd += ["--seed", str(seed), "--budget-steps", str(budget), "--episode-steps", str(episode)]
    cmd += ["--eval-goals", str(goals), "--eval-every", str(every), "--out", str(out)]
    for key, value in VARIANTS.get(algo, {}).items():
        cmd += ["--set", f"{key}={value}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.perf_counter()
    with open(out / f"{name}.log", "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    return f"{name}: exit {rc} after {time.perf_counter() - start:.0f} s"


def ensure_sb3() -> None:
    if importlib.util.find_spec("stable_baselines3") is None:
        print(f"installing {SB3_PIN} into {sys.prefix} (benchmark only)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", SB3_PIN], check=True)


def sac_worker(out: Path, seed: int, total_steps: int, eval_interval: int) -> None:
    """SAC (stable-baselines3 defaults) on the same ReachEnv, evaluated on the same held-out
    goals with the deterministic policy every `eval_interval` steps."""
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from mbrl.loop.common import ExperimentConfig, RunRecorder, evaluate, make_task_env

    torch.set_num_threads(1)
    config = ExperimentConfig(
        algo="sac",
        task="reach",
        seed=seed,
        budget_steps=total_steps,
        out_dir=str(out),
        eval_goals=20,
    )
    recorder = RunRecorder(config)
    env = make_task_env("reach", seed, max_steps=100)
    eval_env = make_task_env("reach", seed, max_steps=100)
    model = SAC("MlpPolicy", env, seed=seed, device="cpu", verbose=0)

    def run_eval(steps: int) -> None:
        res = evaluate(
            eval_env, lambda obs, e: model.predict(obs, deterministic=True)[0], n_goals=20
        )
        recorder.log(
            env_steps=steps, success_rate=res["success_rate"], final_distance=res["final_distance"]
        )

    class Every(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_interval == 0:
                run_eval(self.num_timesteps)
            return True

    run_eval(0)
    model.learn(total_timesteps=total_steps, callback=Every())
    recorder.finish(sb3=SB3_PIN)
    env.close()
    eval_env.close()


# ---- report -------------------------------------------------------------------------------
def load_runs(out: Path) -> dict[tuple[str, str], list[dict]]:
    """Finished runs (summary.json) and, marked partial, runs still going or stopped early
    (their metrics.csv so far)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in sorted(p.parent for p in out.glob("*/config.json")):
        config = json.loads((run / "config.json").read_text())
        if (run / "summary.json").exists():
            s = {**config, **json.loads((run / "summary.json").read_text())}
        elif (run / "metrics.csv").exists():
            with open(run / "metrics.csv") as f:
                curve = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
            if len(curve) < 2:
                continue  # only the random-policy start: nothing learned to report
            s = {**config, **curve[-1], "curve": curve, "partial": True}
        else:
            continue
        # a variant's rows are its own: the label is the run name without task and seed
        label = s["name"].removesuffix(f"-{s['task']}-s{s['seed']}")
        label = s["algo"] if label == s["algo"] else f"{s['algo']}:{label[len(s['algo']) + 1 :]}"
        groups.setdefault((label, s["task"]), []).append(s)
    return groups


def mean_curve(runs: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """steps, mean, min, max over the runs at each logged step (runs share the grid; a
    partial run contributes to the steps it reached)."""
    steps = sorted({r["env_steps"] for s in runs for r in s["curve"]})
    vals = [[r[key] for s in runs for r in s["curve"] if r["env_steps"] == x] for x in steps]
    return (
        np.array(steps),
        np.array([np.mean(v) for v in vals]),
        np.array([np.min(v) for v in vals]),
        np.array([np.max(v) for v in vals]),
    )


def steps_to_fraction(steps: np.ndarray, success: np.ndarray, fraction: float = 0.9) -> float:
    """First logged env step at which the mean success reaches fraction * its final value."""
    final = success[-1]
    if final <= 0:
        return float("nan")
    return float(steps[np.argmax(success >= fraction * final - 1e-12)])


def plot(groups, task: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (algo, t), runs in sorted(groups.items()):
        if t != task:
            continue
        for ax, key in zip(axes, ("success_rate", "final_distance"), strict=True):
            x, m, lo, hi = mean_curve(runs, key)
            ax.plot(x, m, "o-", ms=3, label=f"{algo} ({len(runs)} seed{'s' * (len(runs) > 1)})")
            ax.fill_between(x, lo, hi, alpha=0.15)
    axes[0].set(ylabel="success rate (held-out goals)", ylim=(-0.03, 1.03))
    axes[1].set(ylabel="mean final distance (m)", yscale="log")
    for ax in axes:
        ax.set(xlabel="real env steps (20 Hz)", xscale="symlog")
        ax.set_xscale("symlog", linthresh=100)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{task}: mean over seeds, band = min..max")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def report(out: Path, command: str, seconds: float | None) -> str:
    groups = load_runs(out)
    img = ROOT / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    where = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    lines = [
        "# Results: sample efficiency of the learning loops",
        "",
        "Generated by `scripts/results.py` (do not edit by hand). Command:",
        "",
        f"    {command}",
        "",
        f"Runs: `{where}/<algo>-<task>-s<seed>/`"
        + (f"; wall time of this invocation {seconds / 60:.0f} min" if seconds else "")
        + ". Machine: 2 CPU cores shared with other jobs (timings are not comparable between "
        "rows).",
        "",
        "Success definitions (held-out goals `env.reset(seed=EVAL_SEED + i)`, the same for "
        "every algorithm and seed, never used for training; evaluation steps are not counted):",
        "",
        *[f"- **{t}**: {d}." for t, d in SUCCESS.items()],
        "",
        "| algo | task | real env steps (last evaluation) | seeds | final success (per seed) | "
        "final distance m (mean) | steps to 90% of final success | wall s/run |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    rows = {}
    for (algo, task), runs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        x, m, _, _ = mean_curve(runs, "success_rate")
        _, d, _, _ = mean_curve(runs, "final_distance")
        s90 = steps_to_fraction(x, m)
        rows[(algo, task)] = (x, m, s90)
        per_seed = ", ".join(
            f"{s['success_rate']:.2f}"
            + (f" partial@{int(s['env_steps'])}" if s.get("partial") else "")
            for s in runs
        )
        wall = np.mean([s["curve"][-1].get("wall_seconds", np.nan) for s in runs])
        lines.append(
            f"| {algo} | {task} | {int(x[-1])} | {len(runs)} | {m[-1]:.2f} ({per_seed}) | "
            f"{d[-1]:.4f} | {'n/a (final 0)' if np.isnan(s90) else int(s90)} | {wall:.0f} |"
        )
        last_push = task == "push" and not any(
            t == "push" and (a, t) not in rows for a, t in groups
        )
        if last_push:
            lines += [f"| {what} | push | (no learning) | 1 | {success} | {dist} | — | {wall} |"
                      for what, success, dist, wall in PUSH_BOUNDS]  # fmt: skip
    lines += ["", "Each run is exactly (seeds as listed):", ""]
    for (algo, task), runs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        c, seeds = runs[0], ",".join(str(int(r["seed"])) for r in runs)
        if algo == "sac":
            lines.append(
                f"    .venv/bin/python scripts/results.py --sac-worker SEED "
                f"--sac-steps {int(c['budget_steps'])}   # SEED in {seeds}"
            )
            continue
        lines.append(
            f"    .venv/bin/python -m mbrl experiment --algo {algo} --task {task} --seed SEED "
            f"--budget-steps {int(c['budget_steps'])} --episode-steps {int(c['episode_steps'])} "
            f"--eval-goals {int(c['eval_goals'])} --eval-every {int(c['eval_every'])}"
            f"   # SEED in {seeds}"
        )
    lines += ["", NOTES, "Learning curves (mean over seeds, band = min..max):", ""]
    for task in ("reach", "push"):
        if any(t == task for _, t in groups):
            plot(groups, task, img / f"results_{task}.png")
            lines.append(f"![{task}](img/results_{task}.png)")
            lines.append("")
    if ("sac", "reach") in rows and ("mpc", "reach") in rows:
        sx, sm, _ = rows[("sac", "reach")]
        mx, mm, m90 = rows[("mpc", "reach")]
        target = mm[-1]
        reached = np.nonzero(sm >= target - 1e-12)[0]
        lines += ["## MPC versus SAC on reach", ""]
        if len(reached):
            sac_steps = sx[reached[0]]
            mpc_steps = mx[np.argmax(mm >= target - 1e-12)]
            lines.append(
                f"SAC first reaches MPC's final success ({target:.2f}) after {int(sac_steps)} "
                f"env steps; MPC after {int(mpc_steps)}: a ratio of {sac_steps / mpc_steps:.0f}x."
            )
        else:
            lines.append(
                f"SAC never reached MPC's final success ({target:.2f}) within its "
                f"{int(sx[-1])} steps (best {sm.max():.2f}); the ratio is therefore larger "
                f"than {sx[-1] / mx[np.argmax(mm >= target - 1e-12)]:.0f}x "
                "(SAC budget / steps MPC needed)."
            )
        best = int(np.argmax(sm))
        if sm[best] > 0:
            mpc_first = mx[np.argmax(mm >= sm[best] - 1e-12)]
            lines += [
                "",
                f"At SAC's best seed-mean success ({sm[best]:.2f}, after {int(sx[best])} steps) "
                f"MPC got there after {int(mpc_first)} steps: "
                f"{sx[best] / max(mpc_first, 1):.0f}x fewer.",
            ]
        _, _, sac90 = rows[("sac", "reach")]
        if not np.isnan(sac90):
            ratios = [
                f"{a} {sac90 / r[2]:.0f}x"
                for (a, t), r in sorted(rows.items())
                if t == "reach" and a != "sac" and not np.isnan(r[2])
            ]
            lines += [
                "",
                f"Steps to 90 % of the final success, SAC's ({int(sac90)}) over each "
                f"algorithm's (reach): {', '.join(ratios)}. (Each to its own final success, "
                "which differs between algorithms; see the table.)",
            ]
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "results")
    parser.add_argument("--jobs", type=int, default=3, help="runs in parallel")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="algo/task pairs, e.g. mpc/reach")
    parser.add_argument("--sac-steps", type=int, default=50000, help="0 = no SAC baseline")
    parser.add_argument("--sac-seeds", type=int, default=3)
    parser.add_argument("--sac-eval-every", type=int, default=2500)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--sac-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sac_worker is not None:
        sac_worker(args.out, args.sac_worker, args.sac_steps, args.sac_eval_every)
        return 0
    start = time.perf_counter()
    command = "    .venv/bin/python scripts/results.py " + " ".join(sys.argv[1:])
    if not args.report_only:
        # Seed-major order: if time runs out, every algorithm has its first seeds.
        jobs = [
            (algo, task, seed, *rest)
            for seed in range(args.seeds)
            for algo, task, *rest in PLAN
            if args.only is None or f"{algo}/{task}" in args.only
        ]
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(launch, args.out, a, t, s, *r) for a, t, s, *r in jobs]
            if args.sac_steps > 0 and (args.only is None or "sac/reach" in args.only):
                ensure_sb3()
                for seed in range(args.sac_seeds):
                    futures.append(pool.submit(sac_job, args, seed))
            for f in concurrent.futures.as_completed(futures):
                print(f.result(), flush=True)
    page = report(
        args.out, command.strip(), None if args.report_only else time.perf_counter() - start
    )
    # keep the sections written elsewhere: the two drivers side by side (scripts/drivers.py)
    # and the push runs with the contact model (issue 12, by hand until they are in PLAN)
    previous = (ROOT / "docs" / "results.md").read_text()
    for name in KEPT_SECTIONS:
        begin, end = markers(name)
        if begin in previous and end in previous:
            kept = begin + previous.split(begin, 1)[1].split(end, 1)[0] + end
            page = page.rstrip() + "\n\n" + kept + "\n"
    (ROOT / "docs" / "results.md").write_text(page)
    print(page)
    return 0


def sac_job(args: argparse.Namespace, seed: int) -> str:
    name = run_name("sac", "reach", seed)
    if (args.out / name / "summary.json").exists():
        return f"{name}: kept (summary.json exists)"
    cmd = [sys.executable, __file__, "--out", str(args.out), "--sac-worker", str(seed)]
    cmd += ["--sac-steps", str(args.sac_steps), "--sac-eval-every", str(args.sac_eval_every)]
    with open(args.out / f"{name}.log", "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    return f"{name}: exit {rc}"


if __name__ == "__main__":
    sys.exit(main())

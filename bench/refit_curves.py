"""Learning curves with warm-started vs full refits of the ensemble (FitConfig.refit), on
`mbrl experiment --algo mpc`, one run at a time, nice'd; prints one JSON line per run and
a summary.

    .venv/bin/python bench/refit_curves.py [--task reach] [--seeds 0 1 2]
        [--modes warm continue] [--budget-steps 500] [--eval-goals 20]

The loop builds its FitConfig from the preset, which has no refit key, so each run is a
child process that sets `refit` on every ProbabilisticEnsemble it constructs (and logs each
fit's kind, epochs and seconds to runs/refit/<name>/fits.jsonl); nothing else changes.
"continue" is today's default: train on from the current weights with the full budget.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "refit"


def one_run(mode: str, argv: list[str], log: Path) -> int:
    """Inside the child: patch the ensemble, then run the experiment CLI."""
    from mbrl.loop import experiment_cli
    from mbrl.models import ensemble

    init, fit = ensemble.ProbabilisticEnsemble.__init__, ensemble.ProbabilisticEnsemble.fit

    def patched_init(self, *a, **kw):
        init(self, *a, **kw)
        self.fit_config = dataclasses.replace(self.fit_config, refit=mode)

    def logged_fit(self, dataset, *a, **kw):
        report = fit(self, dataset, *a, **kw)
        row = dict(
            n=len(dataset),
            refit=report.extra["refit"],
            epochs=report.extra["epochs"],
            seconds=round(report.seconds, 3),
        )
        with open(log, "a") as f:
            f.write(json.dumps(row) + "\n")
        return report

    ensemble.ProbabilisticEnsemble.__init__ = patched_init
    ensemble.ProbabilisticEnsemble.fit = logged_fit
    parser = argparse.ArgumentParser()
    experiment_cli.add_arguments(parser)
    return experiment_cli.run(parser.parse_args(argv))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:  # the child's own arguments go to the experiment CLI
        mode, name, *rest = sys.argv[2:]
        sys.exit(one_run(mode, rest, OUT / name / "fits.jsonl"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--task", default="reach")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--modes", nargs="+", default=["warm", "continue"])
    ap.add_argument("--budget-steps", type=int, default=500)
    ap.add_argument("--episode-steps", type=int, default=100)
    ap.add_argument("--eval-goals", type=int, default=20)
    args = ap.parse_args()
    results = []
    for seed in args.seeds:
        for mode in args.modes:  # alternate modes so load drifts hit both alike
            name = f"mpc-{args.task}-{mode}-s{seed}"
            run = OUT / name
            if not (run / "summary.json").exists():  # resumable: finished runs are kept
                run.mkdir(parents=True, exist_ok=True)
                (run / "fits.jsonl").unlink(missing_ok=True)
                cmd = ["nice", "-n", "10", sys.executable, __file__, "--child", mode, name]
                cmd += ["--algo", "mpc", "--task", args.task, "--seed", str(seed)]
                cmd += ["--budget-steps", str(args.budget_steps), "--episode-steps"]
                cmd += [str(args.episode_steps), "--eval-goals", str(args.eval_goals)]
                cmd += ["--eval-every", "1", "--out", str(OUT), "--name", name]
                load = round(os.getloadavg()[0], 2)
                start = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                timing = dict(
                    wall_s=round(time.perf_counter() - start, 1),
                    load_average_before=load,
                    load_average_after=round(os.getloadavg()[0], 2),
                )
                (run / "timing.json").write_text(json.dumps(timing))
            timing = (
                json.loads((run / "timing.json").read_text())
                if (run / "timing.json").exists()
                else {}
            )
            summary = json.loads((run / "summary.json").read_text())
            fits = [json.loads(x) for x in (OUT / name / "fits.jsonl").read_text().splitlines()]
            with open(run / "metrics.csv") as f:
                curve = [(int(r["env_steps"]), float(r["success_rate"])) for r in csv.DictReader(f)]
            row = dict(
                bench="refit_run",
                task=args.task,
                mode=mode,
                seed=seed,
                success_rate=summary["success_rate"],
                final_distance=summary["final_distance"],
                fits=len(fits),
                fit_epochs=sum(f["epochs"] for f in fits),
                fit_seconds=round(sum(f["seconds"] for f in fits), 2),
                last_fit_seconds=fits[-1]["seconds"] if fits else None,
                cold_fits=sum(f["refit"] == "cold" for f in fits),
                success_curve=curve,
                **timing,
            )
            results.append(row)
            print(json.dumps(row), flush=True)
    for mode in args.modes:
        rows = [r for r in results if r["mode"] == mode]
        steps = [step for step, _ in rows[0]["success_curve"]] if rows else []
        by_step = {
            step: statistics.mean(dict(r["success_curve"]).get(step, float("nan")) for r in rows)
            for step in steps
        }
        print(
            json.dumps(
                dict(
                    bench="refit_summary",
                    mode=mode,
                    seeds=len(rows),
                    success_rate=[r["success_rate"] for r in rows],
                    final_distance_mean=statistics.mean(r["final_distance"] for r in rows),
                    fit_seconds_mean=statistics.mean(r["fit_seconds"] for r in rows),
                    fit_epochs_mean=statistics.mean(r["fit_epochs"] for r in rows),
                    success_curve_mean=[[k, round(v, 3)] for k, v in by_step.items()],
                )
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()

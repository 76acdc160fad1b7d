"""The ensemble's training loop at another git revision against the working tree's, in one
process, epoch by epoch in turn (CPU time and wall time), on bench/model_fit.py's data.

    .venv/bin/python bench/fit_before_after.py --rev 3f8dcd6 [--rounds 5] [--threads 1]

The old src/mbrl/models/ensemble.py and ensemble_fit.py are read with `git show REV:path`
and imported under another name, so both versions run side by side on the same torch.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from mbrl.models import ensemble as new_ensemble  # noqa: E402
from model_fit import BATCH, DU, DX, HIDDEN, HOLDOUT, E, synthetic  # noqa: E402


def old_modules(rev: str, tmp: Path):
    """Import REV's ensemble_fit and ensemble as `old_ensemble_fit`, `old_ensemble`."""
    mods = {}
    for name in ("ensemble_fit", "ensemble"):
        src = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:src/mbrl/models/{name}.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        src = src.replace("from mbrl.models.ensemble_fit import", "from old_ensemble_fit import")
        path = tmp / f"old_{name}.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location(f"old_{name}", path)
        mods[name] = importlib.util.module_from_spec(spec)
        sys.modules[f"old_{name}"] = mods[name]
        spec.loader.exec_module(mods[name])
    return mods["ensemble"], mods["ensemble_fit"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per fit")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = synthetic(10_000, np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        old_ens, old_fit = old_modules(args.rev, Path(tmp))
        sides = {
            "old": (old_ens.ProbabilisticEnsemble, old_fit.FitConfig),
            "new": (new_ensemble.ProbabilisticEnsemble, new_ensemble.FitConfig),
        }
        wall = {k: [] for k in sides}
        cpu = {k: [] for k in sides}
        load = os.getloadavg()[0]
        for r in range(args.rounds + 1):  # round 0 warms up both
            for key, (cls, cfg_cls) in sides.items():
                cfg = cfg_cls(
                    batch_size=BATCH,
                    max_epochs=args.epochs,
                    patience=10**6,
                    holdout_fraction=HOLDOUT,
                )
                model = cls(DX, DU, E, HIDDEN, seed=r, fit_config=cfg)
                t, c = time.perf_counter(), time.process_time()
                model.fit(data, np.random.default_rng(r), progress=False)
                if r:
                    wall[key].append((time.perf_counter() - t) / args.epochs)
                    cpu[key].append((time.process_time() - c) / args.epochs)
        speed = [o / n for o, n in zip(cpu["old"], cpu["new"], strict=True)]
        print(
            json.dumps(
                {
                    "bench": "fit_before_after",
                    "rev": args.rev,
                    "threads": args.threads,
                    "rounds": args.rounds,
                    "old_cpu_s_per_epoch": round(statistics.median(cpu["old"]), 3),
                    "new_cpu_s_per_epoch": round(statistics.median(cpu["new"]), 3),
                    "old_wall_s_per_epoch": round(statistics.median(wall["old"]), 3),
                    "new_wall_s_per_epoch": round(statistics.median(wall["new"]), 3),
                    "speedup_cpu_median": round(statistics.median(speed), 3),
                    "speedup_cpu_min": round(min(speed), 3),
                    "speedup_cpu_max": round(max(speed), 3),
                    "load_average_before": round(load, 2),
                    "load_average_after": round(os.getloadavg()[0], 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()

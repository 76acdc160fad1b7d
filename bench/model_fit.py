"""Ensemble fit time and prediction throughput, one JSON object per line.

    .venv/bin/python bench/model_fit.py [--epochs 5] [--rounds 3] [--threads N]
        [--skip-mbrl-lib] [--skip-refit] [--skip-step] [--bf16]

References are measured in the same run. Fit: each round times, back to back, (1) the
exact GEMMs of `epochs` training epochs (every layer's forward, input-gradient and
weight-gradient bmm at the minibatch shape, no autograd, activations or optimizer: the
FLOPs of forward + backward at the machine's GEMM speed for those shapes), (2) our fit for
`epochs` epochs and (3) mbrl-lib 0.2.0's ModelTrainer for `epochs` epochs on the same
transitions, ensemble shape and batch (in its own venv, bench/peers/mbrl_lib.py), so load
from other processes hits all three alike; the JSON gives per-round ratios' median and range.
With --bf16 each round also runs (2) again with bfloat16 matrix products
(FitConfig.precision), same seed and epochs, and reports its speed-ups and holdout error.
Refit: after 10 new episodes arrive at a model fitted on 9.5k transitions (full budget
--max-epochs, patience 8), the seconds, epochs and test error of a warm (FitConfig defaults:
<= 20 epochs, patience 3), a continued (today's default) and a cold refit.
Step: every figure is a ratio to a plain batched GEMM timed alternately in the same loop.
Data: 10k transitions of a smooth synthetic 13-D system with 5-D actions (the reach
task's state/action sizes), so the benchmark needs no simulator.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mbrl.data.dataset import TransitionDataset
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.models.ensemble_fit import FitConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers.mbrl_lib import MbrlLibPeer  # noqa: E402

DX, DU, E, HIDDEN = 13, 5, 5, (200, 200, 200, 200)
BATCH, HOLDOUT, LR, WD = 256, 0.2, 1e-3, 5e-5


def synthetic(n: int, rng: np.random.Generator) -> TransitionDataset:
    W = rng.standard_normal((DX + DU, DX)) * 0.3
    T = 50
    states, actions = [], []
    for _ in range(n // T):
        x = rng.uniform(-1, 1, DX)
        xs, us = [x], rng.uniform(-1, 1, (T, DU))
        for u in us:
            x = x + 0.05 * np.tanh(np.concatenate([x, u]) @ W)
            xs.append(x)
        states.append(np.array(xs))
        actions.append(us)
    return TransitionDataset.from_episodes(states, actions)


def timeit(fn, min_seconds: float = 1.0) -> float:
    fn()
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        fn()
        reps += 1
    return (time.perf_counter() - start) / reps


def paired(fn_a, fn_b, reps: int = 30) -> tuple[float, float]:
    """Median seconds of fn_a and fn_b timed alternately, so load changes hit both alike."""
    fn_a(), fn_b()
    ta, tb = [], []
    for _ in range(reps):
        s = time.perf_counter()
        fn_a()
        ta.append(time.perf_counter() - s)
        s = time.perf_counter()
        fn_b()
        tb.append(time.perf_counter() - s)
    return float(np.median(ta)), float(np.median(tb))


def mlp_flops(rows: int, with_var: bool = True) -> float:
    sizes = [DX + DU, *HIDDEN]
    f = sum(2 * rows * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return f + 2 * rows * HIDDEN[-1] * DX * (2 if with_var else 1)


class TrainGemms:
    """The GEMMs of one training epoch, bare: per minibatch and layer (d_in -> d_out) the
    forward (E, B, d_in) x (E, d_in, d_out), the weight gradient (E, d_in, B) x (E, B, d_out)
    and, above the first layer, the input gradient (E, B, d_out) x (E, d_out, d_in), with
    the same transposed views autograd's bmm backward uses."""

    def __init__(self, rows: int, batch: int) -> None:
        sizes = [DX + DU, *HIDDEN, 2 * DX]
        self.batches = [batch] * (rows // batch) + ([rows % batch] if rows % batch else [])
        self.layers = [
            (torch.randn(E, a, b), a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ]
        self.acts = {B: [torch.randn(E, B, max(sizes))] for B in set(self.batches)}
        self.flops = sum(
            2 * E * B * a * b * (2 if i == 0 else 3)
            for B in self.batches
            for i, (_, a, b) in enumerate(self.layers)
        )

    @torch.no_grad()
    def epoch(self) -> None:
        for B in self.batches:
            buf = self.acts[B][0]
            for i, (w, a, _) in enumerate(self.layers):
                h = buf[..., :a]
                out = torch.bmm(h, w)
                torch.bmm(h.transpose(1, 2), out)  # grad wrt w
                if i:
                    torch.bmm(out, w.transpose(1, 2))  # grad wrt h


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def spread(values: list[float]) -> dict:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def timed_fit(data: TransitionDataset, cfg: FitConfig, seed: int) -> tuple[float, float, float]:
    """A fresh ensemble fitted on `data`: (wall s, CPU s per epoch, mean holdout MSE)."""
    model = ProbabilisticEnsemble(DX, DU, E, HIDDEN, seed=seed, fit_config=cfg)
    t, c = time.perf_counter(), time.process_time()
    report = model.fit(data, np.random.default_rng(seed), progress=False)
    epochs = report.extra["epochs"]
    wall, cpu = (time.perf_counter() - t) / epochs, (time.process_time() - c) / epochs
    return wall, cpu, round(float(np.mean(report.extra["holdout_mse"])), 6)


def fit_rounds(data: TransitionDataset, args, threads: int) -> None:
    """Interleaved rounds of reference GEMMs, our fit and mbrl-lib's; prints one line each
    round and a summary."""
    # Episodes are all 50 steps, so every split (ours by episode, theirs by row) trains on
    # the same number of rows.
    n_train = len(data.split(HOLDOUT, np.random.default_rng(0))[0])
    gemms = TrainGemms(n_train, BATCH)
    cfg = FitConfig(
        lr=LR,
        weight_decay=WD,
        batch_size=BATCH,
        max_epochs=args.epochs,
        patience=10**6,
        holdout_fraction=HOLDOUT,
    )
    peer = None
    if not args.skip_mbrl_lib:
        peer = MbrlLibPeer(threads, log=lambda m: print(json.dumps({"bench": "note", "msg": m})))
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/data.npz"
            np.savez(path, obs=data.obs, act=data.act, next_obs=data.next_obs)
            peer.call(
                "setup_fit",
                data=path,
                ensemble_size=E,
                hidden=list(HIDDEN),
                batch_size=BATCH,
                holdout_fraction=HOLDOUT,
                lr=LR,
                weight_decay=WD,
                seed=0,
            )
    bf16_cfg = dataclasses.replace(cfg, precision="bfloat16")
    # Warm-up (allocator, thread pools, first-call paths) for all of them, not timed.
    gemms.epoch()
    for warm in (cfg, bf16_cfg) if args.bf16 else (cfg,):
        ProbabilisticEnsemble(
            DX, DU, E, HIDDEN, fit_config=dataclasses.replace(warm, max_epochs=1)
        ).fit(data, progress=False)
    if peer is not None:
        peer.call("fit", epochs=1)
    load_before = load_average()
    rows = []
    for r in range(args.rounds):
        t, c = time.perf_counter(), time.process_time()
        for _ in range(args.epochs):
            gemms.epoch()
        ref = (time.perf_counter() - t) / args.epochs
        ref_cpu = (time.process_time() - c) / args.epochs
        ours, ours_cpu, mse = timed_fit(data, cfg, r)
        row = {
            "bench": "ensemble_fit_round",
            "round": r,
            "reference_gemm_s_per_epoch": round(ref, 4),
            "ours_s_per_epoch": round(ours, 4),
            "ours_fraction_of_gemm": round(ref / ours, 3),
            "ours_fraction_of_gemm_cpu": round(ref_cpu / ours_cpu, 3),
            "ours_holdout_mse": mse,
        }
        if args.bf16:  # the same fit (seed, data, epochs) with bfloat16 matrix products
            bf16, bf16_cpu, row["bf16_holdout_mse"] = timed_fit(data, bf16_cfg, r)
            row["bf16_s_per_epoch"] = round(bf16, 4)
            row["bf16_speedup_vs_fp32_cpu"] = round(ours_cpu / bf16_cpu, 3)
        if peer is not None:
            theirs = peer.call("fit", epochs=args.epochs)
            row["mbrl_lib_s_per_epoch"] = round(theirs["seconds"] / theirs["epochs"], 4)
            row["speedup_vs_mbrl_lib"] = round(row["mbrl_lib_s_per_epoch"] / ours, 3)
            their_cpu = theirs["cpu_seconds"] / theirs["epochs"]
            row["speedup_vs_mbrl_lib_cpu"] = round(their_cpu / ours_cpu, 3)
            if args.bf16:
                row["bf16_speedup_vs_mbrl_lib_cpu"] = round(their_cpu / bf16_cpu, 3)
        rows.append(row)
        print(json.dumps(row), flush=True)

    def median(key: str) -> float:
        return statistics.median(x[key] for x in rows)

    summary = {
        "bench": "ensemble_fit",
        "transitions": len(data),
        "train_rows": n_train,
        "members": E,
        "hidden": list(HIDDEN),
        "batch": BATCH,
        "epochs_per_round": args.epochs,
        "rounds": args.rounds,
        "threads": threads,
        "ours_s_per_epoch": spread([x["ours_s_per_epoch"] for x in rows]),
        "train_gflops": round(gemms.flops / median("ours_s_per_epoch") / 1e9, 2),
        "reference_gemm_gflops": round(gemms.flops / median("reference_gemm_s_per_epoch") / 1e9, 2),
        "fraction_of_gemm": spread([x["ours_fraction_of_gemm"] for x in rows]),
        # CPU time: less sensitive to other processes taking the core (meaningful at 1 thread).
        "fraction_of_gemm_cpu": spread([x["ours_fraction_of_gemm_cpu"] for x in rows]),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    if peer is not None:
        summary["mbrl_lib_s_per_epoch"] = spread([x["mbrl_lib_s_per_epoch"] for x in rows])
        summary["speedup_vs_mbrl_lib"] = spread([x["speedup_vs_mbrl_lib"] for x in rows])
        summary["speedup_vs_mbrl_lib_cpu"] = spread([x["speedup_vs_mbrl_lib_cpu"] for x in rows])
        if args.bf16:
            summary["bf16_speedup_vs_mbrl_lib_cpu"] = spread(
                [x["bf16_speedup_vs_mbrl_lib_cpu"] for x in rows]
            )
        peer.close()
    summary["ours_holdout_mse"] = spread([x["ours_holdout_mse"] for x in rows])
    if args.bf16:
        for key in ("bf16_speedup_vs_fp32_cpu", "bf16_holdout_mse"):
            summary[key] = spread([x[key] for x in rows])
    print(json.dumps(summary), flush=True)


def refit_after_new_episodes(args, threads: int) -> None:
    """Seconds and epochs of the refit after 10 new episodes (500 transitions) arrive at a
    model fitted on 9.5k, for each FitConfig.refit mode, and its error on 20 unseen episodes
    (MSE of the predicted change over the change's variance)."""
    full = synthetic(11_000, np.random.default_rng(0))  # the first 10k are the fit data
    ids = full.episode_ids
    old, data, test = (full.select_episodes(ids[a:b]) for a, b in ((0, 190), (0, 200), (200, 220)))
    cfg = FitConfig(
        lr=LR,
        weight_decay=WD,
        batch_size=BATCH,
        holdout_fraction=HOLDOUT,
        max_epochs=args.max_epochs,
    )

    def test_nmse(model: ProbabilisticEnsemble) -> float:
        mean, _ = model.predict(test.obs, test.act)
        true = test.next_obs - test.obs
        return float(np.mean(((mean - test.obs) - true) ** 2) / np.mean(true.var(0)))

    with tempfile.TemporaryDirectory() as tmp:
        base = ProbabilisticEnsemble(
            DX, DU, E, HIDDEN, seed=0, fit_config=dataclasses.replace(cfg, refit="warm")
        )
        first = base.fit(old, np.random.default_rng(0), progress=False)
        base.save(f"{tmp}/base.npz")
        print(
            json.dumps(
                {
                    "bench": "ensemble_first_fit",
                    "transitions": len(old),
                    "epochs": first.extra["epochs"],
                    "seconds": round(first.seconds, 2),
                    "test_nmse": round(test_nmse(base), 5),
                    "threads": threads,
                }
            ),
            flush=True,
        )
        for mode in ("warm", "continue", "cold"):
            model = ProbabilisticEnsemble.load(f"{tmp}/base.npz")
            model.fit_config = dataclasses.replace(cfg, refit=mode)
            load = load_average()
            report = model.fit(data, np.random.default_rng(1), progress=False)
            print(
                json.dumps(
                    {
                        "bench": "ensemble_refit",
                        "mode": mode,
                        "ran": report.extra["refit"],
                        "transitions": len(data),
                        "new_transitions": len(data) - len(old),
                        "epochs": report.extra["epochs"],
                        "seconds": round(report.seconds, 2),
                        "test_nmse": round(test_nmse(model), 5),
                        "threads": threads,
                        "load_average_before": load,
                    }
                ),
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per fit round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved fit rounds (>= 3)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--skip-mbrl-lib", action="store_true")
    parser.add_argument(
        "--bf16", action="store_true",
        help="each round also fits ours with FitConfig.precision='bfloat16' (same seed)",
    )  # fmt: skip
    parser.add_argument("--skip-step", action="store_true", help="no step/predict figures")
    parser.add_argument("--skip-refit", action="store_true", help="no refit-mode comparison")
    parser.add_argument(
        "--max-epochs", type=int, default=40, help="full budget of the refit comparison's fits"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    rng = np.random.default_rng(0)
    data = synthetic(10_000, rng)

    # Reference: plain float32 batched GEMM with the hidden layer's shape.
    with torch.no_grad():
        for rows in (256, 2000):
            a, b = torch.randn(E, rows, 200), torch.randn(E, 200, 200)
            sec = timeit(lambda a=a, b=b: torch.bmm(a, b))
            gemm = 2 * E * rows * 200 * 200 / sec / 1e9
            print(
                json.dumps(
                    {
                        "bench": "reference_bmm",
                        "rows_per_member": rows,
                        "gflops": round(gemm, 2),
                        "threads": threads,
                    }
                ),
                flush=True,
            )
    fit_rounds(data, args, threads)
    if not args.skip_refit:
        refit_after_new_episodes(args, threads)
    if args.skip_step:
        return
    model = ProbabilisticEnsemble(DX, DU, E, HIDDEN, seed=0)
    model.fit(data, np.random.default_rng(0), progress=False)

    gen = torch.Generator().manual_seed(0)
    for n in (500, 5000, 20000):
        x, u = torch.randn(n, DX), torch.randn(n, DU)
        with torch.no_grad():
            for mode in ("ts1", "mean"):
                # Reference: the same FLOPs as plain GEMMs (4 hidden-sized bmm's, same rows).
                a, b = torch.randn(E, n // E, 200), torch.randn(E, 200, 200)
                sec, ref_sec = paired(
                    lambda x=x, u=u, mode=mode: model.step(x, u, mode, gen),
                    lambda a=a, b=b: torch.bmm(a, b),
                )
                gflops = mlp_flops(n, mode != "mean") / sec / 1e9
                ref = 2 * E * (n // E) * 200 * 200 / ref_sec / 1e9
                print(
                    json.dumps(
                        {
                            "bench": "ensemble_step",
                            "mode": mode,
                            "particles": n,
                            "samples_per_s": round(n / sec),
                            "gflops": round(gflops, 2),
                            "reference_bmm_gflops": round(ref, 2),
                            "ratio": round(gflops / ref, 3),
                            "threads": threads,
                        }
                    ),
                    flush=True,
                )
    xs, us = data.obs[:5000], data.act[:5000]
    sec = timeit(lambda: model.predict(xs, us))
    print(
        json.dumps(
            {
                "bench": "ensemble_predict_numpy",
                "rows": 5000,
                "samples_per_s": round(5000 / sec),
                "threads": threads,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()

"""Ensemble fit time and prediction throughput, one JSON object per line.

    .venv/bin/python bench/model_fit.py [--epochs 10] [--threads N]

References are measured in the same run: a plain batched GEMM (torch.bmm, float32) of the
hidden-layer shape gives the machine's GFLOP/s, and every model figure is reported as a
ratio to it, so noise from other load on the machine cancels to first order.
Data: 10k transitions of a smooth synthetic 13-D system with 5-D actions (the reach
task's state/action sizes), so the benchmark needs no simulator.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from mbrl.data.dataset import TransitionDataset
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.models.ensemble_fit import FitConfig

DX, DU, E, HIDDEN = 13, 5, 5, (200, 200, 200, 200)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
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

    model = ProbabilisticEnsemble(
        DX,
        DU,
        E,
        HIDDEN,
        seed=0,
        fit_config=FitConfig(max_epochs=args.epochs, patience=10**6, batch_size=256),
    )
    gemm_before = gemm_at(256)
    start = time.perf_counter()
    report = model.fit(data, np.random.default_rng(0), progress=False)
    fit_s = time.perf_counter() - start
    n_train = round(len(data) * (1 - model.fit_config.holdout_fraction))
    # Training ~ 3x the forward FLOPs (forward, backward w.r.t. inputs and weights).
    train_gflops = 3 * E * mlp_flops(n_train) * report.extra["epochs"] / fit_s / 1e9
    print(
        json.dumps(
            {
                "bench": "ensemble_fit",
                "transitions": len(data),
                "members": E,
                "hidden": list(HIDDEN),
                "epochs": report.extra["epochs"],
                "seconds": round(fit_s, 2),
                "seconds_per_epoch": round(fit_s / report.extra["epochs"], 3),
                "train_gflops": round(train_gflops, 2),
                # Reference: bmm at the minibatch shape, measured before and after the fit.
                "ratio_to_bmm_256": round(
                    train_gflops / (0.5 * (gemm_before + gemm_at(256, True))), 3
                ),
                "threads": threads,
            }
        ),
        flush=True,
    )

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


_GEMM: dict[int, float] = {}


def gemm_at(rows: int, fresh: bool = False) -> float:
    """GFLOP/s of torch.bmm at (E, rows, 200) x (E, 200, 200), cached unless `fresh`."""
    if fresh or rows not in _GEMM:
        a, b = torch.randn(E, rows, 200), torch.randn(E, 200, 200)
        with torch.no_grad():
            _GEMM[rows] = 2 * E * rows * 200 * 200 / timeit(lambda: torch.bmm(a, b)) / 1e9
    return _GEMM[rows]


if __name__ == "__main__":
    main()

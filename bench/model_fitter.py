"""Collector/fitter costs: episode file size, message encode+decode vs a bare sha256 of the
same bytes, and the fitter's full fit (dataset + ensemble + local models) vs the bare ensemble
fit on the same data. One JSON object per line; ratios are within this run.

Usage: AMENT_PREFIX_PATH=.venv .venv/bin/python bench/model_fitter.py [--episodes 10 --ticks 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mbrl.agents import registry as agents
from mbrl.agents.arm import ArmModel
from mbrl.agents.episodes import task_trajectories
from mbrl.data.episodes import EpisodeWriter, read_episode
from mbrl.ros.fitting import LocalModelSettings, fit_models
from mbrl.ros.node_configs import ModelFitterConfig
from mbrl.ros.transport import decode_episode_msg, encode_episode_msg

JOINTS = ModelFitterConfig().arm.joint_names


def _record(path: Path, rng: np.random.Generator, ticks: int) -> None:
    """A 20 Hz episode of a first-order servo driven by random increments (as the tests)."""
    q = rng.uniform(-0.5, 0.5, 5)
    c = q.copy()
    with EpisodeWriter(path, JOINTS, {"episode_id": "0"}) as w:
        for k in range(ticks + 1):
            w.write_joint_state(0.05 * k, q, np.zeros(5))
            c = c + rng.uniform(-0.1, 0.1, 5)
            w.write_command(0.05 * k + 0.001, c)
            q = q + 0.5 * (c - q)


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--ticks", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"e{i}.mcap" for i in range(args.episodes)]
        for path in paths:
            _record(path, rng, args.ticks)
        data = paths[0].read_bytes()
        t_hash = _best(lambda: hashlib.sha256(data).hexdigest(), 50)
        t_msg = _best(lambda: decode_episode_msg(encode_episode_msg(data, 0, 1, True)), 50)
        print(json.dumps({
            "bench": "episode_message", "ticks": args.ticks, "bytes": len(data),
            "bytes_per_tick": round(len(data) / args.ticks, 1),
            "encode_decode_ms": round(1e3 * t_msg, 3), "sha256_ms": round(1e3 * t_hash, 3),
            "ratio_to_sha256": round(t_msg / t_hash, 2),
        }))  # fmt: skip
        episodes = [read_episode(p) for p in paths]
        cfg = ModelFitterConfig()
        arm, params = ArmModel.from_config(cfg.arm), cfg.agent.preset()
        algo, task = cfg.agent.algo, cfg.agent.task

        def learner():
            return agents.make_learner(algo, task, arm, params, seed=0)

        trajectories = task_trajectories(episodes, task, arm, agents.increment_base(params))
        bare = learner()
        start = time.perf_counter()
        bare.fit(trajectories)  # the agent's learner alone on the same trajectories
        t_bare = time.perf_counter() - start
        dataset = bare.dataset(trajectories)
        start = time.perf_counter()
        metrics = fit_models(episodes, arm, learner(), LocalModelSettings(), version=1).metrics
        t_full = time.perf_counter() - start
        ensemble = bare.model
        print(json.dumps({
            "bench": "fit", "episodes": args.episodes, "transitions": len(dataset),
            "ensemble": f"{ensemble.ensemble_size}x{list(params['hidden'])}",
            "max_epochs": params["fit_max_epochs"], "bare_learner_s": round(t_bare, 2),
            "fitter_fit_s": round(t_full, 2), "ratio_to_bare": round(t_full / t_bare, 2),
            "of_which_ensemble_s": round(metrics["ensemble_fit_seconds"], 2),
            "ensemble_epochs": metrics["ensemble_epochs"],
            "holdout_mse": round(metrics["ensemble_holdout_mse"], 4),
        }))  # fmt: skip


if __name__ == "__main__":
    main()

"""Memory per episode of the model_fitter's and the collector's per-episode work, without ROS
(docs/real_arm.md "Soak"). One JSON object per line: RSS and glibc's heap figures (in use /
free, mallinfo2) every `--every` episodes, then the growth per episode after the warm-up.

fitter: as ModelFitter._fit_loop: each new episode file is read and kept, then the soak's
learner refits (warm) on all episodes in a new thread, saves, and the heap is trimmed
(`--no-trim`: not, as before). collector: as the collector node: an EpisodeRouter episode
of `--ticks` states and commands, closed (with the rosbag2 metadata rewrite), read back and
encoded as the /mbrl/episodes message. (Not measured here: the collector's DDS writer keeps
each published message, transient-local keep-last 1000, for late-joining fitters.)

Usage: .venv/bin/python bench/node_memory.py fitter [--episodes 200 --epochs 3 --no-trim]
       .venv/bin/python bench/node_memory.py collector [--episodes 300]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

from mbrl.agents import registry as agents
from mbrl.agents.arm import ArmModel
from mbrl.agents.config import AgentConfig
from mbrl.data.episodes import EpisodeWriter, read_episode
from mbrl.ros.fitting import CheckpointStore, fit_models, release_free_heap
from mbrl.ros.node_configs import CollectorConfig, ModelFitterConfig
from mbrl.ros.recording import EpisodeRouter
from mbrl.ros.transport import encode_episode_msg

# the soak's agent (test/ros/test_soak.py), its epochs set by --epochs
SOAK_AGENT = {"hidden": [64, 64], "fit_batches_per_epoch": 20}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost",
    )]  # fmt: skip


def _memory() -> dict[str, float]:
    """RSS and glibc's heap: bytes in use, free inside the heap, mmapped (all MB)."""
    rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    out = {"rss_mb": rss / 2**20}
    try:
        mallinfo2 = ctypes.CDLL(ctypes.util.find_library("c")).mallinfo2
    except (OSError, AttributeError, TypeError):
        return out
    mallinfo2.restype = _MallInfo2
    m = mallinfo2()
    out.update(heap_in_use_mb=m.uordblks / 2**20, heap_free_mb=m.fordblks / 2**20,
               mmapped_mb=m.hblkhd / 2**20)  # fmt: skip
    return out


def _record(path: Path, rng: np.random.Generator, joints, ticks: int) -> None:
    """A 20 Hz episode of a first-order servo driven by random increments (as the tests)."""
    q = rng.uniform(-0.5, 0.5, len(joints))
    c = q.copy()
    with EpisodeWriter(path, joints, {"episode_id": "0"}) as w:
        for k in range(ticks + 1):
            w.write_joint_state(0.05 * k, q, np.zeros(len(joints)))
            c = c + rng.uniform(-0.1, 0.1, len(joints))
            w.write_command(0.05 * k + 0.001, c)
            q = q + 0.5 * (c - q)


def _fitter(args, root: Path):
    agent = AgentConfig(params=json.dumps({**SOAK_AGENT, "fit_max_epochs": args.epochs}))
    cfg = ModelFitterConfig(agent=agent)
    arm = ArmModel.from_config(cfg.arm)
    learner = agents.make_learner("mpc", "reach", arm, cfg.agent.preset(), cfg.seed)
    store = CheckpointStore(root / "models")
    rng = np.random.default_rng(0)
    episodes = {}

    def fit(version: int) -> None:
        result = fit_models(list(episodes.values()), arm, learner, cfg.local_settings(),
                            version, max_gap=cfg.max_gap, seed=cfg.seed)  # fmt: skip
        store.save(version, result, {"episodes": sorted(episodes)})
        if args.trim:
            release_free_heap()

    for i in range(1, args.episodes + 1):
        path = root / f"episode_{i:06d}.mcap"
        _record(path, rng, arm.joint_names, args.ticks)
        episodes[hashlib.sha256(path.read_bytes()).hexdigest()] = read_episode(path)
        worker = threading.Thread(target=fit, args=(i,), name="fit")  # a new one per fit
        worker.start()
        worker.join()
        yield i


def _collector(args, root: Path):
    cfg = CollectorConfig()
    clock = [0.0]
    router = EpisodeRouter(root, cfg.joints, cfg.end_grace, clock=lambda: clock[0],
                           chunk_bytes=cfg.chunk_bytes, flush_period=cfg.flush_period)  # fmt: skip
    rng = np.random.default_rng(0)
    t = 0.0
    for i in range(1, args.episodes + 1):
        router.start(i, t, {"episode_id": str(i), "task": "reach"}, goal=([0.2, 0, 0.1], "world"))
        q = rng.uniform(-0.5, 0.5, len(cfg.joints))
        for k in range(args.ticks + 1):
            t, clock[0] = t + 0.05, clock[0] + 0.05
            if k == args.ticks:
                router.end(i, t - 0.01)  # the next state and command finish the episode
            router.state(t, q, np.zeros(len(q)))
            router.command(t + 0.001, q + 0.01)
            for rec in router.finished():
                data = rec.writer.path.read_bytes()
                encode_episode_msg(data, rec.episode_id, rec.writer.num_messages, True)
        yield i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("node", choices=("fitter", "collector"))
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3, help="fitter: the soak's is 30")
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=20, help="episodes before the baseline")
    parser.add_argument("--no-trim", dest="trim", action="store_false")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = _fitter if args.node == "fitter" else _collector
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for i in run(args, Path(tmp)):
            if i % args.every and i != args.warmup:
                continue
            gc.collect()
            mem = _memory()
            if i == args.warmup:
                base = mem
            print(json.dumps({"node": args.node, "episode": i,
                              **{k: round(v, 2) for k, v in mem.items()}}), flush=True)  # fmt: skip
    n = args.episodes - args.warmup
    print(json.dumps({
        "bench": f"{args.node}_memory", "episodes": args.episodes, "ticks": args.ticks,
        **({"epochs": args.epochs, "trim": args.trim} if args.node == "fitter" else {}),
        **{f"{k[:-3]}_kb_per_episode": round(1024 * (mem[k] - base[k]) / n, 1)
           for k in ("rss_mb", "heap_in_use_mb", "heap_free_mb") if k in mem},
    }))  # fmt: skip


if __name__ == "__main__":
    main()

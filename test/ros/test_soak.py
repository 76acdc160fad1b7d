"""Long runs (issue 16, done-when; expensive tier only): a real-time soak of the controller
with periodic refits, and the demo's learning schedule many times in a row (none may hang
or lose an episode). Figures: docs/real_arm.md "Soak"."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from ros_helpers import Output

from mbrl.data.episodes import read_episode
from mbrl.ros.demo import learn
from mbrl.ros.graph import get_nodes
from mbrl.ros.runner import GraphRunner

pytestmark = [pytest.mark.ros, pytest.mark.expensive]
SOAK_S = float(os.environ.get("MBRL_SOAK_S", "3600"))  # 1 h unless told otherwise
# Deadline misses allowed (share of ticks): the planner's deadline is 60 % of the period, and
# on 2 cores shared with other jobs it is missed far more often (docs/real_arm.md "Soak").
MAX_MISS = float(os.environ.get("MBRL_SOAK_MAX_MISS", "0.02"))
RUNS = int(os.environ.get("MBRL_RUNS", "20"))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@pytest.mark.timeout(SOAK_S + 900)
def test_soak_realtime_control_with_periodic_refits(ros_context, tmp_path) -> None:
    """SOAK_S of real-time control: the controller runs its own 5 s episodes (standalone,
    new goal each), the collector records them and the fitter refits on every new episode;
    models swap in through the gate. Asserted: no node dies; the controller's and the sim's
    RSS grow < 5 % from minutes 5-10 to the last 5 minutes; deadline misses stay under
    MAX_MISS of the ticks.
    Figures are written to <tmp>/soak.json and printed."""
    names = ["sim", "collector", "model_fitter", "mpc_controller"]
    # refits of seconds, not minutes, at any data size (20 batches per epoch)
    agent = "{fit_max_epochs: 30, hidden: [64, 64], fit_batches_per_epoch: 20}"
    overrides = {
        "sim": {"seed": 0},
        "collector": {"data_dir": str(tmp_path / "collector")},
        "model_fitter": {"data_dir": str(tmp_path / "fitter"), "agent.params": agent},
        "mpc_controller": {"data_dir": str(tmp_path / "ctl"), "standalone": True,
                           "episode_ticks": 100, "mode": "mpc", "agent.params": agent},
    }  # fmt: skip
    output = Output()
    runner = GraphRunner(get_nodes(names), overrides=overrides, output=output)
    runner.start()
    node = rclpy.create_node("soak_client")
    diag: dict[str, dict] = {}

    def on_diag(msg: DiagnosticArray) -> None:
        for status in msg.status:
            diag[status.name] = {kv.key: kv.value for kv in status.values}

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
    pids = {p.spec.name: p.popen.pid for p in runner._procs}
    samples: list[dict] = []
    try:
        start = time.monotonic()
        next_sample = start
        while time.monotonic() - start < SOAK_S:
            rclpy.spin_once(node, timeout_sec=0.2)
            if time.monotonic() >= next_sample:
                runner.check()
                ctl = diag.get("mbrl/mpc_controller", {})
                samples.append({
                    "t": time.monotonic() - start, "load": os.getloadavg()[0],
                    **{f"rss_{n}": _rss_kib(pid) for n, pid in pids.items()},
                    "ticks": int(ctl.get("ticks", 0)), "misses": int(ctl.get("deadline_misses", 0)),
                    "model_version": int(ctl.get("model_version", -1)),
                    "gate_refused": int(ctl.get("gate_refused", 0)),
                    "tick_ms_p99": float(ctl.get("tick_ms_p99", "nan")),
                })  # fmt: skip
                next_sample += 30.0
        runner.check()
    finally:
        node.destroy_node()
        runner.shutdown()
        (tmp_path / "graph.log").write_text(output.text())  # every node's log, to diagnose
    after_warmup = [s for s in samples if 300 <= s["t"] <= 600] or samples[:1]
    end = samples[-10:]
    growth = {
        n: (sum(s[f"rss_{n}"] for s in end) / len(end))
        / (sum(s[f"rss_{n}"] for s in after_warmup) / len(after_warmup))
        - 1.0
        for n in pids
    }
    last = samples[-1]
    figures = {"seconds": SOAK_S, "ticks": last["ticks"], "deadline_misses": last["misses"],
               "miss_rate": last["misses"] / max(last["ticks"], 1),
               "model_version": last["model_version"], "gate_refused": last["gate_refused"],
               "rss_growth": growth, "load_mean": sum(s["load"] for s in samples) / len(samples),
               "samples": samples}  # fmt: skip
    (tmp_path / "soak.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps({k: v for k, v in figures.items() if k != "samples"}))
    assert last["model_version"] > 1  # refits happened and models swapped in
    assert end[-1]["ticks"] > end[0]["ticks"], "the controller stopped ticking (graph.log)"
    assert growth["mpc_controller"] < 0.05 and growth["sim"] < 0.05, growth
    assert figures["miss_rate"] < MAX_MISS, figures["miss_rate"]


@pytest.mark.timeout(RUNS * 1000)
@pytest.mark.parametrize("timing", ["lockstep", "realtime"])
def test_the_demo_schedule_many_times_in_a_row(tmp_path, timing) -> None:
    """The demo's learning schedule RUNS times in a row (small budget): every run finishes
    (none hangs), and every training episode is recorded complete (none lost)."""
    walls = []
    for k in range(RUNS):
        run_dir = tmp_path / f"run{k}"
        t0 = time.monotonic()
        summary = learn(run_dir, budget_steps=100, episode_steps=50, eval_goals=2, eval_every=2,
                        seed=k, timeout=900, timing=timing)  # fmt: skip
        walls.append(time.monotonic() - t0)
        assert summary["real_steps"] == 100, (k, summary)
        recorded = sorted((run_dir / "collector" / "episodes").glob("*.mcap"))
        assert len(recorded) == 2, (k, recorded)
        for path in recorded:
            assert read_episode(path).complete, (k, path)
    print(json.dumps({"timing": timing, "runs": RUNS, "wall_s": walls}))

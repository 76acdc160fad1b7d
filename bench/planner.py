"""Planner speed: ms per replan and achieved GFLOP/s against a plain fp32 matmul, for the
PETS budget and the shipped 20 Hz configuration, and pytorch-mppi at the PETS budget.

Model: ProbabilisticEnsemble(dx=16, du=5, E=5, hidden 4x200) (the reach observation and
action sizes); weights are untrained, which does not change the work. Cost: ReachCost on
the EE and goal entries of the state. Prints one JSON object per result line.

    .venv/bin/python bench/planner.py [--threads N] [--pets-replans 3] [--rt-replans 200]
        [--success] [--skip-mppi]

pytorch-mppi is for this benchmark only: if it is missing, it is installed pinned with
--no-deps into this interpreter's environment (its torch>=2.0 requirement is already met
by the pinned torch) and a JSON line says so. mbrl-lib 0.2.0 (its PETS agent: CEM through
TrajectoryOptimizerAgent, ModelEnv, GaussianMLP with TS-infinity over 20 particles) runs in
its own pinned venv, built on first use (bench/peers/mbrl_lib.py), as a worker process that
waits while our planners run. All PETS-budget planners take turns replan by replan, and each
speed-up line gives the median and range of the per-round ratios, with the load average
before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mbrl.control.cem import CEMPlanner
from mbrl.control.icem import ICEMPlanner
from mbrl.control.presets import PETS_BUDGET, REALTIME_20HZ
from mbrl.costs.reach import ReachCost, StateLayout
from mbrl.models.ensemble import ProbabilisticEnsemble

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers.mbrl_lib import MbrlLibPeer  # noqa: E402

DX, DU, E, HIDDEN = 16, 5, 5, (200, 200, 200, 200)
PYTORCH_MPPI = ("pytorch-mppi==0.9.1", "arm-pytorch-utilities==0.5.0", "pytorch-seed==0.2.0")


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    """Best fp32 GFLOP/s of an n x n x n matmul over `reps` (the machine's attainable peak;
    the best, not the median, so that load from other processes cannot flatter ratios)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times) / 1e9


def flops_per_eval(dx: int, du: int, hidden: tuple[int, ...], with_var: bool = True) -> int:
    """Multiply-add FLOPs (2 per MAC) of one particle through one member."""
    widths = [dx + du, *hidden, 2 * dx if with_var else dx]
    return 2 * sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))


class Timed:
    """Wraps the model and cost to split a replan's time into model / cost / the rest."""

    def __init__(self, model, cost) -> None:
        self.model, self.cost, self.ensemble_size = model, cost, model.ensemble_size
        self.t_model = self.t_cost = 0.0

    def step(self, x, u, mode="ts1", generator=None):
        t = time.perf_counter()
        out = self.model.step(x, u, mode, generator)
        self.t_model += time.perf_counter() - t
        return out

    def stage(self, x, u):
        t = time.perf_counter()
        out = self.cost.stage(x, u)
        self.t_cost += time.perf_counter() - t
        return out

    def terminal(self, x):
        t = time.perf_counter()
        out = self.cost.terminal(x)
        self.t_cost += time.perf_counter() - t
        return out


class OurPlanner:
    """One of our planners on the timed model/cost; `replan()` plans from a fixed state."""

    def __init__(self, name, cls, config, model, cost) -> None:
        self.name, self.config = name, config
        self.timed = Timed(model, cost)
        gen = torch.Generator().manual_seed(0)
        self.planner = cls(self.timed, self.timed, DU, config, generator=gen)
        self.x0 = np.zeros(DX, dtype=np.float32)
        self.replan()  # warm-up (allocations, caches)
        self.planner.model_steps, self.timed.t_model, self.timed.t_cost = 0, 0.0, 0.0

    def replan(self) -> None:
        self.planner.plan(self.x0)


def report(name, runner, times, evals, ref_gflops, threads, **extra) -> dict:
    med = statistics.median(times)
    gflop = evals * flops_per_eval(DX, DU, HIDDEN) / 1e9
    rec = dict(
        bench="planner",
        name=name,
        threads=threads,
        replans=len(times),
        ms_median=1e3 * med,
        ms_p99=1e3 * float(np.percentile(times, 99)),
        model_evals_per_replan=evals,
        gflop_per_replan=gflop,
        gflops=gflop / med,
        fraction_of_matmul=gflop / med / ref_gflops,
        **extra,
    )
    emit(**rec)
    return rec


CPU_TIMES: dict[str, list[float]] = {}


def run_interleaved(runners: dict, replans: int) -> dict[str, list[float]]:
    """Time `replans` replans of each runner, alternating runners replan by replan, so load
    from other processes on this shared machine hits all of them alike. Wall seconds are
    returned; CPU seconds (the runner's own process, which other load disturbs less at one
    thread) go to CPU_TIMES."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for name in runners:
        CPU_TIMES[name] = []
    for _ in range(replans):
        for name, r in runners.items():
            t, c = time.perf_counter(), time.process_time()
            cpu = r.replan()  # a runner in another process reports its own CPU time
            times[name].append(time.perf_counter() - t)
            CPU_TIMES[name].append(time.process_time() - c if cpu is None else cpu)
    return times


def our_report(r: OurPlanner, times, ref, threads) -> dict:
    total = sum(times)
    return report(
        r.name,
        r,
        times,
        r.planner.model_steps / len(times),
        ref,
        threads,
        config=dataclasses.asdict(r.config),
        share_model=r.timed.t_model / total,
        share_cost=r.timed.t_cost / total,
        share_other=1 - (r.timed.t_model + r.timed.t_cost) / total,
    )


def ensure_pytorch_mppi():
    try:
        return importlib.import_module("pytorch_mppi")
    except ImportError:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *PYTORCH_MPPI]
        emit(bench="note", msg="installing pytorch-mppi for the benchmark only", cmd=" ".join(cmd))
        subprocess.run(cmd, check=True)
        return importlib.import_module("pytorch_mppi")


class PytorchMPPI:
    """pytorch-mppi's MPPI on the same model, cost and budget: K samples, horizon T, M
    particles (rollout_samples) through TS-infinity, and `iterations` refinements per
    replan (command(..., shift_nominal_trajectory=False) after the first)."""

    name = "pets_budget_pytorch_mppi_0.9.1"

    def __init__(self, model, cost, config) -> None:
        pm = ensure_pytorch_mppi()
        gen = torch.Generator().manual_seed(0)
        self.config = config

        def dynamics(x, u):
            return model.step(x, u, config.propagation, gen)

        def running_cost(x, u):
            return cost.stage(x[:, None], u[:, None])[:, 0]

        def terminal(states, actions):  # states (M, K, T, dx)
            return cost.terminal(states[..., -1, :])

        self.mppi = pm.MPPI(
            dynamics,
            running_cost,
            DX,
            noise_sigma=0.25 * torch.eye(DU),
            num_samples=config.num_samples,
            horizon=config.horizon,
            rollout_samples=config.particles,
            terminal_state_cost=terminal,
            u_min=-torch.ones(DU),
            u_max=torch.ones(DU),
            lambda_=1.0,
        )
        self.x0 = torch.zeros(DX)
        self.replan()

    def replan(self) -> None:
        with torch.no_grad():
            self.mppi.command(self.x0)
            for _ in range(self.config.iterations - 1):
                self.mppi.command(self.x0, shift_nominal_trajectory=False)

    @property
    def evals(self) -> int:
        c = self.config
        return c.iterations * c.num_samples * c.particles * c.horizon


class MbrlLibPlanner:
    """mbrl-lib 0.2.0's PETS agent at the same budget, model shape and state layout, in its
    own venv; `replan()` is one TrajectoryOptimizerAgent.act from a fixed state."""

    name = "pets_budget_mbrl_lib_0.2.0"

    def __init__(self, config, threads: int) -> None:
        self.peer = MbrlLibPeer(threads, log=lambda msg: emit(bench="note", msg=msg))
        c = config
        self.evals = self.peer.call(
            "setup_planner",
            dx=DX,
            du=DU,
            ensemble_size=E,
            hidden=list(HIDDEN),
            horizon=c.horizon,
            num_samples=c.num_samples,
            num_elites=c.num_elites,
            iterations=c.iterations,
            particles=c.particles,
            momentum=c.momentum,
            ee=[10, 13],
            goal=[13, 16],
            seed=0,
        )["evals_per_replan"]

    def replan(self) -> float:
        return self.peer.call("replan")["cpu_seconds"]


def speedup(name: str, theirs: list[float], ours: list[float], **extra) -> None:
    """Per-round ratio of their replan time to ours (rounds interleave, so each pair saw
    the same load): median, min and max."""
    ratios = [t / o for t, o in zip(theirs, ours, strict=True)]
    emit(
        bench=name,
        ratio_median=round(statistics.median(ratios), 3),
        ratio_min=round(min(ratios), 3),
        ratio_max=round(max(ratios), 3),
        rounds=len(ratios),
        ours="pets_budget_cem",
        **extra,
    )


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def task_success(name: str, config, goals: int) -> dict:
    """Reach success (final distance < 2 cm after 60 ticks) of MPC with the known kinematic
    model, on seeds 0..goals-1. The model is deterministic, so particles are set to 1; the
    rest of the budget (samples, horizon, iterations) is the named configuration's."""
    from mbrl.config import ArmConfig
    from mbrl.control.anytime import AnytimeMPC
    from mbrl.costs.kinematics import ForwardKinematics
    from mbrl.models.kinematic import KinematicArmModel
    from mbrl.sim.tasks import make_env

    cfg = ArmConfig()
    env = make_env("reach", cfg, max_steps=60)
    arm = env.unwrapped.arm
    nj = len(arm.joint_names)
    fk = ForwardKinematics(cfg.urdf, cfg.ee_link, cfg.joint_names)
    model = KinematicArmModel(
        arm.lower, arm.upper, arm.velocity_limit, cfg.max_increment, cfg.control_period
    )
    cost = ReachCost(StateLayout(q=(0, nj)), fk, lower=arm.lower, upper=arm.upper)
    config = dataclasses.replace(config, particles=1, propagation="mean", nominal_rollout=False)
    cls = ICEMPlanner if "icem" in type(config).__name__.lower() else CEMPlanner
    mpc = AnytimeMPC(cls(model, cost, nj, config, generator=torch.Generator().manual_seed(0)), nj)
    final, times = [], []
    for seed in range(goals):
        obs, _ = env.reset(seed=seed)
        cost.set_goal(env.unwrapped.goal)
        mpc.reset()
        done = False
        while not done:
            t = time.perf_counter()
            action = mpc.act(obs[:nj])
            times.append(time.perf_counter() - t)
            obs, _, term, trunc, info = env.step(action)
            done = term or trunc
        final.append(info["distance"])
    env.close()
    return dict(
        bench="reach_success_known_model",
        name=name,
        planner=cls.__name__,
        goals=goals,
        success=float(np.mean(np.array(final) < 0.02)),
        median_final_distance_m=float(np.median(final)),
        ms_median=1e3 * statistics.median(times),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--pets-replans", type=int, default=3)
    ap.add_argument("--rt-replans", type=int, default=200)
    ap.add_argument("--skip-mppi", action="store_true")
    ap.add_argument("--skip-mbrl-lib", action="store_true")
    ap.add_argument("--success", action="store_true", help="also compare reach success")
    ap.add_argument("--goals", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ref = matmul_gflops()
    emit(bench="matmul", n=2048, threads=args.threads, gflops=ref)
    model = ProbabilisticEnsemble(DX, DU, E, HIDDEN)
    cost = ReachCost(StateLayout(q=(0, 5), ee=(10, 13), goal=(13, 16)))
    pets = dataclasses.replace(PETS_BUDGET, nominal_rollout=False)
    runners = {
        "pets_budget_cem": OurPlanner("pets_budget_cem", CEMPlanner, pets, model, cost),
        "pets_budget_cem_chunked_1000_rows": OurPlanner(
            "pets_budget_cem_chunked_1000_rows",
            CEMPlanner,
            dataclasses.replace(pets, chunk_rows=1000),
            model,
            cost,
        ),
    }
    if not args.skip_mppi:
        runners["pytorch_mppi"] = PytorchMPPI(model, cost, PETS_BUDGET)
    if not args.skip_mbrl_lib:
        runners["mbrl_lib"] = MbrlLibPlanner(PETS_BUDGET, args.threads)
    load_before = load_average()
    times = run_interleaved(runners, args.pets_replans)
    load = dict(load_average_before=load_before, load_average_after=load_average())
    ours = times["pets_budget_cem"]
    our_report(runners["pets_budget_cem"], ours, ref, args.threads)
    name = "pets_budget_cem_chunked_1000_rows"
    our_report(runners[name], times[name], ref, args.threads)
    for key, bench in (("pytorch_mppi", "mppi"), ("mbrl_lib", "mbrl_lib")):
        if key in runners:
            r = runners[key]
            report(r.name, r, times[key], r.evals, ref, args.threads)
            speedup(f"speedup_vs_{bench}", times[key], ours, threads=args.threads, **load)
            ours_cpu = CPU_TIMES["pets_budget_cem"]
            speedup(f"speedup_vs_{bench}_cpu", CPU_TIMES[key], ours_cpu, threads=args.threads)
    if "mbrl_lib" in runners:
        runners["mbrl_lib"].peer.close()
    rt = OurPlanner("realtime_20hz_icem", ICEMPlanner, REALTIME_20HZ, model, cost)
    our_report(rt, run_interleaved({"rt": rt}, args.rt_replans)["rt"], ref, args.threads)
    if args.success:
        for name, cfg in (
            ("pets_budget", PETS_BUDGET),
            ("realtime_20hz", REALTIME_20HZ),
        ):
            emit(**task_success(name, cfg, args.goals))


if __name__ == "__main__":
    main()

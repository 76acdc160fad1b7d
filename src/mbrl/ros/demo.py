"""`mbrl demo` (`make demo`): the whole ROS 2 graph learns the reach task from scratch.

The embedded runner starts every node of mbrl.ros.graph (sim in lockstep, collector,
model_fitter, mpc_controller, experiment) with their parameter files plus the overrides
below; the experiment node drives explore -> fit -> MPC -> evaluate through topics and
services and prints its progress; the demo waits for its report and prints a summary.
`mbrl demo --scripted` runs the earlier scripted motion (mbrl.ros.demo_scripted).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from mbrl.agents.config import GRAPH_ALGOS
from mbrl.agents.pilco_params import with_schedule
from mbrl.config import ArmConfig, ConfigError, add_arm_arguments, arm_from_options
from mbrl.costs.tasks import SUCCESS_THRESHOLD, TASKS
from mbrl.ros.graph import AGENT_NODES, GRAPH, TIMED_NODES
from mbrl.ros.params import MODES, TIMINGS, config_parameters
from mbrl.ros.runner import GraphRunner, NodeDied

# The learner's model, planner and cost come from the agent's preset (mbrl.agents.presets),
# the same as `mbrl experiment`'s. The fitter only fits on the experiment's request, and
# lockstep runs as fast as the nodes answer, so wall-clock command intervals vary a lot: the
# default 3 x median gap would cut real trajectories into pieces.
FITTER_OVERRIDES: dict[str, Any] = {
    "max_gap": 100.0,
    "fit_on_new_data": False,
    "fit_local_lg": False,
}


def learning_overrides(
    run_dir: Path, *, budget_steps: int, episode_steps: int, eval_goals: int, eval_every: int,
    seed: int, timeout: float, task: str = "reach", algo: str = "mpc", timing: str = "lockstep",
    agent_params: str = "",
    arm: ArmConfig | None = None,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per-node parameter overrides of the lockstep learning run writing to run_dir.

    Every node keeps its own files under run_dir/<node>/, so a run starts from scratch and
    the report directory also holds the collector's MCAP episodes. `task` and `algo` are
    set on every node (graph.yaml's agent block), and so are `agent_params` (YAML overrides
    of the agent's preset, as `mbrl experiment --set`); push loads the cube into the sim.
    `arm` (an arm file, with its servo) replaces graph.yaml's arm on every node.
    """
    if algo == "pilco":  # its learner optimises for the goals this schedule runs next
        overrides = yaml.safe_load(agent_params) if agent_params.strip() else {}
        schedule = with_schedule(overrides, budget_steps=budget_steps, episode_steps=episode_steps,
                                 eval_goals=eval_goals, eval_every=eval_every)  # fmt: skip
        agent_params = yaml.safe_dump(schedule, default_flow_style=True).strip()
    agent = {"agent.task": task, "agent.algo": algo, "agent.params": agent_params}
    nodes = {
        "sim": {"seed": seed, "with_cube": task == "push"},
        "collector": {"data_dir": str(run_dir / "collector")},
        "model_fitter": {
            **FITTER_OVERRIDES,
            "data_dir": str(run_dir / "model_fitter"),
            "seed": seed,
        },  # fmt: skip
        "mpc_controller": {
            "start_enabled": False,
            "mode": "explore",
            "data_dir": str(run_dir / "mpc_controller"),
            "seed": seed,
        },
        "experiment": {
            "out_dir": str(run_dir.parent),
            "name": run_dir.name,
            "budget_steps": budget_steps,
            "episode_steps": episode_steps,
            "eval_goals": eval_goals,
            "eval_every": eval_every,
            "seed": seed,
            "timeout": float(timeout),
        },
    }
    for name in AGENT_NODES:
        nodes[name].update(agent)
    for name in TIMED_NODES:  # the graph's one timing switch (graph.yaml `timing`)
        nodes[name]["timing"] = timing
    if arm is not None:  # the one arm file, on every node (as graph.yaml's `/**` arm block)
        for overrides in nodes.values():
            overrides.update(config_parameters(arm, "arm."))
        # the command order of the sim and the recorded joints (their files' and their
        # configs' defaults are the bundled arm's)
        nodes["sim"]["joints"] = list(arm.joint_names)
        nodes["collector"]["joints"] = list(arm.joint_names)
    return nodes


def learn(
    run_dir: Path,
    *,
    budget_steps: int = 300,
    episode_steps: int = 100,
    eval_goals: int = 10,
    eval_every: int = 1,
    seed: int = 0,
    timeout: float = 1200.0,
    output: TextIO | None = None,
    task: str = "reach",
    algo: str = "mpc",
    timing: str = "lockstep",
    agent_params: str = "",
    arm: ArmConfig | None = None,
    prefixes: Mapping[str, Sequence[str]] | None = None,
    additional_env: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """Run the learning graph until the experiment node writes run_dir/summary.json.

    `prefixes` / `additional_env` start single nodes elsewhere (GraphRunner's, e.g. the
    fitter in another network namespace). Returns the summary (RunRecorder.finish). Raises
    NodeDied if a node dies, TimeoutError after `timeout` s in total.
    """
    run_dir = Path(run_dir).resolve()
    if (run_dir / "summary.json").exists():
        raise FileExistsError(f"{run_dir} already holds a finished run; choose another name")
    overrides = learning_overrides(
        run_dir, budget_steps=budget_steps, episode_steps=episode_steps,
        eval_goals=eval_goals, eval_every=eval_every, seed=seed, timeout=timeout, task=task,
        algo=algo, timing=timing, agent_params=agent_params, arm=arm,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    with GraphRunner(
        GRAPH, overrides=overrides, output=output, prefixes=prefixes, additional_env=additional_env
    ) as runner:
        while not (run_dir / "summary.json").exists():
            runner.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no report in {run_dir} after {timeout:.0f} s")
            time.sleep(0.5)
        time.sleep(0.5)  # summary.json is written last but one (then the plot): let it finish
    return json.loads((run_dir / "summary.json").read_text())


def _print_summary(summary: dict[str, Any], wall: float) -> None:
    run_dir = Path(summary["run_dir"]).resolve()
    task = summary.get("task", "reach")
    timing = summary.get("timing", "lockstep")
    print(f"\nmbrl demo: the ROS 2 graph learned {task} from scratch ({timing})")
    print("  evaluation     success      final distance  model")
    for row in summary["curve"]:
        print(
            f"  after {int(row['env_steps']):4d} steps   {row['success_rate']:5.0%}       "
            f"{row['final_distance'] * 100:6.2f} cm       v{int(row.get('model_version', 0))}"
        )
    print(f"\n  success rate   {summary['success_rate']:.0%} on held-out goals (final distance "
          f"< {SUCCESS_THRESHOLD[task] * 100:.0f} cm)")  # fmt: skip
    print(f"  real steps     {summary['real_steps']} control ticks "
          f"({summary['real_steps'] / 20:.0f} s of arm time at 20 Hz)")  # fmt: skip
    print(f"  wall time      {wall:.0f} s")
    print(f"  report         {run_dir}  (metrics.csv, learning_curve.png, summary.json)")
    print(f"  MCAP data      {run_dir / 'collector' / 'episodes'}  (the collector's)")
    print(f"  models         {run_dir / 'model_fitter' / 'models'}  (the fitter's checkpoints)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mbrl demo`."""
    parser.add_argument("--scripted", action="store_true",
                        help="run the scripted motion instead of learning")  # fmt: skip
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="realtime",
        help="sim timing of the scripted motion (--scripted only)",
    )
    parser.add_argument("--timing", choices=TIMINGS, default="lockstep",
                        help="learning: lockstep (fast, load-independent) or realtime "
                        "(nobody waits for the controller, as on a real arm)")  # fmt: skip
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="s to wait for the graph (scripted default 60, learning 1200)",
    )
    parser.add_argument("--task", choices=TASKS, default="reach", help="what to learn")
    parser.add_argument("--algo", choices=GRAPH_ALGOS, default="mpc",
                        help="the agent the graph's nodes host")  # fmt: skip
    parser.add_argument("--budget", type=int, default=300, help="real steps for learning")
    parser.add_argument("--eval-goals", type=int, default=10, help="held-out goals per eval")
    parser.add_argument("--eval-every", type=int, default=1, help="evaluate every N episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="runs", help="reports go to OUT_DIR/<name>/")
    parser.add_argument("--name", default="", help="run name (default ros-demo-<time>)")
    parser.add_argument("--view", action="store_true",
                        help="serve the live web viewer (needs `make view-deps`)")  # fmt: skip
    add_arm_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 on success, 1 if a node died or the graph did not answer."""
    if args.scripted:
        from mbrl.ros import demo_scripted

        args.timeout = 60.0 if args.timeout is None else args.timeout
        return demo_scripted.run(args)
    if args.view:  # the live viewer is its own process, stopped at exit
        from mbrl.ros import viewer

        viewer.start()
    try:  # None: graph.yaml's arm as it is
        arm = (
            None
            if args.arm is None and args.servo is None
            else arm_from_options(args.arm, args.servo)
        )
    except ConfigError as exc:
        print(f"[demo] {exc}", file=sys.stderr)
        return 2
    wall = time.monotonic()
    name = args.name or time.strftime("ros-demo-%Y%m%d-%H%M%S")
    run_dir = Path(args.out_dir) / name
    print(f"[demo] learning {args.task} through the ROS graph ({args.algo}); report in {run_dir}",
          flush=True)  # fmt: skip
    try:
        summary = learn(
            run_dir, budget_steps=args.budget, eval_goals=args.eval_goals,
            eval_every=args.eval_every, seed=args.seed,
            timeout=1200.0 if args.timeout is None else args.timeout, task=args.task,
            algo=args.algo, timing=args.timing, arm=arm,
        )  # fmt: skip
    except (NodeDied, TimeoutError, FileExistsError) as exc:
        print(f"[demo] FAILED: {exc}", file=sys.stderr)
        return 1
    _print_summary(summary, time.monotonic() - wall)
    return 0

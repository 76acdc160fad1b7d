"""`mbrl tabular {ab,dyna-maze,dyna-plus}`: the lecture's tabular model-based RL, with numbers
printed and figures written to --out (PNG)."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from mbrl.loop import dyna, mazes
from mbrl.loop.tabular import AB_NAMES, run_ab


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "experiment",
        choices=["ab", "dyna-maze", "dyna-plus"],
        help="ab: AB example; dyna-maze: Dyna-Q, Example 8.1; dyna-plus: Examples 8.2/8.3",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/tabular"), help="figure folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the numpy Generator")
    parser.add_argument(
        "--runs", type=_positive_int, default=30, help="independent runs to average"
    )
    parser.add_argument(
        "--episodes", type=_positive_int, default=50, help="dyna-maze episodes per run"
    )
    parser.add_argument(
        "--planning-steps", type=int, nargs="+", default=[0, 5, 50], help="dyna-maze n values"
    )
    parser.add_argument(
        "--samples", type=_positive_int, default=10_000, help="ab: sampled episodes"
    )


def run(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    if args.experiment == "ab":
        return _ab(args, rng)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.experiment == "dyna-maze":
        return _dyna_maze(args, rng)
    return _dyna_plus(args, rng)


def _ab(args: argparse.Namespace, rng: np.random.Generator) -> int:
    res = run_ab(args.samples, rng)
    print("AB example: observed episodes A,0,B,0 | B,1 x6 | B,0 (T = terminal)")
    print("state  N(s)  P(A|s)  P(B|s)  P(T|s)  R(s)")
    for i in range(2):
        p = res.transition_probs[i]
        print(
            f"{AB_NAMES[i]:>5}  {res.counts[i]:4d}  {p[0]:6.3f}  {p[1]:6.3f}  {p[2]:6.3f}"
            f"  {res.mean_rewards[i]:.3f}"
        )
    print(
        f"MC on the lecture's 8 sampled episodes: V(A) = {res.lecture_mc[0]:.3f}, "
        f"V(B) = {res.lecture_mc[1]:.3f}"
    )
    for i in range(2):
        # 4 standard errors of a mean of Bernoulli(V) returns: the tolerance the test uses
        tol = 4 * math.sqrt(0.25 / max(res.sampled_visits[i], 1))
        print(
            f"MC on {res.n_sampled} episodes sampled from the model (seed {args.seed}): "
            f"V({AB_NAMES[i]}) = {res.sampled_mc[i]:.4f} from {res.sampled_visits[i]} returns "
            f"(model value {res.model_values[i]:.3f}, tolerance +-{tol:.3f})"
        )
    return 0


def _dyna_maze(args: argparse.Namespace, rng: np.random.Generator) -> int:
    maze = mazes.DYNA_MAZE
    level = maze.epsilon_greedy_optimal_length(0.1)
    threshold = 1.25 * level
    curves = {}
    print(maze.render())
    print(f"Dyna-Q, {args.runs} runs x {args.episodes} episodes, alpha 0.1, eps 0.1, gamma 0.95;")
    print(f"shortest path {maze.shortest_path_length()} steps, eps-greedy optimal {level:.2f}")
    print("      eps-optimal episode   greedy-optimal episode")
    print("   n  first <=level  stays    median  runs reaching  seconds")
    for n in args.planning_steps:
        t0 = time.perf_counter()
        res = dyna.run_dyna_maze(
            maze, dyna.DynaConfig(planning_steps=n), args.runs, args.episodes, rng
        )
        seconds = time.perf_counter() - t0
        curves[n] = res.steps.mean(axis=0)
        censored = np.where(res.optimal_episode == 0, args.episodes + 1, res.optimal_episode)
        median = np.median(censored)
        median_text = f"{median:g}" if median <= args.episodes else f">{args.episodes}"
        below = np.flatnonzero(curves[n] <= threshold)
        first = int(below[0]) + 1 if below.size else 0
        stays = dyna.episodes_until_level(curves[n], threshold)
        print(
            f"{n:4d}  {first:13d}  {stays:5d}  {median_text:>8}  "
            f"{int((res.optimal_episode > 0).sum()):8d}/{args.runs:<4d}  {seconds:7.1f}"
        )
    print(
        f"eps-optimal episode: first episode at which / from which on the {args.runs}-run mean "
        f"steps per episode is <= level = {threshold:.2f} (1.25 x eps-greedy optimal)"
    )
    print(
        "greedy-optimal episode: per run, first episode after which the greedy policy walks "
        "a shortest path"
    )
    marks = [e for e in (2, 3, 5, 10, 25, 50) if e <= args.episodes]
    print("mean steps per episode at episode " + " ".join(f"{e:>6d}" for e in marks))
    for n, curve in curves.items():
        print(f"  n = {n:<4d}{'':25}" + " ".join(f"{curve[e - 1]:6.1f}" for e in marks))
    path = args.out / "tabular_dyna_maze.png"
    _plot_dyna_maze(curves, level, path, args)
    print(f"wrote {path}")
    return 0


def _plot_dyna_maze(
    curves: dict[int, np.ndarray], level: float, path: Path, args: argparse.Namespace
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    episodes = np.arange(1, args.episodes + 1)
    for n, curve in curves.items():
        ax.plot(episodes[1:], curve[1:], label=f"n = {n} planning steps")
    ax.axhline(level, color="grey", ls="--", lw=0.8, label="eps-greedy optimal")
    ax.set(xlabel="episode", ylabel="steps per episode", ylim=(0, 800), xlim=(2, args.episodes))
    ax.set_title(f"Dyna-Q on the Dyna Maze (S&B Ex. 8.1), mean of {args.runs} runs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# Examples 8.2 / 8.3 give no parameters for Figures 8.4 / 8.5; these are ours (alpha = 1 is
# exact in a deterministic maze; kappa chosen so the bonus stays below the goal reward).
PLUS_ALPHA, PLUS_PLANNING, PLUS_KAPPA = 1.0, 10, 1e-3
CHANGING = {  # name: (layouts before/after, change step, total steps) as in Figures 8.4 / 8.5
    "blocking": (mazes.BLOCKING_MAZE, 1000, 3000),
    "shortcut": (mazes.SHORTCUT_MAZE, 3000, 6000),
}


def _dyna_plus(args: argparse.Namespace, rng: np.random.Generator) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = {
        "Dyna-Q": dyna.DynaConfig(PLUS_PLANNING, alpha=PLUS_ALPHA),
        "Dyna-Q+": dyna.DynaConfig(PLUS_PLANNING, alpha=PLUS_ALPHA, kappa=PLUS_KAPPA),
    }
    print(
        f"{args.runs} runs; n = {PLUS_PLANNING}, alpha = {PLUS_ALPHA}, eps 0.1, gamma 0.95, "
        f"Dyna-Q+ kappa = {PLUS_KAPPA}"
    )
    print("maze      agent    reward before change  reward after change  (mean cumulative)")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (name, (pair, change, total)) in zip(axes, CHANGING.items(), strict=True):
        for label, cfg in agents.items():
            res = dyna.run_changing_maze(pair, change, total, cfg, args.runs, rng)
            mean = res.cumulative_reward.mean(axis=0)
            before = mean[change - 1]
            print(f"{name:9} {label:8} {before:20.1f} {mean[-1] - before:20.1f}")
            ax.plot(np.arange(1, total + 1), mean, label=label)
        ax.axvline(change, color="grey", ls="--", lw=0.8)
        ax.set(xlabel="time steps", ylabel="cumulative reward", title=f"{name} maze")
        ax.legend()
    fig.suptitle(f"Dyna-Q vs Dyna-Q+ (S&B Ex. 8.2, 8.3), mean of {args.runs} runs")
    fig.tight_layout()
    path = args.out / "tabular_dyna_plus.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")
    return 0

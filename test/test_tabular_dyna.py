"""Dyna-Q on the Dyna Maze (S&B Example 8.1) and Dyna-Q+ on the changing mazes (8.2, 8.3),
30 runs with fixed seeds; plus the maze geometry the results rest on."""

from __future__ import annotations

import numpy as np
import pytest

from mbrl.loop.dyna import DynaConfig, episodes_until_level, run_changing_maze, run_dyna_maze
from mbrl.loop.mazes import BLOCKING_MAZE, DYNA_MAZE, SHORTCUT_MAZE, Maze


def test_maze_geometry_matches_the_book():
    assert DYNA_MAZE.render().splitlines() == [
        ".......#G",
        "..#....#.",
        "S.#....#.",
        "..#......",
        ".....#...",
        ".........",
    ]
    assert DYNA_MAZE.shortest_path_length() == 14
    assert [m.shortest_path_length() for m in BLOCKING_MAZE] == [10, 16]
    assert [m.shortest_path_length() for m in SHORTCUT_MAZE] == [16, 10]
    table = DYNA_MAZE.next_state_table()
    start = DYNA_MAZE.index((2, 0))
    assert table[start, 2] == DYNA_MAZE.index((2, 1))  # right is free
    assert table[start, 3] == start  # left edge: stay
    assert table[DYNA_MAZE.index((2, 1)), 2] == DYNA_MAZE.index((2, 1))  # wall at (2, 2): stay
    # epsilon = 0 is the shortest path itself; epsilon = 0.1 costs a couple of steps.
    assert DYNA_MAZE.epsilon_greedy_optimal_length(0.0) == pytest.approx(14.0)
    assert 15.0 < DYNA_MAZE.epsilon_greedy_optimal_length(0.1) < 17.0


def test_bad_maze_and_config_are_named():
    with pytest.raises(ValueError, match=r"maze goal \(0, 9\) outside the 6x9 grid"):
        Maze(6, 9, (0, 0), (0, 9), frozenset())
    with pytest.raises(ValueError, match="start .* is a wall"):
        Maze(6, 9, (0, 0), (0, 8), frozenset({(0, 0)}))
    with pytest.raises(ValueError, match="unreachable"):
        Maze(3, 3, (0, 0), (2, 2), frozenset({(1, 0), (1, 1), (1, 2)})).shortest_path_length()
    with pytest.raises(ValueError, match="epsilon must be in"):
        DynaConfig(epsilon=1.5)
    with pytest.raises(ValueError, match="planning_steps"):
        DynaConfig(planning_steps=-1)
    with pytest.raises(ValueError, match="same grid size, start and goal"):
        run_changing_maze(
            (DYNA_MAZE, BLOCKING_MAZE[0]), 1, 2, DynaConfig(), 1, np.random.default_rng(0)
        )


def test_episodes_until_level():
    assert episodes_until_level(np.array([50.0, 30, 15, 25, 15, 14]), 20.0) == 5
    assert episodes_until_level(np.array([10.0, 12]), 20.0) == 1
    assert episodes_until_level(np.array([10.0, 30]), 20.0) == 0


@pytest.fixture(scope="module")
def dyna_results():
    """Figure 8.2's experiment: n = 0, 5, 50; 30 runs x 50 episodes; one seed per n."""
    return {
        n: run_dyna_maze(DYNA_MAZE, DynaConfig(planning_steps=n), 30, 50, np.random.default_rng(n))
        for n in (0, 5, 50)
    }


def test_more_planning_finds_the_optimal_path_in_fewer_episodes(dyna_results):
    # Per run: the first episode after which the greedy policy walks the 14-step path
    # (runs that never do within 50 episodes count as 51). Compared by the median.
    median = {}
    for n, res in dyna_results.items():
        assert res.shortest == 14
        assert res.steps.shape == (30, 50) and np.all(res.steps >= 14)
        episode = np.where(res.optimal_episode == 0, 51, res.optimal_episode)
        median[n] = np.median(episode)
    assert median[50] < median[5] < median[0], median
    assert median[50] <= 4  # the book: about 3 episodes with n = 50


def test_mean_curves_reach_epsilon_optimal_performance_in_book_order(dyna_results):
    # The book's reading of Figure 8.2: n = 50 reaches (epsilon-)optimal performance in about
    # 3 episodes, n = 5 in about 5, n = 0 in about 25. Level: 1.25 x the exact
    # epsilon-greedy optimal episode length (15.9 steps).
    level = 1.25 * DYNA_MAZE.epsilon_greedy_optimal_length(0.1)
    reached = {
        n: episodes_until_level(r.steps.mean(axis=0), level) for n, r in dyna_results.items()
    }
    assert all(v > 0 for v in reached.values()), reached
    assert reached[50] < reached[5] < reached[0], reached
    assert reached[50] <= 4 and reached[5] <= 10 and reached[0] >= 20, reached
    # The first episode is a random walk for every n (Q = 0, no reward seen yet).
    firsts = [r.steps[:, 0].mean() for r in dyna_results.values()]
    assert min(firsts) > 300


def test_dyna_q_plus_recovers_from_the_blocked_path():
    cfg = {"Dyna-Q": DynaConfig(10, alpha=1.0), "Dyna-Q+": DynaConfig(10, alpha=1.0, kappa=1e-3)}
    after = {}
    for name, c in cfg.items():
        res = run_changing_maze(BLOCKING_MAZE, 1000, 3000, c, 30, np.random.default_rng(3))
        mean = res.cumulative_reward.mean(axis=0)
        after[name] = mean[-1] - mean[999]
        assert np.all(np.diff(res.cumulative_reward, axis=1) >= 0)
    # Figure 8.4: after the wall moves Dyna-Q+ finds the new path far sooner.
    assert after["Dyna-Q+"] > 2 * after["Dyna-Q"], after


def test_only_dyna_q_plus_finds_the_shortcut():
    found, after = {}, {}
    for name, kappa in (("Dyna-Q", 0.0), ("Dyna-Q+", 1e-3)):
        cfg = DynaConfig(10, alpha=1.0, kappa=kappa)
        res = run_changing_maze(SHORTCUT_MAZE, 3000, 6000, cfg, 30, np.random.default_rng(4))
        found[name] = int(np.sum(res.final_greedy_steps == 10))  # the new 10-step path
        mean = res.cumulative_reward.mean(axis=0)
        after[name] = mean[-1] - mean[2999]
    # Figure 8.5: Dyna-Q keeps its 16-step path; Dyna-Q+ explores and takes the shortcut.
    # (The bonus can pull a final greedy path off the shortcut, so not all 30 show it.)
    assert found["Dyna-Q"] <= 3 and found["Dyna-Q+"] >= 20, found
    assert after["Dyna-Q+"] > 1.2 * after["Dyna-Q"], after

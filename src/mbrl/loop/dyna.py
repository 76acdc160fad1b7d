"""Tabular Dyna-Q and Dyna-Q+ (Sutton & Barto 2018, sec. 8.2-8.3) on the grid mazes.

Many independent runs are simulated in lock-step as arrays over R runs, so the book's 30-run
averages take seconds in numpy.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mbrl.loop.mazes import MOVES, Maze


@dataclasses.dataclass(frozen=True)
class DynaConfig:
    """Tabular Dyna-Q (Sutton & Barto 2018, sec. 8.2) and Dyna-Q+ (sec. 8.3).

    Attributes:
        planning_steps: n, simulated Q-learning updates from the model per real step.
        alpha: step size of every Q update.
        epsilon: probability of a uniformly random action (ties among greedy ones are broken
            uniformly at random).
        gamma: discount factor.
        kappa: Dyna-Q+ bonus weight, planning reward r + kappa * sqrt(tau) with tau the real
            time steps since (s, a) was last tried. kappa > 0 also lets planning use actions
            never tried in a visited state, modelled as staying put with reward 0 (the
            footnote to sec. 8.3); their tau counts from step 0. kappa = 0 is plain Dyna-Q.
    """

    planning_steps: int = 0
    alpha: float = 0.1
    epsilon: float = 0.1
    gamma: float = 0.95
    kappa: float = 0.0

    def __post_init__(self) -> None:
        if self.planning_steps < 0:
            raise ValueError(f"planning_steps must be >= 0, got {self.planning_steps}")
        for name in ("alpha", "epsilon", "gamma"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.kappa < 0:
            raise ValueError(f"kappa must be >= 0, got {self.kappa}")


class VectorDynaQ:
    """R independent tabular Dyna-Q(+) agents stepped together; row r*S + s of Q is run r.

    The model is the deterministic last-observed (s', r) per (s, a) of Sutton & Barto's
    tabular Dyna-Q; planning picks a previously observed state uniformly, then one of the
    actions taken there uniformly (any action under Dyna-Q+).
    """

    def __init__(
        self, n_runs: int, n_states: int, n_actions: int, cfg: DynaConfig, rng: np.random.Generator
    ) -> None:
        R, S, A = n_runs, n_states, n_actions
        self.cfg, self.rng, self.n_runs, self.n_states, self.n_actions = cfg, rng, R, S, A
        self.q = np.zeros((R * S, A))
        self.model_next = np.zeros((R * S, A), dtype=np.int64)
        self.model_reward = np.zeros((R * S, A))
        self.model_done = np.zeros((R * S, A), dtype=bool)
        self.last_tried = np.zeros((R * S, A), dtype=np.int64)  # real time step of last try
        self._tried = np.zeros((R * S, A), dtype=bool)
        self._state_seen = np.zeros(R * S, dtype=bool)
        self._seen_states = np.zeros((R, S), dtype=np.int64)  # per run, in order of first visit
        self._n_seen = np.zeros(R, dtype=np.int64)
        self._actions = np.zeros((R * S, A), dtype=np.int64)  # actions plannable per row
        self._n_actions = np.zeros(R * S, dtype=np.int64)
        self._base = np.arange(R) * S
        self._runs = np.arange(R)
        self._reward_seen = False

    def act(self, s: np.ndarray) -> np.ndarray:
        """epsilon-greedy actions (R,) for states s (R,), ties broken uniformly."""
        q = self.q[self._base + s]
        ties = q == q.max(axis=1, keepdims=True)
        greedy = np.argmax(ties * self.rng.random(q.shape), axis=1)
        explore = self.rng.random(self.n_runs) < self.cfg.epsilon
        return np.where(explore, self.rng.integers(0, self.n_actions, self.n_runs), greedy)

    def greedy(self, s: np.ndarray, runs: np.ndarray) -> np.ndarray:
        """argmax_a Q (lowest index on ties) for the given runs (K,) in states s (K,)."""
        return np.argmax(self.q[self._base[runs] + s], axis=1)

    def observe(
        self,
        s: np.ndarray,
        a: np.ndarray,
        r: np.ndarray,
        s_next: np.ndarray,
        done: np.ndarray,
        t: int,
    ) -> None:
        """Direct RL and model learning from one real step of every run, all arrays (R,)."""
        rows = self._base + s
        self._q_update(rows, a, r, s_next, done)
        new = ~self._state_seen[rows]
        if new.any():
            runs = self._runs[new]
            self._seen_states[runs, self._n_seen[runs]] = s[new]
            self._n_seen[runs] += 1
            self._state_seen[rows[new]] = True
            if self.cfg.kappa > 0:  # Dyna-Q+: every action plannable, modelled as a self-loop
                self.model_next[rows[new]] = s[new, None]
                self._actions[rows[new]] = np.arange(self.n_actions)
                self._n_actions[rows[new]] = self.n_actions
        first_try = ~self._tried[rows, a]
        if self.cfg.kappa == 0 and first_try.any():
            self._actions[rows[first_try], self._n_actions[rows[first_try]]] = a[first_try]
            self._n_actions[rows[first_try]] += 1
        self._tried[rows, a] = True
        self.model_next[rows, a] = s_next
        self.model_reward[rows, a] = r
        self.model_done[rows, a] = done
        self.last_tried[rows, a] = t
        self._reward_seen |= bool(np.any(r != 0))

    def plan(self, t: int) -> None:
        """n simulated one-step Q-learning updates per run from the model (step (f))."""
        n = self.cfg.planning_steps
        if n == 0:
            return
        u = self.rng.random((n, 2, self.n_runs))  # drawn even when skipped: same stream
        # Until some reward was seen, Q and all model rewards are 0 and every plain Dyna-Q
        # planning update is exactly 0: skipping them changes nothing and saves the long
        # first episode's cost.
        if self.cfg.kappa == 0 and not self._reward_seen:
            return
        # The model does not change during planning, so all n draws are looked up at once;
        # only the Q updates have to run one after another.
        s = self._seen_states[self._runs, (u[:, 0] * self._n_seen).astype(np.int64)]  # (n, R)
        rows = self._base + s
        a = self._actions[rows, (u[:, 1] * self._n_actions[rows]).astype(np.int64)]
        r = self.model_reward[rows, a]
        if self.cfg.kappa > 0:
            r = r + self.cfg.kappa * np.sqrt(t - self.last_tried[rows, a])
        next_rows = self._base + self.model_next[rows, a]
        discount = self.cfg.gamma * ~self.model_done[rows, a]
        flat = rows * self.n_actions + a
        q, q_flat, alpha = self.q, self.q.reshape(-1), self.cfg.alpha
        for k in range(n):
            target = r[k] + discount[k] * q[next_rows[k]].max(axis=1)
            old = q_flat[flat[k]]
            q_flat[flat[k]] = old + alpha * (target - old)

    def _q_update(self, rows, a, r, s_next, done) -> None:
        # Q-learning (Sutton & Barto eq. 6.8); no bootstrap from a terminal next state.
        best_next = self.q[self._base + s_next].max(axis=1)
        target = r + self.cfg.gamma * np.where(done, 0.0, best_next)
        self.q[rows, a] += self.cfg.alpha * (target - self.q[rows, a])


@dataclasses.dataclass(frozen=True)
class EpisodesResult:
    """Dyna-Q on an episodic maze over R runs and E episodes.

    Attributes:
        steps: (R, E) real steps of each episode.
        optimal_episode: (R,) first episode (1-based) after which the greedy policy
            (lowest-index ties) walks a shortest path; 0 if it never did within E episodes.
        shortest: the maze's shortest path length.
    """

    steps: np.ndarray
    optimal_episode: np.ndarray
    shortest: int


def run_dyna_maze(
    maze: Maze,
    cfg: DynaConfig,
    n_runs: int,
    n_episodes: int,
    rng: np.random.Generator,
    max_total_steps: int = 1_000_000,
) -> EpisodesResult:
    """Dyna-Q episodes on `maze` (Example 8.1 / Figure 8.2 of Sutton & Barto 2018)."""
    table = maze.next_state_table()
    start, goal, shortest = (
        maze.index(maze.start),
        maze.index(maze.goal),
        maze.shortest_path_length(),
    )
    agents = VectorDynaQ(n_runs, maze.n_states, len(MOVES), cfg, rng)
    s = np.full(n_runs, start)
    length = np.zeros(n_runs, dtype=np.int64)
    done_episodes = np.zeros(n_runs, dtype=np.int64)
    steps = np.zeros((n_runs, n_episodes), dtype=np.int64)
    optimal = np.zeros(n_runs, dtype=np.int64)
    t = 0
    while np.any(done_episodes < n_episodes):
        if t >= max_total_steps:
            raise RuntimeError(
                f"Dyna-Q did not finish {n_episodes} episodes in {max_total_steps} steps "
                f"(episodes done per run: min {done_episodes.min()})"
            )
        a = agents.act(s)
        s_next = table[s, a]
        done = s_next == goal
        agents.observe(s, a, done.astype(np.float64), s_next, done, t)
        agents.plan(t)
        length += 1
        t += 1
        ended = np.flatnonzero(done & (done_episodes < n_episodes))
        if ended.size:
            steps[ended, done_episodes[ended]] = length[ended]
            done_episodes[ended] += 1
            check = ended[optimal[ended] == 0]
            hit = check[_greedy_steps(agents, table, start, goal, shortest, check) > 0]
            optimal[hit] = done_episodes[hit]
        length[done] = 0
        s = np.where(done, start, s_next)
    return EpisodesResult(steps=steps, optimal_episode=optimal, shortest=shortest)


def episodes_until_level(mean_steps: np.ndarray, level: float) -> int:
    """First episode (1-based) from which `mean_steps` (E,) stays <= level; 0 if it never does.

    With level a little above the epsilon-greedy optimal episode length, this is when a
    mean learning curve reaches "epsilon-optimal performance" (S&B 2018, Figure 8.2).
    """
    above = np.flatnonzero(mean_steps > level)
    if above.size == 0:
        return 1
    return int(above[-1] + 2) if above[-1] + 1 < mean_steps.shape[0] else 0


def _greedy_steps(
    agents: VectorDynaQ, table: np.ndarray, start: int, goal: int, horizon: int, runs: np.ndarray
) -> np.ndarray:
    """(K,) steps the greedy policy of each of `runs` (K,) takes to the goal; -1 if it does
    not get there within `horizon` steps."""
    p = np.full(runs.shape[0], start)
    steps = np.full(runs.shape[0], -1)
    for k in range(1, horizon + 1):
        p = np.where(p == goal, goal, table[p, agents.greedy(p, runs)])
        steps[(p == goal) & (steps < 0)] = k
    return steps


@dataclasses.dataclass(frozen=True)
class ChangingMazeResult:
    """Dyna-Q(+) on a changing maze over R runs and T real steps.

    Attributes:
        cumulative_reward: (R, T) reward collected up to and including each step.
        change_step: the step from which the second layout applies.
        final_greedy_steps: (R,) length of the greedy path (lowest-index ties) from start to
            goal in the final layout after the last step; -1 if it does not reach the goal.
    """

    cumulative_reward: np.ndarray
    change_step: int
    final_greedy_steps: np.ndarray


def run_changing_maze(
    mazes: tuple[Maze, Maze],
    change_step: int,
    total_steps: int,
    cfg: DynaConfig,
    n_runs: int,
    rng: np.random.Generator,
) -> ChangingMazeResult:
    """Dyna-Q(+) on a maze that switches from mazes[0] to mazes[1] after `change_step` steps.

    The task is continuing: reaching the goal pays +1 and puts the agent back at the start
    (Examples 8.2 and 8.3, Figures 8.4 and 8.5).
    """
    before, after = mazes
    if (before.height, before.width, before.start, before.goal) != (
        after.height,
        after.width,
        after.start,
        after.goal,
    ):
        raise ValueError("changing maze: both layouts need the same grid size, start and goal")
    tables = before.next_state_table(), after.next_state_table()
    start, goal = before.index(before.start), before.index(before.goal)
    agents = VectorDynaQ(n_runs, before.n_states, len(MOVES), cfg, rng)
    s = np.full(n_runs, start)
    rewards = np.zeros((n_runs, total_steps))
    for t in range(total_steps):
        table = tables[0] if t < change_step else tables[1]
        a = agents.act(s)
        s_next = table[s, a]
        done = s_next == goal
        agents.observe(s, a, done.astype(np.float64), s_next, done, t)
        agents.plan(t)
        rewards[:, t] = done
        s = np.where(done, start, s_next)
    final = _greedy_steps(agents, tables[1], start, goal, before.n_states, np.arange(n_runs))
    return ChangingMazeResult(np.cumsum(rewards, axis=1), change_step, final)

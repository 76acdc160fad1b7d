"""The grid mazes of Sutton & Barto (2018), ch. 8: the Dyna Maze (Example 8.1), the blocking
maze (Example 8.2) and the shortcut maze (Example 8.3). Dyna-Q on them: mbrl.loop.dyna.
"""

from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np

# Action order: up, down, right, left (row, col deltas); moves into a wall or off the grid
# leave the agent where it is (Example 8.1).
MOVES = np.array([[-1, 0], [1, 0], [0, 1], [0, -1]])
ACTION_NAMES = ("up", "down", "right", "left")


@dataclasses.dataclass(frozen=True)
class Maze:
    """A deterministic grid world: reward +1 on entering `goal` (which ends the episode), else 0.

    Cells are (row, col) with row 0 at the top. State index s = row * width + col.
    """

    height: int
    width: int
    start: tuple[int, int]
    goal: tuple[int, int]
    walls: frozenset[tuple[int, int]]

    def __post_init__(self) -> None:
        for name in ("start", "goal"):
            r, c = getattr(self, name)
            if not (0 <= r < self.height and 0 <= c < self.width):
                raise ValueError(
                    f"maze {name} {(r, c)} outside the {self.height}x{self.width} grid"
                )
            if (r, c) in self.walls:
                raise ValueError(f"maze {name} {(r, c)} is a wall cell")

    @property
    def n_states(self) -> int:
        return self.height * self.width

    def index(self, cell: tuple[int, int]) -> int:
        return cell[0] * self.width + cell[1]

    def next_state_table(self) -> np.ndarray:
        """(S, 4) int: the state reached by each action from each cell.

        Wall cells get rows too, with ordinary moves out of them: an agent standing where a
        wall appears (the changing mazes) walks out instead of being stuck.
        """
        table = np.zeros((self.n_states, len(MOVES)), dtype=np.int64)
        for r in range(self.height):
            for c in range(self.width):
                for a, (dr, dc) in enumerate(MOVES):
                    nr, nc = r + dr, c + dc
                    blocked = not (0 <= nr < self.height and 0 <= nc < self.width)
                    if blocked or (nr, nc) in self.walls:
                        nr, nc = r, c
                    table[r * self.width + c, a] = nr * self.width + nc
        return table

    def shortest_path_length(self) -> int:
        """Fewest steps from start to goal (breadth-first search); the Dyna Maze gives 14."""
        table = self.next_state_table()
        dist = {self.index(self.start): 0}
        queue = deque([self.index(self.start)])
        while queue:
            s = queue.popleft()
            if s == self.index(self.goal):
                return dist[s]
            for s2 in table[s]:
                if int(s2) not in dist:
                    dist[int(s2)] = dist[s] + 1
                    queue.append(int(s2))
        raise ValueError(f"maze goal {self.goal} unreachable from start {self.start}")

    def distances_to_goal(self) -> np.ndarray:
        """(S,) fewest steps from each cell to the goal (inf where the goal is unreachable)."""
        table = self.next_state_table()
        dist = np.full(self.n_states, np.inf)
        dist[self.index(self.goal)] = 0.0
        for _ in range(self.n_states):  # Bellman-Ford on unit costs; S rounds always suffice
            new = np.minimum(dist, 1.0 + dist[table].min(axis=1))
            new[self.index(self.goal)] = 0.0
            if np.array_equal(new, dist):
                break
            dist = new
        return dist

    def epsilon_greedy_optimal_length(self, epsilon: float) -> float:
        """Expected episode length of the epsilon-greedy policy around an optimal Q.

        Greedy actions are the shortest-path moves (ties uniform); with probability epsilon a
        uniform action. This is the level "epsilon-optimal performance" curves settle at
        (Sutton & Barto 2018, Figure 8.2). Solves L = 1 + P_pi L, L(goal) = 0.
        """
        table = self.next_state_table()
        dist = self.distances_to_goal()
        free = np.flatnonzero(np.isfinite(dist) & (dist > 0))
        best = dist[table[free]] == dist[table[free]].min(axis=1, keepdims=True)
        pi = epsilon / len(MOVES) + (1 - epsilon) * best / best.sum(axis=1, keepdims=True)
        pos = {int(s): i for i, s in enumerate(free)}
        P = np.zeros((free.size, free.size))
        for i, s in enumerate(free):
            for a, s2 in enumerate(table[s]):
                if int(s2) in pos:
                    P[i, pos[int(s2)]] += pi[i, a]
        L = np.linalg.solve(np.eye(free.size) - P, np.ones(free.size))
        return float(L[pos[self.index(self.start)]])

    def render(self) -> str:
        """ASCII picture: S start, G goal, # wall, . free."""
        marks = {self.start: "S", self.goal: "G"} | {cell: "#" for cell in self.walls}
        rows = [
            "".join(marks.get((r, c), ".") for c in range(self.width)) for r in range(self.height)
        ]
        return "\n".join(rows)


# Example 8.1: 6 x 9, start (2, 0), goal (0, 8), seven wall cells.
DYNA_MAZE = Maze(
    6, 9, (2, 0), (0, 8), frozenset({(1, 2), (2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7)})
)
# Examples 8.2 / 8.3: a wall across row 3; start bottom middle, goal top right.
_ROW3 = {(3, c) for c in range(9)}
BLOCKING_MAZE = (  # gap on the right for the first 1000 steps, then on the left
    Maze(6, 9, (5, 3), (0, 8), frozenset(_ROW3 - {(3, 8)})),
    Maze(6, 9, (5, 3), (0, 8), frozenset(_ROW3 - {(3, 0)})),
)
SHORTCUT_MAZE = (  # gap on the left for the first 3000 steps, then a second one on the right
    Maze(6, 9, (5, 3), (0, 8), frozenset(_ROW3 - {(3, 0)})),
    Maze(6, 9, (5, 3), (0, 8), frozenset(_ROW3 - {(3, 0), (3, 8)})),
)

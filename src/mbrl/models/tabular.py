"""Table-lookup model of a finite MDP, counted from experience (Silver, RL lecture 8, "Table
Lookup Model"; Sutton & Barto 2018, sec. 8.1).

States and actions are integers: s in [0, S), a in [0, A). A transition is (s, a, r, s', done);
an episode ends on a transition with done=True, and its s' is then a terminal state (give the
terminal its own index, e.g. S - 1). Estimates from the N(s, a) recorded visits:

    N(s, a)         number of times a was taken in s
    P(s' | s, a)  = N(s, a, s') / N(s, a)
    R(s, a)       = (1 / N(s, a)) * sum_t 1(S_t = s, A_t = a) R_{t+1}

R is the mean reward over the N(s, a) visits. (The lecture slide prints the reward estimate
with the indicator sum written twice; the mean above is what is meant and what is coded.)
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from mbrl.models.base import ModelFileError

RewardMode = Literal["empirical", "mean"]

_FILE_FORMAT = "mbrl.table_lookup_model.v1"


class TableLookupModel:
    """Counts of (s, a, r, s', done) transitions with estimates and sampling.

    Sampling follows the lecture's second description of the table-lookup model: pick one of
    the recorded transitions that start with (s, a) uniformly at random and return its
    (s', r, done). The next state is then distributed as P(s' | s, a), and the reward keeps
    its observed spread (the AB example's B gives 1 or 0, not 0.75); `reward="mean"` returns
    R(s, a) instead.

    Args:
        n_states: S, number of states including terminal ones.
        n_actions: A, number of actions.
    """

    def __init__(self, n_states: int, n_actions: int) -> None:
        if n_states < 1 or n_actions < 1:
            raise ValueError(
                f"TableLookupModel needs n_states >= 1 and n_actions >= 1, "
                f"got n_states={n_states}, n_actions={n_actions}"
            )
        self.n_states = int(n_states)
        self.n_actions = int(n_actions)
        self._s = np.zeros(0, dtype=np.int64)
        self._a = np.zeros(0, dtype=np.int64)
        self._r = np.zeros(0, dtype=np.float64)
        self._s_next = np.zeros(0, dtype=np.int64)
        self._done = np.zeros(0, dtype=bool)
        self._index: tuple[np.ndarray, np.ndarray] | None = None  # (order, offsets) cache

    # ----------------------------------------------------------------------- recording
    def update(
        self, s: ArrayLike, a: ArrayLike, r: ArrayLike, s_next: ArrayLike, done: ArrayLike
    ) -> None:
        """Record transitions; each argument is a scalar or an array of shape (N,)."""
        s, a, s_next = (np.atleast_1d(np.asarray(v, dtype=np.int64)) for v in (s, a, s_next))
        r = np.atleast_1d(np.asarray(r, dtype=np.float64))
        done = np.atleast_1d(np.asarray(done, dtype=bool))
        n = s.shape[0]
        for name, v in (("a", a), ("r", r), ("s_next", s_next), ("done", done)):
            if v.shape != (n,):
                raise ValueError(f"transition field {name!r} has shape {v.shape}; expected ({n},)")
        for name, v, hi in (("s", s, self.n_states), ("s_next", s_next, self.n_states)) + (
            ("a", a, self.n_actions),
        ):
            if n and (v.min() < 0 or v.max() >= hi):
                raise ValueError(f"transition field {name!r} out of range: expected [0, {hi})")
        if not np.all(np.isfinite(r)):
            raise ValueError("transition field 'r' contains NaN or Inf")
        self._s = np.concatenate([self._s, s])
        self._a = np.concatenate([self._a, a])
        self._r = np.concatenate([self._r, r])
        self._s_next = np.concatenate([self._s_next, s_next])
        self._done = np.concatenate([self._done, done])
        self._index = None

    @classmethod
    def from_episodes(
        cls, episodes: list[list[tuple[int, int, float]]], n_states: int, n_actions: int
    ) -> tuple[TableLookupModel, np.ndarray]:
        """Build a model from episodes given as [(s_0, a_0, r_1), (s_1, a_1, r_2), ...].

        Each episode ends after its last tuple; that step goes to terminal state S - 1.
        Returns the model and the empirical start-state distribution (S,) of the episodes.
        """
        model = cls(n_states, n_actions)
        start = np.zeros(n_states)
        terminal = n_states - 1
        for k, episode in enumerate(episodes):
            if not episode:
                raise ValueError(f"episode {k} is empty; expected at least one (s, a, r) step")
            s = [step[0] for step in episode]
            s_next = s[1:] + [terminal]
            done = [False] * (len(episode) - 1) + [True]
            model.update(
                s, [step[1] for step in episode], [step[2] for step in episode], s_next, done
            )
            start[s[0]] += 1
        return model, start / max(len(episodes), 1)

    # ----------------------------------------------------------------------- estimates
    @property
    def num_transitions(self) -> int:
        return int(self._s.shape[0])

    @property
    def counts(self) -> np.ndarray:
        """N(s, a): (S, A) visit counts."""
        flat = np.bincount(self._key(self._s, self._a), minlength=self.n_states * self.n_actions)
        return flat.reshape(self.n_states, self.n_actions)

    @property
    def transition_counts(self) -> np.ndarray:
        """N(s, a, s'): (S, A, S) counts."""
        S, A = self.n_states, self.n_actions
        flat = np.bincount(self._key(self._s, self._a) * S + self._s_next, minlength=S * A * S)
        return flat.reshape(S, A, S)

    @property
    def transition_probs(self) -> np.ndarray:
        """P(s' | s, a): (S, A, S); rows of unvisited (s, a) are all zero (no estimate)."""
        n = self.counts
        return self.transition_counts / np.maximum(n, 1)[:, :, None]

    @property
    def mean_rewards(self) -> np.ndarray:
        """R(s, a): (S, A) mean reward over the N(s, a) visits; 0 where N(s, a) = 0."""
        S, A = self.n_states, self.n_actions
        total = np.bincount(self._key(self._s, self._a), weights=self._r, minlength=S * A)
        return total.reshape(S, A) / np.maximum(self.counts, 1)

    @property
    def terminal_states(self) -> np.ndarray:
        """(S,) bool: states that some recorded episode ended in."""
        mask = np.zeros(self.n_states, dtype=bool)
        mask[self._s_next[self._done]] = True
        return mask

    # ----------------------------------------------------------------------- sampling
    def sample(
        self, s: ArrayLike, a: ArrayLike, rng: np.random.Generator, reward: RewardMode = "empirical"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample (s' (N,), r (N,), done (N,)) for s, a of shape (N,) from the model."""
        if reward not in ("empirical", "mean"):
            raise ValueError(f"reward mode {reward!r} unknown; expected 'empirical' or 'mean'")
        s = np.atleast_1d(np.asarray(s, dtype=np.int64))
        a = np.atleast_1d(np.asarray(a, dtype=np.int64))
        key = self._key(s, a)
        order, offsets = self._sorted_index()
        n = np.diff(offsets)[key]
        if np.any(n == 0):
            bad = sorted({(int(x), int(y)) for x, y, c in zip(s, a, n, strict=True) if c == 0})
            raise ValueError(f"no experience for (state, action) pairs {bad[:5]}; cannot sample")
        pick = order[offsets[key] + (rng.random(key.shape[0]) * n).astype(np.int64)]
        r = self._r[pick] if reward == "empirical" else self.mean_rewards.reshape(-1)[key]
        return self._s_next[pick].copy(), np.asarray(r, dtype=np.float64), self._done[pick].copy()

    # ----------------------------------------------------------------------- files
    def save(self, path: str | Path) -> None:
        """Write the recorded transitions to `path` in .npz format (no pickle)."""
        with open(path, "wb") as f:  # a file object: numpy must not append ".npz"
            np.savez(
                f,
                format=np.array(_FILE_FORMAT),
                shape=np.array([self.n_states, self.n_actions]),
                s=self._s,
                a=self._a,
                r=self._r,
                s_next=self._s_next,
                done=self._done,
            )

    @classmethod
    def load(cls, path: str | Path) -> TableLookupModel:
        """Read a file written by `save`; a missing/corrupt/foreign file raises ModelFileError."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != _FILE_FORMAT:
                    raise ModelFileError(
                        f"{path}: format {str(data['format'])!r}; expected {_FILE_FORMAT!r}"
                    )
                n_states, n_actions = (int(v) for v in data["shape"])
                model = cls(n_states, n_actions)
                model.update(data["s"], data["a"], data["r"], data["s_next"], data["done"])
        except ModelFileError:
            raise
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ModelFileError(f"{path}: not a readable table-lookup model ({exc})") from exc
        return model

    # ----------------------------------------------------------------------- internals
    def _key(self, s: np.ndarray, a: np.ndarray) -> np.ndarray:
        return s * self.n_actions + a

    def _sorted_index(self) -> tuple[np.ndarray, np.ndarray]:
        # Transitions grouped by (s, a): group k occupies order[offsets[k]:offsets[k+1]].
        if self._index is None:
            key = self._key(self._s, self._a)
            order = np.argsort(key, kind="stable")
            offsets = np.concatenate([[0], np.cumsum(self.counts.reshape(-1))])
            self._index = (order, offsets)
        return self._index

"""Transitions (s, a, s', r) with episode ids and time indices, the input of every model fit.

Splits are by episode (never by row) so held-out scores measure generalisation to new
trajectories; normalisation statistics are computed here once and stored with each model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_MAGIC = "mbrl-transitions"
_VERSION = 1
_FIELDS = ("obs", "act", "next_obs", "reward", "episode", "t")


class DatasetFileError(ValueError):
    """A dataset file is missing, truncated or not a transition file; names the file."""


@dataclasses.dataclass(frozen=True)
class NormStats:
    """Per-dimension statistics for normalised inputs and delta targets.

    Attributes:
        in_mean, in_std: (dx + du,) of the model input [x, u]; std floored at 1e-6.
        delta_mean, delta_std: (dx,) of the target x' - x; std floored at 1e-6.
    """

    in_mean: np.ndarray
    in_std: np.ndarray
    delta_mean: np.ndarray
    delta_std: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class TransitionDataset:
    """N transitions, row-aligned arrays.

    Attributes:
        obs: (N, dx) state x_t.          act: (N, du) action u_t.
        next_obs: (N, dx) state x_{t+1}. reward: (N,) r_t.
        episode: (N,) int64 episode id.  t: (N,) int64 time index inside the episode.
    """

    obs: np.ndarray
    act: np.ndarray
    next_obs: np.ndarray
    reward: np.ndarray
    episode: np.ndarray
    t: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.obs)
        if self.obs.ndim != 2 or self.act.ndim != 2:
            raise ValueError(
                f"obs and act must be 2-D (N, dx) / (N, du); got {self.obs.shape}, {self.act.shape}"
            )
        if self.next_obs.shape != self.obs.shape:
            raise ValueError(f"next_obs shape {self.next_obs.shape} != obs {self.obs.shape}")
        for name in ("act", "reward", "episode", "t"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows; expected {n}")
        for name in ("obs", "act", "next_obs"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"{name} contains NaN/Inf")

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_episodes(
        cls,
        states: Sequence[np.ndarray],
        actions: Sequence[np.ndarray],
        rewards: Sequence[np.ndarray] | None = None,
        first_id: int = 0,
    ) -> TransitionDataset:
        """Build from K episodes: states[k] (T_k+1, dx), actions[k] (T_k, du), rewards (T_k,)."""
        parts: dict[str, list[np.ndarray]] = {f: [] for f in _FIELDS}
        for k, (s, a) in enumerate(zip(states, actions, strict=True)):
            s, a = np.asarray(s, float), np.asarray(a, float)
            T = len(a)
            if len(s) != T + 1:
                raise ValueError(f"episode {k}: {len(s)} states for {T} actions; expected T+1")
            r = np.zeros(T) if rewards is None else np.asarray(rewards[k], float)
            parts["obs"].append(s[:-1])
            parts["next_obs"].append(s[1:])
            parts["act"].append(a)
            parts["reward"].append(r)
            parts["episode"].append(np.full(T, first_id + k, dtype=np.int64))
            parts["t"].append(np.arange(T, dtype=np.int64))
        return cls(**{f: np.concatenate(v) for f, v in parts.items()})

    @classmethod
    def concat(cls, datasets: Sequence[TransitionDataset]) -> TransitionDataset:
        """Row-wise concatenation; episode ids must already be distinct."""
        return cls(**{f: np.concatenate([getattr(d, f) for d in datasets]) for f in _FIELDS})

    # ---- views ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.obs)

    @property
    def dx(self) -> int:
        return self.obs.shape[1]

    @property
    def du(self) -> int:
        return self.act.shape[1]

    @property
    def episode_ids(self) -> np.ndarray:
        """Sorted unique episode ids."""
        return np.unique(self.episode)

    def subset(self, rows: np.ndarray) -> TransitionDataset:
        """Rows selected by an index or boolean array."""
        return TransitionDataset(**{f: getattr(self, f)[rows] for f in _FIELDS})

    def select_episodes(self, ids: np.ndarray) -> TransitionDataset:
        return self.subset(np.isin(self.episode, ids))

    def split(
        self, holdout_fraction: float, rng: np.random.Generator
    ) -> tuple[TransitionDataset, TransitionDataset]:
        """Random train/holdout split by whole episodes (at least one episode each if >= 2)."""
        if not 0.0 <= holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
        ids = rng.permutation(self.episode_ids)
        n_hold = int(round(holdout_fraction * len(ids)))
        if holdout_fraction > 0 and len(ids) >= 2:
            n_hold = min(max(n_hold, 1), len(ids) - 1)
        return self.select_episodes(ids[n_hold:]), self.select_episodes(ids[:n_hold])

    def trajectories(self) -> tuple[np.ndarray, np.ndarray]:
        """Equal-length episodes as arrays: states (K, T+1, dx), actions (K, T, du)."""
        xs, us = [], []
        for eid in self.episode_ids:
            ep = self.subset(self.episode == eid)
            order = np.argsort(ep.t)
            xs.append(np.vstack([ep.obs[order], ep.next_obs[order][-1:]]))
            us.append(ep.act[order])
        lengths = {len(u) for u in us}
        if len(lengths) != 1:
            raise ValueError(f"episodes have different lengths {sorted(lengths)}; expected one T")
        return np.stack(xs), np.stack(us)

    def norm_stats(self) -> NormStats:
        """Mean/std of inputs [x, u] and of delta targets x' - x (std floored at 1e-6)."""
        inp = np.hstack([self.obs, self.act])
        delta = self.next_obs - self.obs
        return NormStats(
            in_mean=inp.mean(0),
            in_std=np.maximum(inp.std(0), 1e-6),
            delta_mean=delta.mean(0),
            delta_std=np.maximum(delta.std(0), 1e-6),
        )

    # ---- files ------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write an .npz (no pickle) atomically: temp file then rename."""
        path = Path(path)
        meta = json.dumps({"magic": _MAGIC, "version": _VERSION, "n": len(self)})
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, __meta__=np.frombuffer(meta.encode(), np.uint8), **self._arrays())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> TransitionDataset:
        """Read a file written by `save`; raise DatasetFileError naming the file otherwise."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["__meta__"]).decode())
                arrays = {f: z[f] for f in _FIELDS}
        except (OSError, zipfile.BadZipFile, KeyError, ValueError, EOFError) as e:
            raise DatasetFileError(f"{path}: not a readable transition file ({e})") from e
        if meta.get("magic") != _MAGIC or meta.get("version") != _VERSION:
            raise DatasetFileError(
                f"{path}: header {meta!r}; expected magic {_MAGIC!r} version {_VERSION}"
            )
        try:
            return cls(**arrays)
        except ValueError as e:
            raise DatasetFileError(f"{path}: inconsistent arrays: {e}") from e

    def _arrays(self) -> dict[str, np.ndarray]:
        return {f: getattr(self, f) for f in _FIELDS}

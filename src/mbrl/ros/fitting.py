"""What the model_fitter node does off the ROS thread: episodes -> fitted models -> checkpoints.

ROS-free on purpose (no rclpy import), so the fit and the checkpoint store are testable alone:
`fit_models` runs the agent layer's learner (mbrl.agents: the same object `mbrl experiment`
uses; warm-started from its previous fit) and the time-varying linear-Gaussian local models
with a GMM prior (Levine & Abbeel 2014, sec. 3.1);
`CheckpointStore` writes versioned checkpoints atomically (temp file, fsync, rename, fsync of
the directory) and a manifest naming the latest; `release_free_heap` returns a fit's freed
memory to the OS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import datetime
import functools
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mbrl.agents.arm import ArmModel
from mbrl.agents.episodes import task_trajectories
from mbrl.agents.mpc import pending_in_obs
from mbrl.agents.registry import increment_base, load_artifact
from mbrl.data.dataset import TransitionDataset
from mbrl.data.episode_transitions import equal_length_trajectories
from mbrl.data.episodes import Episode
from mbrl.models.base import ModelFileError
from mbrl.models.gmm_prior import GMMPrior
from mbrl.models.local_lg import TimeVaryingLinearGaussian
from mbrl.ros.node_configs import MODEL_KINDS, LocalModelSettings

MANIFEST = "latest.json"
_CHECKPOINT = re.compile(rf"({'|'.join(MODEL_KINDS)})_v(\d+)\.npz$")


@dataclasses.dataclass
class FitResult:
    """Models of one version and their metrics (JSON-ready scalars)."""

    models: dict[str, Any]
    metrics: dict[str, Any]


def fit_models(
    episodes: Sequence[Episode],
    arm: ArmModel,
    learner: Any,
    local: LocalModelSettings,
    version: int,
    *,
    max_gap: float = 3.0,
    seed: int = 0,
    phase: Callable[[str], None] = lambda name: None,
) -> FitResult:
    """Fit the agent's learner (warm-started: it keeps its model between calls) and the
    local models on all `episodes`.

    The episodes become task trajectories exactly as the loop driver sees them
    (mbrl.agents.episodes), with the learner's action convention.
    Args:
        phase: called with "dataset", "learner", "local_lg" as the fit proceeds.
    Returns:
        models: the learner's artifacts by kind (learner.artifacts(), e.g. "ensemble" or
        "policy" and its ensemble), plus "local_lg" if fitted; and metrics. A local-model
        failure is reported in metrics["local_lg_error"], never raised.
    Raises:
        ValueError when the episodes hold no transition.
    """
    phase("dataset")
    base = increment_base(learner.params)
    trajectories = task_trajectories(
        episodes, learner.task, arm, base, max_gap, pending_in_obs(learner.params)
    )
    dataset = learner.dataset(trajectories)  # raises ValueError without transitions
    periods = [np.median(np.diff(e.command_stamps)) for e in episodes if len(e.command_stamps) > 1]
    metrics: dict[str, Any] = {
        "num_episodes": len(episodes),
        "num_trajectories": len(trajectories),
        "num_transitions": len(dataset),
        "control_period_s": float(np.median(periods)) if periods else None,
    }
    phase("learner")
    report = learner.fit(trajectories)
    metrics["learner_fit_seconds"] = float(report.seconds)
    models: dict[str, Any] = dict(learner.artifacts())
    ensemble = models.get("ensemble")
    if ensemble is not None and "holdout_mse" in report.extra:
        member_mse = np.asarray(report.extra["holdout_mse"])
        metrics.update(
            ensemble_epochs=int(report.extra["epochs"]),
            ensemble_train_nll=float(report.train_loss[-1]) if report.train_loss else None,
            ensemble_holdout_mse=float(member_mse[ensemble.elites].mean()),
            ensemble_fit_seconds=float(report.seconds),
        )
    metrics.update({k: float(v) for k, v in report.extra.items()
                    if isinstance(v, float) and k not in metrics})  # fmt: skip
    if local.enabled:
        phase("local_lg")
        try:
            local_model, extra = _fit_local(dataset, local, np.random.default_rng([seed, version]))
            models["local_lg"] = local_model
            metrics.update(extra)
        except (ValueError, np.linalg.LinAlgError) as exc:
            metrics["local_lg_error"] = str(exc)
    return FitResult(models, metrics)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to trim
        return None


def release_free_heap() -> bool:
    """Hand the C heap's free pages back to the OS (glibc `malloc_trim(0)`); False where the
    C library has no such call.

    Why after every fit: a fit allocates tensors whose size grows with the data; once a large
    block has been freed glibc raises its mmap threshold, so later ones come from the heap,
    and the heap keeps the freed pages. Measured without ROS (a fitter's loop of refits on
    a growing episode dict, bench/node_memory.py fitter): RSS grew ~0.6 MB per episode while the
    memory in use grew ~20 kB (the episodes); with this call after each fit, ~0.1 MB.
    Costs a few ms.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def _fit_local(
    dataset: TransitionDataset, settings: LocalModelSettings, rng: np.random.Generator
) -> tuple[TimeVaryingLinearGaussian, dict[str, Any]]:
    trajectories = equal_length_trajectories(dataset, settings.min_length)
    if trajectories is None:
        raise ValueError(f"local models need >= 2 trajectories of >= {settings.min_length} ticks")
    X, U = trajectories
    z = np.hstack([dataset.obs, dataset.act, dataset.next_obs])  # all data feeds the prior
    prior = GMMPrior(settings.gmm_components).fit(z, rng)
    local = TimeVaryingLinearGaussian(dataset.dx, dataset.du, U.shape[1])
    report = local.fit_trajectories(X, U, prior)
    return local, {
        "local_lg_T": int(U.shape[1]),
        "local_lg_trajectories": int(X.shape[0]),
        "local_lg_fit_seconds": float(report.seconds),
    }


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: the directory entry itself must reach the disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointStore:
    """Versioned model files <directory>/<kind>_v<version:04d>.npz plus latest.json.

    Every file is written to a temporary name, fsynced and renamed, so a crash leaves either
    the old or the new file, never a torn one; the manifest is renamed last, so it only
    ever names complete checkpoints.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, kind: str, version: int) -> Path:
        return self.directory / f"{kind}_v{version:04d}.npz"

    def versions(self) -> list[int]:
        """Versions of every checkpoint file present (sorted, unique)."""
        found = {
            int(m.group(2)) for p in self.directory.iterdir() if (m := _CHECKPOINT.match(p.name))
        }
        return sorted(found)

    def next_version(self) -> int:
        """One more than any version on disk, so versions never repeat across restarts."""
        return max(self.versions(), default=0) + 1

    def save(self, version: int, result: FitResult, extra: dict[str, Any]) -> dict[str, Any]:
        """Write the models of `version` and then the manifest; returns the manifest."""
        files = {}
        for kind, model in result.models.items():
            path = self.path(kind, version)
            model.save(path)  # mbrl.models.io: temp file, fsync, rename
            files[kind] = path.name
        manifest = {
            "version": version,
            "files": files,
            "metrics": result.metrics,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            **extra,
        }
        tmp = self.directory / (MANIFEST + ".tmp")
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=1, default=_json_default)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / MANIFEST)
        _fsync_dir(self.directory)
        return manifest

    def latest(self) -> dict[str, Any] | None:
        """The manifest, or None if no model was saved yet.

        Raises:
            ModelFileError naming latest.json or a checkpoint it lists that is missing.
        """
        path = self.directory / MANIFEST
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text())
            version, files = int(manifest["version"]), dict(manifest["files"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelFileError(f"{path}: unreadable checkpoint manifest ({exc})") from exc
        for name in files.values():
            if not (self.directory / name).is_file():
                raise ModelFileError(
                    f"{path}: lists {name} for version {version}, which is missing"
                )
        return manifest


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def load_checkpoint(store: CheckpointStore, manifest: dict[str, Any], kind: str) -> Any:
    """The `kind` model of a manifest's version; ModelFileError names a bad file."""
    return load_artifact(kind, store.directory / manifest["files"][kind])

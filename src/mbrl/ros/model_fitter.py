"""Node `model_fitter`: fits dynamics models from /mbrl/episodes in a worker thread and
publishes each version on /mbrl/model (transient-local), checkpointed atomically on its own disk.

Fits start on new data or on `~/fit`; while a fit runs the node keeps taking episodes,
answering `~/fit` (a request then queues one more fit) and reporting on /diagnostics.
A corrupt episode message is rejected with an error naming it; the node keeps what it had.
Interface reference: docs/ros_interface.md.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from pathlib import Path

import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_msgs.msg import String, UInt8MultiArray
from std_srvs.srv import Trigger

from mbrl.agents import registry as agents
from mbrl.agents.arm import ArmModel
from mbrl.agents.episodes import task_trajectories
from mbrl.data.episodes import Episode, check_episode_dir, read_episode
from mbrl.models.base import ModelFileError
from mbrl.ros import status as mbrl_status
from mbrl.ros import topics
from mbrl.ros.fitting import CheckpointStore, fit_models, load_checkpoint, release_free_heap
from mbrl.ros.node_configs import ModelFitterConfig
from mbrl.ros.node_main import run_node
from mbrl.ros.params import (
    declare_config_parameters,
    read_config_parameters,
    write_effective_parameters,
)
from mbrl.ros.status import FitterStatus
from mbrl.ros.transport import (
    DIAGNOSTICS_TOPIC,
    EPISODES_QOS,
    EPISODES_TOPIC,
    MODEL_QOS,
    MODEL_TOPIC,
    TransportError,
    decode_episode_msg,
    diagnostics_msg,
    encode_model_msg,
)


def _same_number(text: str, value: float) -> bool:
    try:
        return abs(float(text) - float(value)) <= 1e-9 * max(1.0, abs(float(value)))
    except ValueError:
        return False


class ModelFitter(Node):
    """Node `model_fitter`. Callbacks run on one executor thread; fits on a worker thread.

    `_lock` guards what both touch: the episode list, the fit flags and the status.
    """

    def __init__(self, **node_kwargs) -> None:
        super().__init__("model_fitter", **node_kwargs)
        declare_config_parameters(self, ModelFitterConfig)
        self.config: ModelFitterConfig = read_config_parameters(self, ModelFitterConfig)
        cfg = self.config
        torch.set_num_threads(cfg.torch_threads)
        self.arm = ArmModel.from_config(cfg.arm)
        self.params = cfg.agent.preset()
        # The agent layer's learner: the object `mbrl experiment` fits, here on a worker
        # thread; it keeps its model between fits (warm start).
        algo, task = cfg.agent.algo, cfg.agent.task
        self.learner = agents.make_learner(algo, task, self.arm, self.params, cfg.seed)
        self.action_base = agents.increment_base(self.params)
        self.layout = agents.artifact_layout(algo, task, self.arm, self.params)
        # what goes on /mbrl/model: the agent's artifact unless the parameters say otherwise
        self.publish_kind = cfg.publish_kind or agents.spec(algo).artifact
        root = Path(cfg.data_dir).resolve()
        self.episodes_dir = root / "episodes"
        self.episodes_dir.mkdir(parents=True, exist_ok=True)
        self.store = CheckpointStore(root / "models")
        write_effective_parameters(root, cfg, agent_preset=self.params)
        self._lock = threading.Lock()
        self._episodes: dict[str, Episode] = {}  # sha256 of the file -> episode
        self._rejected = 0
        self._fitting = False
        self._pending = False
        self._phase = "idle"
        self._fit_start = 0.0
        self._version = 0
        self._metrics: dict = {}
        self._fitted_on: set[str] = set()
        self._last_error = ""
        self._failed_fits = 0
        self._models: dict = {}  # the latest fit's artifacts by kind
        self._worker: threading.Thread | None = None
        self._closing = False

        group = MutuallyExclusiveCallbackGroup()
        self._model_pub = self.create_publisher(UInt8MultiArray, MODEL_TOPIC, MODEL_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self._status_pub = self.create_publisher(String, topics.STATUS, topics.STATUS_QOS)
        self._load_own_files()
        self.create_subscription(
            UInt8MultiArray, EPISODES_TOPIC, self._on_episode, EPISODES_QOS, callback_group=group
        )
        self.create_service(Trigger, "~/fit", self._on_fit, callback_group=group)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(cfg.diagnostics_period, self._report, callback_group=group, clock=steady)
        self.get_logger().info(
            f"learner {cfg.agent.algo}/{cfg.agent.task} on {list(self.arm.joint_names)} in "
            f"{root}; "
            f"{len(self._episodes)} episodes on disk, latest model version {self._version}"
        )
        if cfg.fit_on_new_data and set(self._episodes) - self._fitted_on:
            self._request_fit("episodes on disk newer than the latest model")

    # -- own files ------------------------------------------------------------------------
    def _load_own_files(self) -> None:
        # A corrupt file moved aside, one cut short repaired (never a reason not to start).
        for line in check_episode_dir(self.episodes_dir):
            if "corrupt" in line:
                self._error(line)
            else:
                self.get_logger().warning(line)
        for path in sorted(self.episodes_dir.glob("episode_*.mcap")):
            try:
                self._add_episode(path, hashlib.sha256(path.read_bytes()).hexdigest())
            except Exception as exc:  # noqa: BLE001 - any bad file: named, skipped
                self._error(f"ignoring own episode file {path}: {exc}")
        try:
            manifest = self.store.latest()
            if manifest is not None:
                self._version = int(manifest["version"])
                self._metrics = dict(manifest.get("metrics", {}))
                self._fitted_on = set(manifest.get("episodes", []))
                if manifest.get("layout") == self.layout:  # else a fresh learner: other x, u
                    self.learner.restore({
                        kind: load_checkpoint(self.store, manifest, kind)
                        for kind in self.learner.artifacts() if kind in manifest["files"]
                    })  # fmt: skip
                else:
                    self.get_logger().warning(
                        f"checkpoint v{manifest['version']} has layout {manifest.get('layout')}"
                        f"; this fitter's is {self.layout}: starting from a fresh model"
                    )
                    self._fitted_on = set()  # fitted for other x, u: refit
                    manifest = None  # never republished under this fitter's layout
                if self.config.republish_on_start and manifest is not None:
                    self._publish(self._version, manifest)
        except (ModelFileError, KeyError, ValueError) as exc:
            self._error(f"starting without a model: {exc}")
        self._version = max(self._version, self.store.next_version() - 1)

    def _add_episode(self, path: Path, sha: str) -> Episode:
        """Read and check an episode file; raises EpisodeFileError/ValueError naming it."""
        episode = read_episode(path)
        arm, task = self.arm, self.config.agent.task
        # Layout facts the recorder wrote (files of older collectors lack them): an episode
        # of another increment scale or control rate means other u and another step.
        own = {"max_increment": arm.max_increment, "control_rate_hz": arm.config.control_rate_hz}
        for key, mine in own.items():
            theirs = episode.metadata.get(key)
            if theirs is not None and not _same_number(theirs, mine):
                raise ValueError(
                    f"{path.name} was recorded with {key} {theirs}; this fitter's arm has {mine}"
                )
        if not task_trajectories([episode], task, arm, self.action_base, self.config.max_gap):
            self.get_logger().warning(f"{path.name} holds no usable transition; kept anyway")
        with self._lock:
            self._episodes[sha] = episode
        return episode

    # -- episodes ---------------------------------------------------------------------------
    def _on_episode(self, msg: UInt8MultiArray) -> None:
        try:
            payload = decode_episode_msg(msg)
        except TransportError as exc:
            self._reject(f"rejected {exc}")
            return
        if payload.sha256 in self._episodes:
            return  # a re-publication (collector restart) of what we have
        name = f"episode_{payload.episode_id:06d}_{payload.sha256[:12]}.mcap"
        path = self.episodes_dir / name
        tmp = path.with_name(name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(payload.data)
                f.flush()
                os.fsync(f.fileno())
            read_episode(tmp)  # parsed before it is committed into place
            os.replace(tmp, path)
            episode = self._add_episode(path, payload.sha256)
        except Exception as exc:  # noqa: BLE001 - EpisodeFileError, OSError (disk full), ...
            tmp.unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            self._reject(f"rejected {EPISODES_TOPIC} episode {payload.episode_id}: {exc}")
            return
        n = len(self._episodes)
        self._publish_status()
        self.get_logger().info(
            f"episode {payload.episode_id} received: {len(episode.command_stamps)} commands"
            f"{'' if payload.complete else ' (incomplete recording)'}; {n} episodes in total"
        )
        if self.config.fit_on_new_data and n >= self.config.min_episodes:
            self._request_fit(f"new episode {payload.episode_id}")

    def _reject(self, text: str) -> None:
        with self._lock:
            self._rejected += 1
        self._error(f"{text}; keeping the {len(self._episodes)} episodes we have")

    # -- fitting --------------------------------------------------------------------------
    def _on_fit(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if not self._episodes:
            response.success, response.message = False, "no episodes received yet"
            return response
        queued = self._request_fit("~/fit request")
        response.success = True
        response.message = (
            f"fit queued behind the running fit of version {self._version + 1}"
            if queued
            else f"fit of version {self._version + 1} started on {len(self._episodes)} episodes"
        )
        return response

    def _request_fit(self, reason: str) -> bool:
        """Start a fit now, or queue one if a fit is running. Returns True when queued."""
        with self._lock:
            if self._fitting:
                self._pending = True
                return True
            self._fitting = True
            self._fit_start = time.monotonic()
        self.get_logger().info(f"fit of version {self._version + 1} started ({reason})")
        self._worker = threading.Thread(target=self._fit_loop, name="fit", daemon=True)
        self._worker.start()
        return False

    def _set_phase(self, phase: str) -> None:
        with self._lock:
            self._phase = phase

    def _fit_loop(self) -> None:
        """Worker thread: fit, save, publish; repeat while fits were queued meanwhile."""
        while not self._closing:
            with self._lock:
                episodes = dict(self._episodes)
                self._fit_start = time.monotonic()
            version = self._version + 1
            try:
                result = fit_models(
                    list(episodes.values()), self.arm, self.learner,
                    self.config.local_settings(), version, max_gap=self.config.max_gap,
                    seed=self.config.seed, phase=self._set_phase,
                )  # fmt: skip
                self._set_phase("saving")
                extra = {"episodes": sorted(episodes), "layout": self.layout}
                manifest = self.store.save(version, result, extra)
                with self._lock:
                    self._version, self._metrics = version, result.metrics
                    self._models = result.models
                    self._fitted_on = set(episodes)
                self._publish(version, manifest)
                self._publish_status()
            except Exception as exc:  # noqa: BLE001 - a failed fit must not kill the node
                self._error(f"fit of version {version} failed: {type(exc).__name__}: {exc}")
                with self._lock:
                    self._failed_fits += 1
            # A fit's freed tensors stay in glibc's heap: RSS grew ~0.6 MB a refit without this.
            release_free_heap()
            with self._lock:
                self._phase = "idle"
                done = not self._pending
                if done:
                    self._fitting = False
                self._pending = False
            if done:
                self._publish_status()
                return

    def _publish(self, version: int, manifest: dict) -> None:
        kind = self.publish_kind
        if kind not in manifest["files"]:
            self._error(f"version {version} has no {kind} model to publish: {manifest['metrics']}")
            return
        data = (self.store.directory / manifest["files"][kind]).read_bytes()
        metrics = manifest["metrics"]
        artifact = self._models.get(kind)
        if artifact is None:  # republished from a checkpoint
            artifact = load_checkpoint(self.store, manifest, kind)
        # The layout the checkpoint was fitted with, never this fitter's current one: a
        # restarted fitter must not relabel an old model.
        layout = manifest.get("layout")
        if layout != self.layout:
            self._error(f"version {version} not published: its layout {layout} is not this "
                        f"fitter's {self.layout}")  # fmt: skip
            return
        msg = encode_model_msg(
            data, version, kind, artifact.dx, artifact.du, metrics, manifest.get("created"),
            layout,
        )  # fmt: skip
        self._model_pub.publish(msg)
        self.get_logger().info(
            f"model version {version} ({kind}, {len(data)} bytes) published on {MODEL_TOPIC}: "
            f"holdout_mse={metrics.get('ensemble_holdout_mse')}, "
            f"{metrics.get('num_transitions')} transitions"
        )

    # -- reporting ------------------------------------------------------------------------
    def _error(self, text: str) -> None:
        with self._lock:
            self._last_error = text
        self.get_logger().error(text)

    def _publish_status(self) -> None:
        """The typed status the experiment waits on (latched; on every change and timer)."""
        with self._lock:
            status = FitterStatus(
                len(self._episodes), self._version, self._fitting, self._last_error,
                self._failed_fits,
            )  # fmt: skip
        self._status_pub.publish(mbrl_status.encode("model_fitter", status))

    def _report(self) -> None:
        self._publish_status()
        with self._lock:
            values = {
                "state": "fitting" if self._fitting else "idle",
                "phase": self._phase,
                "fit_elapsed_s": time.monotonic() - self._fit_start if self._fitting else 0.0,
                "fit_queued": self._pending,
                "model_version": self._version,
                "episodes": len(self._episodes),
                "rejected_episodes": self._rejected,
                "last_error": self._last_error,
            }
            values.update({f"metric.{k}": v for k, v in self._metrics.items()})
        level = DiagnosticStatus.WARN if self._rejected or self._last_error else DiagnosticStatus.OK
        message = f"{values['state']}; model version {self._version}"
        stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(diagnostics_msg(stamp, "mbrl/model_fitter", level, message, values))

    def close(self) -> None:
        """Let a running fit finish its current step (it saves atomically) and destroy."""
        self._closing = True
        if self._worker is not None:
            self._worker.join(timeout=5.0)
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point (`model_fitter` / `python -m mbrl.ros.model_fitter --ros-args ...`)."""
    return run_node("model_fitter", ModelFitter, args)


if __name__ == "__main__":
    sys.exit(main())

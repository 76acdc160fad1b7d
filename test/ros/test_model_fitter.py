"""The model fitter: ROS-free fit and checkpoint store, then collector -> fitter -> a late
subscriber in another process and directory, over real DDS."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from ros_helpers import Output
from std_msgs.msg import String, UInt8MultiArray
from std_srvs.srv import Trigger
from test_collector import JOINTS, Driver

from mbrl.agents import registry as agents
from mbrl.agents.arm import ArmModel
from mbrl.agents.config import AgentConfig
from mbrl.agents.mpc import MPCLearner
from mbrl.agents.presets import preset
from mbrl.config import ArmConfig, ConfigError
from mbrl.data.episodes import EpisodeWriter, read_episode
from mbrl.models.base import ModelFileError
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.ros import status as mbrl_status
from mbrl.ros.fitting import (
    CheckpointStore,
    LocalModelSettings,
    fit_models,
)
from mbrl.ros.graph import get_nodes
from mbrl.ros.model_fitter import ModelFitterConfig
from mbrl.ros.runner import GraphRunner
from mbrl.ros.topics import STATUS_QOS
from mbrl.ros.transport import (
    EPISODES_QOS,
    MODEL_QOS,
    decode_model_msg,
    encode_episode_msg,
)

torch.set_num_threads(1)
pytestmark = pytest.mark.ros


def _servo(rng: np.random.Generator, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """A first-order servo q' = q + 0.5 (c - q), commands a random walk of increments."""
    q = np.zeros((steps + 1, 5))
    q[0] = rng.uniform(-0.5, 0.5, 5)
    c = q[0] + np.cumsum(rng.uniform(-0.1, 0.1, (steps, 5)), axis=0)
    for k in range(steps):
        q[k + 1] = q[k] + 0.5 * (c[k] - q[k])
    return q, c


def _episode_file(path, rng, steps=25):
    q, c = _servo(rng, steps)
    with EpisodeWriter(path, JOINTS, {"episode_id": "0"}) as w:
        for k in range(steps + 1):
            w.write_joint_state(0.05 * k, q[k], np.zeros(5))
            if k < steps:
                w.write_command(0.05 * k + 0.001, c[k])
    return read_episode(path)


# A small ensemble; actions relative to the measured q (the push convention), under which
# the servo below is linear in (q, u).
SMALL = {"ensemble_size": 2, "num_elites": 1, "hidden": [32], "fit_max_epochs": 30,
         "env": {"increment_from": "measured"}}  # fmt: skip
LOCAL = LocalModelSettings(min_length=5, gmm_components=2)


def test_fit_models_and_checkpoints_without_ros(tmp_path) -> None:
    rng = np.random.default_rng(0)
    episodes = [_episode_file(tmp_path / f"e{i}.mcap", rng) for i in range(4)]
    arm = ArmModel.from_config(ArmConfig())
    learner = MPCLearner("reach", 5, preset("mpc", "reach", SMALL), seed=0)
    result = fit_models(episodes, arm, learner, LOCAL, version=1)
    assert set(result.models) == {"ensemble", "local_lg"}
    assert result.metrics["num_transitions"] == 100
    assert result.metrics["local_lg_T"] == 25
    assert result.metrics["control_period_s"] == pytest.approx(0.05)
    # the local models recover the servo: q' = 0.5 q + 0.5 c = q + 0.5 * 0.1 * u (relative u)
    local = result.models["local_lg"]
    np.testing.assert_allclose(local.A[10][:5, :5], 1.0 * np.eye(5), atol=0.05)  # the q block
    np.testing.assert_allclose(local.B[10][:5], 0.05 * np.eye(5), atol=0.01)

    store = CheckpointStore(tmp_path / "models")
    assert store.latest() is None and store.next_version() == 1
    manifest = store.save(1, result, {"episodes": ["abc"]})
    assert manifest["files"] == {"ensemble": "ensemble_v0001.npz", "local_lg": "local_lg_v0001.npz"}
    assert store.latest()["version"] == 1 and store.next_version() == 2
    assert sorted(p.name for p in store.directory.iterdir()) == [
        "ensemble_v0001.npz",
        "latest.json",
        "local_lg_v0001.npz",
    ]  # fmt: skip  (no temporary file left behind)
    ProbabilisticEnsemble.load(store.path("ensemble", 1))

    # too few trajectories for local models: reported, the ensemble still fitted
    weights = result.models["ensemble"].net.weights[0].detach().clone()
    one = fit_models(episodes[:1], arm, learner, LOCAL, version=2)
    assert set(one.models) == {"ensemble"} and "2 trajectories" in one.metrics["local_lg_error"]
    assert one.models["ensemble"] is result.models["ensemble"]  # warm start: the same model
    assert not torch.equal(weights, one.models["ensemble"].net.weights[0].detach())

    (store.directory / "latest.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="latest.json: unreadable checkpoint manifest"):
        store.latest()
    assert store.next_version() == 2  # versions never repeat, whatever the manifest says


def _array_bytes(obj, seen: set[int] | None = None) -> int:
    """Bytes of every ndarray and tensor reachable from `obj` through attributes and containers."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, torch.Tensor):
        return obj.untyped_storage().nbytes()
    if isinstance(obj, dict):
        return sum(_array_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple, set)):
        return sum(_array_bytes(v, seen) for v in obj)
    if isinstance(obj, torch.nn.Module):
        return sum(_array_bytes(t, seen) for t in obj.state_dict().values())
    if hasattr(obj, "__dict__") and type(obj).__module__.startswith("mbrl"):
        return _array_bytes(vars(obj), seen)
    return 0


def test_refits_retain_per_episode_only_the_episode(tmp_path) -> None:
    """The soak's fitter grew 1.2 MB per episode (docs/real_arm.md "Soak"): nothing the
    learner keeps between refits may grow with the data (the episodes themselves are the
    node's; a 100-tick episode holds ~14 kB of arrays)."""
    rng = np.random.default_rng(0)
    episodes = [_episode_file(tmp_path / f"e{i}.mcap", rng, steps=100) for i in range(6)]
    assert max(_array_bytes(e) for e in episodes) < 20_000
    arm = ArmModel.from_config(ArmConfig())
    learner = MPCLearner("reach", 5, preset("mpc", "reach", {**SMALL, "fit_max_epochs": 2}), 0)
    off = LocalModelSettings(enabled=False)
    sizes = []
    for n in (2, 4, 6):
        fit_models(episodes[:n], arm, learner, off, version=n)
        sizes.append(_array_bytes(learner))
    assert sizes[0] == sizes[1] == sizes[2], sizes


def test_release_free_heap_returns_freed_heap_pages() -> None:
    """What the fitter calls after each fit: freed blocks inside glibc's heap (where a fit's
    tensors land once the mmap threshold has risen) go back to the OS. In a subprocess, so
    its heap is its own."""
    script = textwrap.dedent("""
        import ctypes, ctypes.util, json, os, sys
        from mbrl.ros.fitting import release_free_heap
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD: 1 MB blocks from the heap, as after a fit
        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        blocks = [libc.malloc(1 << 20) for _ in range(64)]
        for b in blocks:
            ctypes.memset(b, 1, 1 << 20)
        pin = libc.malloc(1 << 20)  # from the top, above the blocks: free() cannot shrink it
        ctypes.memset(pin, 1, 1 << 20)
        for b in blocks:
            libc.free(b)
        before = rss()
        trimmed = release_free_heap()
        print(json.dumps({"trimmed": trimmed, "released": before - rss()}))
    """)
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's malloc_trim")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["trimmed"] and result["released"] > 48 << 20, result


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ConfigError, match="publish_kind 'gp'"):
        ModelFitterConfig(publish_kind="gp")
    with pytest.raises(ConfigError, match="unknown parameter 'hiden'"):
        ModelFitterConfig(agent=AgentConfig(params="{hiden: [8]}"))
    with pytest.raises(ConfigError, match="fit_local_lg is false"):
        ModelFitterConfig(publish_kind="local_lg", fit_local_lg=False)


LATE_SUBSCRIBER = textwrap.dedent(
    """
    import json, sys, numpy as np, rclpy, torch
    from std_msgs.msg import String, UInt8MultiArray
    from mbrl.ros.transport import MODEL_QOS, decode_model_msg, load_model_bytes
    torch.set_num_threads(1)
    rclpy.init()
    node = rclpy.create_node("late_controller")
    got = []
    node.create_subscription(UInt8MultiArray, "/mbrl/model", got.append, MODEL_QOS)
    for _ in range(600):
        if got:
            break
        rclpy.spin_once(node, timeout_sec=0.05)
    payload = decode_model_msg(got[-1])
    model = load_model_bytes(payload, "received")  # relative: this process's own directory
    x = np.full((1, payload.dx), 0.1, np.float32)
    u = np.full((1, payload.du), 0.5, np.float32)
    mean, _ = model.predict(x, u)
    print(json.dumps({"version": payload.version, "sha256": payload.sha256,
                      "layout": payload.layout, "mean": mean.tolist()}))
    """
)


class FitterClient(Driver):
    """The Driver plus the fitter's side: /mbrl/model, its diagnostics and ~/fit."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.models: list[UInt8MultiArray] = []
        self.fitter_diag: list[dict] = []
        self.node.create_subscription(UInt8MultiArray, "/mbrl/model", self.models.append, MODEL_QOS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_fitter, 50)
        self.fit = self.node.create_client(Trigger, "/model_fitter/fit")
        self.raw_episodes = self.node.create_publisher(
            UInt8MultiArray, "/mbrl/episodes", EPISODES_QOS
        )

    def _on_fitter(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "mbrl/model_fitter":
                self.fitter_diag.append({kv.key: kv.value for kv in status.values})

    def call_fit(self) -> Trigger.Response:
        future = self.fit.call_async(Trigger.Request())
        assert self.spin_until(future.done), "~/fit did not answer"
        return future.result()

    def version(self) -> int:
        return decode_model_msg(self.models[-1]).version if self.models else 0


def _fitter_params(tmp_path) -> dict:
    # sized so a fit lasts a few seconds (no early stop): long enough to see it run
    agent = ("{ensemble_size: 2, num_elites: 1, hidden: [32, 32], fit_max_epochs: 200, "
             "fit_patience: 200, fit_batch_size: 16}")  # fmt: skip
    return {
        "data_dir": str(tmp_path / "fitter"), "agent.params": agent, "min_episodes": 3,
        "local_lg_min_length": 5, "gmm_components": 2, "diagnostics_period": 0.2,
    }  # fmt: skip


def test_collector_to_fitter_to_late_subscriber(ros_context, tmp_path) -> None:
    output = Output()
    overrides = {
        "collector": {"data_dir": str(tmp_path / "collector"), "flush_period": 0.2},
        "model_fitter": _fitter_params(tmp_path),
    }
    runner = GraphRunner(
        get_nodes(["collector", "model_fitter"]), overrides=overrides, output=output
    ).start()
    client = FitterClient("test_fitter_client")
    try:
        client.wait_for_collector()
        assert client.spin_until(lambda: client.fit.service_is_ready(), 60), output.text()
        assert client.call_fit().message == "no episodes received yet"
        rng = np.random.default_rng(3)
        for episode_id in range(3):
            q, c = _servo(rng, 25)
            client.event("start", episode_id)
            assert client.spin_until(lambda: f"episode {episode_id} started" in output.text())
            client.ticks(q[:-1], c)
            client.ticks(q[-1:], c[-1:])  # the final state (and one more command)
            client.event("end", episode_id)
        # the fit runs on a worker thread: diagnostics keep coming and ~/fit answers
        assert client.spin_until(
            lambda: client.fitter_diag and client.fitter_diag[-1]["state"] == "fitting", 60
        ), output.text()
        response = client.call_fit()
        assert response.success and "queued behind the running fit of version 1" in response.message
        assert client.spin_until(lambda: client.version() >= 2, 120), output.text()
        fitting = [d for d in client.fitter_diag if d["state"] == "fitting"]
        assert len(fitting) >= 2 and any(d["phase"] == "learner" for d in fitting)
        last = client.fitter_diag[-1]
        # 75 ticks; a tick whose state reached the collector after its command (the test
        # publishes both back to back, unlike a controller) is dropped, never mis-paired
        assert last["episodes"] == "3" and 60 <= float(last["metric.num_transitions"]) <= 75

        models = tmp_path / "fitter" / "models"
        names = sorted(p.name for p in models.iterdir())
        assert names == [
            "ensemble_v0001.npz", "ensemble_v0002.npz", "latest.json",
            "local_lg_v0001.npz", "local_lg_v0002.npz",
        ]  # fmt: skip
        payload = decode_model_msg(client.models[-1])
        checkpoint = (models / "ensemble_v0002.npz").read_bytes()
        assert payload.sha256 == hashlib.sha256(checkpoint).hexdigest()
        # the agent's reach model: x = q (the loop driver's model state), u increments
        columns = agents.artifact_layout(
            "mpc", "reach", ArmModel.from_config(ArmConfig()), preset("mpc", "reach")
        )["columns"]
        assert payload.kind == "ensemble" and (payload.dx, payload.du) == (len(columns), 5)
        assert payload.layout["joint_names"] == list(JOINTS)
        assert payload.layout["task"] == "reach" and payload.layout["columns"] == columns
        assert payload.metrics["num_transitions"] == float(last["metric.num_transitions"])

        # a subscriber started after publication, in another process and directory
        late_dir = tmp_path / "controller"
        late_dir.mkdir()
        late = subprocess.run(
            [sys.executable, "-c", LATE_SUBSCRIBER], cwd=late_dir, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert late.returncode == 0, late.stderr
        got = json.loads(late.stdout.strip().splitlines()[-1])
        assert (got["version"], got["sha256"]) == (2, payload.sha256)
        ours = ProbabilisticEnsemble.load(models / "ensemble_v0002.npz")
        x, u = np.full((1, payload.dx), 0.1, np.float32), np.full((1, 5), 0.5, np.float32)
        np.testing.assert_allclose(got["mean"], ours.predict(x, u)[0], rtol=1e-6)
        assert not list(late_dir.glob("received/*"))  # loaded via a temp file, then removed

        # corrupt episodes are rejected by name; the fitter keeps its 3 episodes and fits on
        good = encode_episode_msg(b"\x89MCAP0\r\n" + b"x" * 100, 98, 1, True)  # hash ok
        bad = encode_episode_msg(bytes(100), 99, 1, True)
        bad.data[0] ^= 1
        client.raw_episodes.publish(good)
        client.raw_episodes.publish(bad)
        assert client.spin_until(lambda: client.fitter_diag[-1]["rejected_episodes"] == "2"), (
            output.text()
        )
        text = output.text()
        assert "rejected /mbrl/episodes episode 99: sha256 mismatch" in text
        assert "rejected /mbrl/episodes episode 98:" in text and "keeping the 3 episodes" in text
        response = client.call_fit()
        assert response.success and "on 3 episodes" in response.message, response.message
        assert client.spin_until(lambda: client.version() >= 3, 120), output.text()
        runner.check()
    finally:
        runner.shutdown()

    # a restarted fitter serves its latest checkpoint at once and continues the versions
    client.models.clear()
    runner = GraphRunner(
        get_nodes(["model_fitter"]), overrides={"model_fitter": _fitter_params(tmp_path)},
        output=output,
    ).start()  # fmt: skip
    try:
        assert client.spin_until(lambda: bool(client.models), 60), output.text()
        assert client.version() == 3
        # logged just after the republication: wait for the line to be forwarded
        assert client.spin_until(
            lambda: "3 episodes on disk, latest model version 3" in output.text(), 30
        ), output.text()
        assert "starting without a model" not in output.text()
        runner.check()
    finally:
        client.node.destroy_node()
        runner.shutdown()


def test_a_failed_fit_is_counted_in_the_status_and_the_node_keeps_its_data(
    ros_context, tmp_path
) -> None:
    """An episode without a usable transition is kept, but a fit on it alone fails: the
    fitter says so on /mbrl/status (failed_fits, last_error), which is what lets the
    experiment stop waiting for a model that will not come (experiment_core.awaited_model)."""
    output = Output()
    params = {**_fitter_params(tmp_path), "min_episodes": 1, "fit_on_new_data": False}
    runner = GraphRunner(
        get_nodes(["model_fitter"]), overrides={"model_fitter": params}, output=output
    ).start()
    client = FitterClient("test_failed_fit")
    statuses: list = []

    def on_status(msg: String) -> None:
        kind, status = mbrl_status.decode(msg)
        if kind == "model_fitter":
            statuses.append(status)

    client.node.create_subscription(String, "/mbrl/status", on_status, STATUS_QOS)
    try:
        assert client.spin_until(lambda: client.fit.service_is_ready(), 60), output.text()
        path = tmp_path / "one_tick.mcap"
        with EpisodeWriter(path, JOINTS, {"episode_id": "0"}) as w:  # one command: no x'
            w.write_joint_state(0.0, np.zeros(5), np.zeros(5))
            w.write_command(0.001, np.full(5, 0.01))
        client.raw_episodes.publish(encode_episode_msg(path.read_bytes(), 0, 2, True))
        assert client.spin_until(lambda: statuses and statuses[-1].episodes == 1, 30), output.text()
        assert statuses[-1].failed_fits == 0
        assert client.call_fit().success
        assert client.spin_until(
            lambda: statuses[-1].failed_fits == 1 and not statuses[-1].fitting, 60
        ), output.text()
        assert "no transitions" in statuses[-1].last_error
        assert statuses[-1].model_version == 0 and statuses[-1].episodes == 1
        assert len(list((tmp_path / "fitter" / "episodes").glob("episode_*.mcap"))) == 1
        runner.check()  # still running
    finally:
        client.node.destroy_node()
        runner.shutdown()

"""The collector, the fitter and the controller as real processes against crafted messages
and damaged files (issue 16, part 2): each starts although its directory holds a corrupt and
a cut episode (moved aside / repaired), and no crafted message ends it or is taken in."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from mcap.reader import SeekingReader
from ros_helpers import JOINTS, Output
from std_msgs.msg import String, UInt8MultiArray

from mbrl.agents import registry as agents
from mbrl.agents.arm import ArmModel
from mbrl.agents.presets import preset
from mbrl.config import ArmConfig
from mbrl.data.episodes import EpisodeWriter, read_episode
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.ros.graph import get_nodes
from mbrl.ros.runner import GraphRunner
from mbrl.ros.transport import (
    EPISODE_CONTROL_QOS,
    EPISODE_CONTROL_TOPIC,
    EPISODES_QOS,
    EPISODES_TOPIC,
    MODEL_QOS,
    MODEL_TOPIC,
    encode_episode_msg,
    encode_model_msg,
)

pytestmark = pytest.mark.ros
# the layout the controller expects: the agent layer's, whatever the reach model state is
LAYOUT = agents.artifact_layout("mpc", "reach", ArmModel.from_config(ArmConfig()),
                                preset("mpc", "reach"))  # fmt: skip
DX = len(LAYOUT["columns"])


def _cut_file(directory):
    """An episode file as kill -9 leaves it: flushed chunks, no summary, no footer."""
    path, scratch = directory / "episode_000001_cut.mcap", directory.parent / "scratch.mcap"
    with EpisodeWriter(scratch, JOINTS, {"episode_id": "1"}) as w:
        for t in range(40):
            w.write_joint_state(0.05 * t, np.full(5, 0.01 * t), np.zeros(5))
        w.flush()
        path.write_bytes(scratch.read_bytes())
    scratch.unlink()
    assert not read_episode(path).complete
    return path


def _seed_directory(directory):
    directory.mkdir(parents=True)
    (directory / "episode_000009_bad.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(range(256)) * 8)
    return _cut_file(directory)


def _with_header(msg, **fields):
    header = json.loads(msg.layout.dim[0].label)
    header.update(fields)
    msg.layout.dim[0].label = json.dumps(header)
    return msg


def test_nodes_start_on_damaged_files_and_survive_crafted_messages(ros_context, tmp_path):
    cut_c = _seed_directory(tmp_path / "collector" / "episodes")
    cut_f = _seed_directory(tmp_path / "fitter" / "episodes")
    overrides = {
        "collector": {"data_dir": str(tmp_path / "collector"), "diagnostics_period": 0.2},
        "model_fitter": {"data_dir": str(tmp_path / "fitter"), "diagnostics_period": 0.2},
        "mpc_controller": {"data_dir": str(tmp_path / "ctl"), "mode": "explore"},
    }
    output = Output()
    names = ["collector", "model_fitter", "mpc_controller"]
    runner = GraphRunner(get_nodes(names), overrides=overrides, output=output)
    runner.start()
    node = rclpy.create_node("hostile_nodes_client")
    diag: dict[str, dict] = {}

    def on_diag(msg: DiagnosticArray) -> None:
        for status in msg.status:
            diag[status.name] = {kv.key: kv.value for kv in status.values}

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
    control = node.create_publisher(String, EPISODE_CONTROL_TOPIC, EPISODE_CONTROL_QOS)
    episodes = node.create_publisher(UInt8MultiArray, EPISODES_TOPIC, EPISODES_QOS)
    models = node.create_publisher(UInt8MultiArray, MODEL_TOPIC, MODEL_QOS)

    def spin_until(predicate, timeout=40.0, what=""):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate():
            rclpy.spin_once(node, timeout_sec=0.05)
        runner.check()  # raises if a node died
        assert predicate(), f"timed out waiting for {what}; {diag}\n{output.text()[-3000:]}"

    try:
        # every node started: a corrupt file moved aside, a cut one repaired
        spin_until(
            lambda: (
                {"mbrl/collector", "mbrl/model_fitter", "mbrl/mpc_controller"} <= set(diag)
                and control.get_subscription_count() > 0
                and episodes.get_subscription_count() > 0
                and models.get_subscription_count() > 0
            ),
            what="all three nodes",
        )
        text = output.text()
        for d in ("collector", "fitter"):
            bad = tmp_path / d / "episodes" / "episode_000009_bad.mcap"
            assert f"corrupt episode file {bad} moved aside" in text
            assert not bad.exists() and bad.with_name(bad.name + ".corrupt").exists()
        for cut in (cut_c, cut_f):  # repaired: a third-party reader opens it (summary)
            with open(cut, "rb") as f:
                assert SeekingReader(f).get_summary() is not None
        # crafted episode events (the collector)
        for data in ['{"event": "start", "episode_id": Infinity}', "[" * 50_000,
                     '{"event": "start", "episode_id": 1e300}', "x" * 1_000_000]:  # fmt: skip
            control.publish(String(data=data))
        # crafted episodes (the fitter): an infinite id; garbage MCAP with a correct hash
        episodes.publish(_with_header(encode_episode_msg(b"\x89MCAP", 1, 1, True),
                                      episode_id=float("inf")))  # fmt: skip
        episodes.publish(encode_episode_msg(b"\x89MCAP0\r\n" + bytes(300), 5, 10, True))
        # a well-formed episode of another increment scale (layout facts, the fitter's side)
        other = tmp_path / "other.mcap"
        with EpisodeWriter(other, JOINTS, {"episode_id": "6", "max_increment": "0.05"}) as w:
            w.write_joint_state(0.0, np.zeros(5), np.zeros(5))
        episodes.publish(encode_episode_msg(other.read_bytes(), 6, 1, True))
        # crafted models (the controller): an infinite version, then NaN weights
        models.publish(_with_header(encode_model_msg(b"x", 1, "ensemble", DX, 5, layout=LAYOUT),
                                    version=float("inf")))  # fmt: skip
        spin_until(lambda: diag["mbrl/mpc_controller"].get("rejected_models") == "1",
                   what="the infinite version refused")  # fmt: skip
        model = ProbabilisticEnsemble(DX, 5, ensemble_size=2, hidden=(8,), seed=0)
        with torch_no_grad():
            next(iter(model.net.parameters())).data[0, 0, 0] = float("nan")
        path = tmp_path / "nan.npz"
        model.save(path)
        models.publish(encode_model_msg(path.read_bytes(), 2, "ensemble", DX, 5, layout=LAYOUT))
        spin_until(
            lambda: (
                diag["mbrl/mpc_controller"].get("rejected_models") == "2"
                and int(diag["mbrl/model_fitter"].get("rejected_episodes", 0)) >= 3
                and "ignored /mbrl/episode_control" in output.text()
            ),
            what="every crafted message refused",
        )
        assert "non-finite" in diag["mbrl/mpc_controller"]["last_reject"]
        assert diag["mbrl/mpc_controller"]["model_version"] == "0"
        assert not list((tmp_path / "fitter" / "episodes").glob("episode_000005*"))
        assert "was recorded with max_increment 0.05; this fitter's arm has 0.1" in output.text()
        text = output.text()
        assert 'ignored /mbrl/episode_control message \'{"event": "start", "episode_id": ' in text
        assert "rejected /mbrl/episodes episode inf: header field 'episode_id' = inf" in text
        assert max(len(line) for line in text.splitlines()) < 2000  # payloads truncated
        # still running: the controller ticks on (it has no joint states: it reports that)
        ticks = diag["mbrl/mpc_controller"]["ticks"]
        spin_until(lambda: diag["mbrl/mpc_controller"]["safety"] == "no_state", what="alive")
        assert ticks == diag["mbrl/mpc_controller"]["ticks"]
        runner.check()
    finally:
        node.destroy_node()
        runner.shutdown()


def torch_no_grad():
    import torch

    return torch.no_grad()

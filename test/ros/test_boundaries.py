"""Every node boundary total (issue 16, part 2): crafted message headers and model files are
refused with an error naming the field; an exception escaping a callback of a real rclpy node
is counted on /diagnostics, logged once per cause, and the node keeps running."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import String

from mbrl.models.base import ModelFileError
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.models.io import load_model_file, save_model_file
from mbrl.ros.boundary import CallbackGuard, guard_node
from mbrl.ros.transport import (
    TransportError,
    decode_episode_msg,
    decode_model_msg,
    encode_episode_msg,
    encode_model_msg,
    load_model_bytes,
    sha256_hex,
)

torch.set_num_threads(1)
CRAFTED = [float("inf"), float("-inf"), float("nan"), 1e300, -1, True, "7", None, [1], 2.5]


def _with_header(msg, **fields):
    header = json.loads(msg.layout.dim[0].label)
    header.update(fields)
    msg.layout.dim[0].label = json.dumps(header)  # (json writes Infinity / NaN as they are)
    return msg


@pytest.mark.parametrize("value", CRAFTED, ids=repr)
@pytest.mark.parametrize("field", ["episode_id", "num_messages"])
def test_crafted_episode_header_fields_are_refused_by_name(field, value) -> None:
    msg = _with_header(encode_episode_msg(b"data", 7, 3, True), **{field: value})
    with pytest.raises(TransportError, match=f"'{field}'"):
        decode_episode_msg(msg)


@pytest.mark.parametrize("value", CRAFTED, ids=repr)
@pytest.mark.parametrize("field", ["version", "dx", "du"])
def test_crafted_model_header_fields_are_refused_by_name(field, value) -> None:
    msg = _with_header(encode_model_msg(b"data", 2, "ensemble", 5, 5), **{field: value})
    with pytest.raises(TransportError, match=f"'{field}'"):
        decode_model_msg(msg)


def test_wrongly_typed_model_header_parts_are_refused() -> None:
    for field, value in [("layout", [1, 2]), ("layout", "joints"), ("metrics", 3), ("kind", 5)]:
        msg = _with_header(encode_model_msg(b"data", 2, "ensemble", 5, 5), **{field: value})
        with pytest.raises(TransportError, match=f"'{field}'"):
            decode_model_msg(msg)
    msg = _with_header(encode_episode_msg(b"d", 1, 1, True), complete="yes")
    with pytest.raises(TransportError, match="'complete'"):
        decode_episode_msg(msg)
    huge = encode_model_msg(b"data", 2, "ensemble", 5, 5)
    huge.layout.dim[0].label = "[" * 100_000  # a JSON bomb for the recursive parser
    with pytest.raises(TransportError, match="not JSON"):
        decode_model_msg(huge)


def _crafted_model(tmp_path, edit) -> bytes:
    """A valid ensemble file whose metadata/arrays `edit(meta, arrays)` changes."""
    model = ProbabilisticEnsemble(5, 5, ensemble_size=3, hidden=(8,), num_elites=2, seed=0)
    path = tmp_path / "m.npz"
    model.save(path)
    meta, arrays = load_model_file(path, "ProbabilisticEnsemble")
    edit(meta, arrays)
    save_model_file(path, "ProbabilisticEnsemble", meta, arrays)
    return path.read_bytes()


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m, a: a.__setitem__("elites", np.array([0, 99])), "elites"),
        (lambda m, a: a.__setitem__("elites", np.array([1, 1])), "elites"),
        (lambda m, a: a["weights.0"].__setitem__((0, 0, 0), np.nan), "non-finite"),
        (lambda m, a: a["stats.in_std"].__setitem__(0, np.inf), "non-finite"),
        (lambda m, a: m.clear(), "metadata"),
        (lambda m, a: m.__setitem__("hidden", [10**9]), "weights"),
    ],
    ids=["elite out of range", "elite twice", "NaN weight", "Inf stats", "no metadata", "huge"],
)
def test_crafted_model_files_are_refused(tmp_path, edit, match) -> None:
    data = _crafted_model(tmp_path, edit)
    payload = decode_model_msg(encode_model_msg(data, 4, "ensemble", 5, 5))
    with pytest.raises(ModelFileError, match=match):
        load_model_bytes(payload, tmp_path / "rx")
    assert sha256_hex(data) == payload.sha256  # (well-formed in transit: only the content lies)


def test_guard_counts_logs_once_per_cause_and_truncates() -> None:
    lines: list[str] = []
    clock = [0.0]
    guard = CallbackGuard(lines.append, now=lambda: clock[0])

    def bad(msg):
        raise OverflowError("x" * 10_000)

    wrapped = guard.wrap("subscription /t", bad)
    for _ in range(50):
        assert wrapped("m") is None
    assert guard.counts == {"subscription /t: OverflowError": 50}
    assert len(lines) == 1 and "keeps running" in lines[0] and len(lines[0]) < 600
    clock[0] = 11.0
    wrapped("m")
    assert len(lines) == 2 and "51 times" in lines[1]
    values = guard.values()
    assert (
        values["callback_errors"] == "51"
        and "more chars" in values["error[subscription /t: OverflowError]"]
    )
    # arity is kept (rclpy inspects it): a two-argument callback stays two-argument
    two = guard.wrap("s", lambda msg, info: (msg, info))
    assert two(1, 2) == (1, 2)


def test_guarded_rclpy_node_survives_a_raising_callback_and_reports_it(ros_context) -> None:
    node = rclpy.create_node("guarded_node_under_test")
    probe = rclpy.create_node("guard_probe")
    try:
        seen: list[str] = []

        def on_msg(msg: String) -> None:
            seen.append(msg.data)
            if msg.data.startswith("bad"):
                raise KeyError(msg.data)

        node.create_subscription(String, "/guard_test", on_msg, 50)
        guard_node(node)
        reports: list[dict] = []

        def on_diag(msg: DiagnosticArray) -> None:
            for status in msg.status:
                if status.name == "mbrl/guarded_node_under_test/callbacks":
                    reports.append({kv.key: kv.value for kv in status.values})

        probe.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
        pub = probe.create_publisher(String, "/guard_test", 50)
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(node)
        executor.add_node(probe)
        deadline = time.monotonic() + 20.0
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        for k in range(20):
            pub.publish(String(data=f"bad {k}" if k % 2 else f"good {k}"))
        while time.monotonic() < deadline and not (len(seen) == 20 and reports):
            executor.spin_once(timeout_sec=0.05)
        assert len(seen) == 20  # every message after the first exception was handled too
        assert reports and reports[-1]["callback_errors"] == "10"
        assert "error[subscription /guard_test: KeyError]" in reports[-1]
    finally:
        node.destroy_node()
        probe.destroy_node()

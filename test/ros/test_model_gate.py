"""The controller's model gate (issue 16, part 3): ROS-free checks on real models, then over
DDS the issue's case: models fitted on a few transitions, or predicting the arm's recent
motion far worse than the running model, are refused and explained on /diagnostics."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from test_mpc_controller import Graph

from mbrl.agents import registry as agents
from mbrl.agents.arm import ArmModel
from mbrl.agents.mpc import known_model
from mbrl.agents.presets import preset
from mbrl.config import ArmConfig
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.ros.model_gate import GateConfig, ModelGate, ModelRefused
from mbrl.ros.transport import MODEL_TOPIC, encode_model_msg

torch.set_num_threads(1)
# the layout the controller expects: the agent layer's, whatever the reach model state is
LAYOUT = agents.artifact_layout("mpc", "reach", ArmModel.from_config(ArmConfig()),
                                preset("mpc", "reach"))  # fmt: skip
DX = len(LAYOUT["columns"])


def _ensemble(
    seed: int, bias: float = 0.0, zero: bool = False, dx: int = DX
) -> ProbabilisticEnsemble:
    """A real ensemble file's model: random weights; `zero`: every weight 0, so it predicts
    x' = x (no motion); `bias`: its mean of x' shifted far off."""
    model = ProbabilisticEnsemble(dx, 5, ensemble_size=2, hidden=(16,), seed=seed)
    with torch.no_grad():
        if zero:
            for name, value in model.net.state_dict().items():
                if name.startswith(("weights", "biases")):
                    value.zero_()
        if bias:
            model.net.state_dict()["biases.1"][..., :5] += bias
    model._refresh_cache()
    return model


def _feed(gate: ModelGate, truth, n: int, rng) -> None:
    x = np.zeros(5)
    for _ in range(n):
        u = rng.uniform(-1, 1, 5)
        gate.observe(x, u)
        x = truth.predict(x[None].astype(np.float32), u[None].astype(np.float32))[0][0]


def test_gate_checks_data_finiteness_and_recent_error() -> None:
    arm = ArmModel.from_config(ArmConfig())
    truth = known_model(arm)  # the arm's own kinematics: what the recent transitions follow
    off = known_model(ArmModel.from_config(ArmConfig(max_increment=0.07)))  # wrong step size
    gate = ModelGate(GateConfig(min_transitions=30, margin=0.5, min_check=40))
    # too little data: the five tiny episodes (5-19 transitions)
    for n in (None, 5, 19, 29.5, True):
        with pytest.raises(ModelRefused, match=f"fitted on {n!r} transitions"):
            gate.check(3, {"num_transitions": n}, truth, None)
    assert gate.refused == 5 and gate.refused_version == 3
    # no recent data yet: enough data suffices
    assert gate.check(4, {"num_transitions": 30}, off, None) == {"num_transitions": 30}
    _feed(gate, truth, 100, np.random.default_rng(0))
    x, u, x_next = gate.recent()
    assert x.shape == (99, 5) and u.shape == (99, 5)
    # worse than predicting no motion (well-formed random weights) over a running model
    # that explains the motion (here the known kinematics): refused, with the numbers
    with pytest.raises(ModelRefused, match="worse than predicting no motion"):
        gate.check(5, {"num_transitions": 500}, _ensemble(2, bias=3.0, dx=5), truth, learned=False)
    # better than no motion but far worse than the running learned model: the margin
    with pytest.raises(ModelRefused, match="worse than the running model's .* margin"):
        gate.check(6, {"num_transitions": 500}, off, truth)
    # ...which the known model is not held to; as good as the running one passes
    assert gate.check(7, {"num_transitions": 500}, off, truth, learned=False)["recent"] == 99
    figures = gate.check(8, {"num_transitions": 500}, truth, off)
    assert figures["mse"] <= figures["running_mse"]
    # no running model at all (push before its first fit): anything beats holding the arm
    assert "running_mse" not in gate.check(
        9, {"num_transitions": 500}, _ensemble(2, 3.0, dx=5), None
    )
    # a hold interrupts the chain: no transition spans it
    gate.interrupt()
    gate.observe(np.ones(5), np.zeros(5))
    assert len(gate.recent()[0]) == 99
    assert gate.values()["gate_refused"] == "7" and "accepted" in gate.values()["gate_last"]
    assert gate.accepted == 4


def _publish(g: Graph, model: ProbabilisticEnsemble, version: int, n: int, tmp_path) -> None:
    path = tmp_path / f"m{version}.npz"
    model.save(path)
    metrics = {"num_transitions": n}
    g.model_pub.publish(
        encode_model_msg(path.read_bytes(), version, "ensemble", DX, 5, metrics, layout=LAYOUT)
    )


@pytest.mark.ros
def test_controller_refuses_tiny_and_worse_models(ros_context, tmp_path) -> None:
    ctl = {"mode": "explore", "data_dir": str(tmp_path / "ctl")}
    g = Graph(["sim", "mpc_controller"], {"mpc_controller": ctl}, "test_gate_client")
    try:
        g.wait(lambda: g.diag().get("safety") == "ok" and g.commands, what="commands")
        _publish(g, _ensemble(1), 1, 12, tmp_path)  # fitted on 12 transitions
        g.wait(lambda: g.diag().get("gate_refused") == "1", what="the tiny model refused")
        assert "fitted on 12 transitions; at least 30 required" in g.diag()["last_reject"]
        assert g.diag()["model_version"] == "0"
        _publish(g, _ensemble(1, zero=True), 2, 400, tmp_path)  # predicts no motion: passes
        g.wait(lambda: g.diag().get("model_version") == "2", what="model 2 running")
        g.wait(lambda: int(g.diag()["gate_recent_transitions"]) >= 60, what="recent transitions")
        _publish(g, _ensemble(3, bias=3.0), 3, 5000, tmp_path)  # plenty of data, but wrong
        g.wait(lambda: g.diag().get("gate_refused") == "2", what="the worse model refused")
        d = g.diag()
        assert "worse than predicting no motion" in d["last_reject"] and d["model_version"] == "2"
        assert f"rejected model from {MODEL_TOPIC}" in g.output.text()
        g.runner.check()
    finally:
        g.close()


@pytest.mark.ros
def test_restarted_fitter_never_relabels_an_old_checkpoint(ros_context, tmp_path) -> None:
    """A checkpoint fitted with max_increment 0.05, a fitter restarted with 0.1: the old
    model must not go out labelled with the new layout (before: it was republished as 0.1);
    the same checkpoint under its own layout is republished unchanged."""
    import rclpy
    from ros_helpers import Output
    from std_msgs.msg import UInt8MultiArray

    from mbrl.ros.fitting import CheckpointStore, FitResult
    from mbrl.ros.graph import get_nodes
    from mbrl.ros.runner import GraphRunner
    from mbrl.ros.transport import MODEL_QOS, decode_model_msg

    old = {**LAYOUT, "max_increment": 0.05}
    store = CheckpointStore(tmp_path / "fitter" / "models")
    store.save(1, FitResult({"ensemble": _ensemble(1)}, {"num_transitions": 99}),
               {"episodes": [], "layout": old})  # fmt: skip
    node = rclpy.create_node("test_relabel_client")
    models: list = []
    node.create_subscription(UInt8MultiArray, MODEL_TOPIC, models.append, MODEL_QOS)

    def run(max_increment: float) -> list:
        models.clear()
        output = Output()
        params = {"data_dir": str(tmp_path / "fitter"), "arm.max_increment": max_increment}
        overrides = {"model_fitter": params}
        runner = GraphRunner(get_nodes(["model_fitter"]), overrides=overrides, output=output)
        runner.start()
        try:
            deadline = time.monotonic() + 120.0  # (torch's import alone is slow under load)
            while time.monotonic() < deadline and "episodes on disk" not in output.text():
                rclpy.spin_once(node, timeout_sec=0.05)
            assert "episodes on disk" in output.text(), output.text()[-2000:]
            end = time.monotonic() + 3.0  # a latched model would arrive by now
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.05)
            runner.check()
            return [decode_model_msg(m) for m in models], output.text()
        finally:
            runner.shutdown()

    try:
        got, text = run(0.1)
        assert got == [] and "starting from a fresh model" in text
        got, _ = run(0.05)  # its own layout: republished as it was fitted
        assert len(got) == 1 and got[0].layout["max_increment"] == 0.05
    finally:
        node.destroy_node()

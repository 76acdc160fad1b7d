"""The hostile-input suite (issue 16, done-when): a seeded fuzz publisher (test/ros/fuzz.py)
floods the graph's input topics over real DDS while the controller drives the simulated arm
toward a goal. Asserted: no node dies; every command the controller sends is inside the
position limits, moves at most the speed limit from the one before (holds included: no hold
jumps) and at most the speed limit over any 0.5 s window; the command rate stays the control
rate; the arm reaches its goal once the fuzz stops. `make test` runs a small seeded run; the
expensive tier sends >= 10k messages with the collector and the fitter in the graph too."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fuzz import Fuzzer
from ros_helpers import COMMANDS, JOINTS
from std_msgs.msg import Float64MultiArray
from test_mpc_controller import GOAL, Graph, _ee

from mbrl.agents.arm import ArmModel
from mbrl.config import ArmConfig
from mbrl.ros.msgs import joint_positions_by_name

pytestmark = pytest.mark.ros
MAX_VELOCITY = 2.0  # rad/s, the controller's command limit in this test (0.1 rad per tick)
PERIOD = 0.05
LAYOUT = {"learner": "mpc", "task": "reach", "columns": [0, 1, 2, 3, 4], "action": "increment",
          "joint_names": list(JOINTS), "max_increment": 0.1, "action_base": "command",
          "control_rate_hz": 20.0}  # fmt: skip


def _fuzz_run(tmp_path, names: list[str], count: int, rate_hz: float, seed: int) -> dict:
    overrides = {
        "sim": {"seed": 0},
        "mpc_controller": {"max_velocity": MAX_VELOCITY, "data_dir": str(tmp_path / "ctl")},
        "collector": {"data_dir": str(tmp_path / "collector")},
        "model_fitter": {"data_dir": str(tmp_path / "fitter")},
    }
    g = Graph(names, {k: v for k, v in overrides.items() if k in names}, f"fuzz_client_{seed}")
    # (send time, the publisher's sequence number, command): DDS message info, so the checks
    # use when each command was sent and never pair two commands with a lost one between
    sent: list[tuple[float, int, np.ndarray]] = []

    def on_command(msg, info) -> None:
        seq = info.get("publication_sequence_number", len(sent))
        sent.append((info["source_timestamp"] * 1e-9, seq, np.array(msg.data)))

    g.client.node.create_subscription(Float64MultiArray, COMMANDS, on_command, 1000)
    fuzzer = None
    try:
        g.publish_goal(GOAL)
        # the model gate has the arm's recent motion to judge models by (before that it
        # could only check the data a model claims)
        g.wait(
            lambda: (
                g.diag().get("safety") == "ok"
                and int(g.diag().get("gate_recent_transitions", 0)) >= 60
            ),
            what="commands and recent transitions",
        )
        fuzzer = Fuzzer(JOINTS, np.zeros(5), LAYOUT, tmp_path / "fuzz_models", seed)
        fuzzer.start(count, rate_hz)
        t0 = time.monotonic()
        g.wait(fuzzer.done, timeout=count / rate_hz * 3 + 30, what="the fuzz to finish")
        fuzz_s = time.monotonic() - t0
        g.runner.check()  # no node died under the fuzz
        fuzzer.close()
        # the fuzz stopped: the goal again (the fuzz sent its own), and the arm gets there
        g.publish_goal(GOAL)

        def reached() -> bool:
            try:  # (the last fuzz messages may still be in flight)
                q = joint_positions_by_name(g.client.states[-1], JOINTS)
            except ValueError:
                return False
            return bool(np.all(np.isfinite(q)) and np.linalg.norm(_ee(q) - GOAL) < 0.03)

        g.wait(reached, timeout=60.0, what="the goal after the fuzz")
        g.runner.check()
        return {"sent": sent, "fuzz_s": fuzz_s, "messages": fuzzer.total(), "diag": g.diag(),
                "by_topic": dict(fuzzer.sent)}  # fmt: skip
    finally:
        if fuzzer is not None:
            fuzzer.close() if not fuzzer.done() else None
        g.close()


def _check_commands(sent: list[tuple[float, int, np.ndarray]]) -> None:
    arm = ArmModel.from_config(ArmConfig())
    times = np.array([t for t, _, _ in sent])
    seqs = np.array([s for _, s, _ in sent])
    cmds = np.stack([c for _, _, c in sent])
    assert np.all(cmds >= arm.lower - 1e-9) and np.all(cmds <= arm.upper + 1e-9)
    consecutive = np.diff(seqs) == 1
    assert consecutive.mean() > 0.9, f"{(~consecutive).sum()} gaps in {len(seqs)} commands"
    step = MAX_VELOCITY * PERIOD
    moved = np.abs(np.diff(cmds, axis=0)).max(axis=1)[consecutive]
    assert moved.max() <= step + 1e-9, f"one command moved {moved.max():.4f} rad (max {step})"
    rate = (seqs[-1] - seqs[0]) / (times[-1] - times[0])
    assert rate <= 1.0 / PERIOD * 1.2, f"{rate:.1f} commands/s"
    # any 0.5 s window of send times (a gap only hides commands: it can only add motion)
    j = 0
    for i in range(len(cmds)):
        while times[j] < times[i] - 0.5:
            j += 1
        span = np.abs(cmds[j : i + 1] - cmds[i]).max()
        assert span <= MAX_VELOCITY * (0.5 + PERIOD) + 1e-9, f"{span:.3f} rad in 0.5 s"


def test_fuzz_small_seeded_run(ros_context, tmp_path) -> None:
    """make test: 1k crafted messages in ~4 s against sim + controller."""
    result = _fuzz_run(tmp_path, ["sim", "mpc_controller"], 1000, 250.0, seed=16)
    assert result["messages"] == 1000
    _check_commands(result["sent"])
    assert int(result["diag"]["holds"]) > 0  # the crafted states did make it hold


@pytest.mark.expensive
def test_fuzz_ten_thousand_messages_whole_graph(ros_context, tmp_path) -> None:
    """>= 10k crafted messages against sim, controller, collector and fitter."""
    names = ["sim", "collector", "model_fitter", "mpc_controller"]
    result = _fuzz_run(tmp_path, names, 12000, 200.0, seed=1600)
    assert result["messages"] == 12000
    _check_commands(result["sent"])
    print({k: result[k] for k in ("fuzz_s", "messages", "by_topic")})

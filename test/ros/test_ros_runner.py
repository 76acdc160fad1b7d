"""The graph definition and the embedded runner, with real node processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml
from ros_helpers import Output, start_sim

from mbrl.ros.graph import GRAPH, SHARED, config_dir, get_nodes, param_file_paths
from mbrl.ros.runner import GraphRunner, NodeDied, _nest

pytestmark = pytest.mark.ros


def _wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_every_node_has_its_parameter_files_under_its_own_name():
    for spec in GRAPH:
        paths = param_file_paths(spec)
        # first the graph's shared file (the arm and the agent, for every node: `/**`) ...
        assert paths[0].name == SHARED
        shared = yaml.safe_load(paths[0].read_text())
        assert set(shared) == {"/**"} and {"arm", "agent"} <= set(shared["/**"]["ros__parameters"])
        # ... then the node's own, which must not describe the arm again
        for path in paths[1:]:
            own = yaml.safe_load(path.read_text())
            assert spec.name in own, path
            assert "ros__parameters" in own[spec.name]
            assert "arm" not in own[spec.name]["ros__parameters"], f"{path}: arm twice"


def test_config_dir_is_the_ament_share_directory():
    assert (config_dir() / "sim.yaml").is_file()


def test_unknown_node_is_named():
    with pytest.raises(KeyError, match=r"unknown node\(s\) \['simulator'\]"):
        get_nodes(["simulator"])


def test_timing_overrides_that_split_the_graph_are_refused():
    """A lockstep sim beside a real-time controller (graph.yaml's default) pairs no command
    with its state: refused before anything starts, naming both; agreeing values pass."""
    nodes = get_nodes(["sim", "mpc_controller"])
    with pytest.raises(ValueError, match=r"'sim': 'lockstep', 'mpc_controller': 'realtime'"):
        GraphRunner(nodes, overrides={"sim": {"timing": "lockstep"}})
    both = {"timing": "lockstep"}
    GraphRunner(nodes, overrides={"sim": both, "mpc_controller": both})
    GraphRunner(nodes, overrides={"sim": {"timing": "realtime"}})  # the files say realtime


def test_overrides_nest_like_a_parameter_file():
    assert _nest({"arm.servo.noise_std": 0.1, "mode": "x", "arm.home": (1.0,)}) == {
        "arm": {"servo": {"noise_std": 0.1}, "home": [1.0]},
        "mode": "x",
    }


def test_node_dying_on_a_bad_parameter_fails_loudly_naming_it():
    runner, output = start_sim({"arm.home": [0.0, 0.0]})
    try:
        with pytest.raises(NodeDied, match=r"node 'sim' .* exited with code 2") as info:
            _wait_for(lambda: runner.check() or False)
        assert "arm.home has 2 entries; expected 5" in str(info.value)
    finally:
        runner.shutdown()
    assert "[sim] sim: invalid parameters" in output.text()


def test_arm_that_cannot_be_built_fails_naming_the_parameter():
    runner, _ = start_sim({"arm.ee_link": "no_such_link"})
    try:
        with pytest.raises(NodeDied, match=r"(?s)exited with code 2.*arm\.ee_link 'no_such_link'"):
            _wait_for(lambda: runner.check() or False)
    finally:
        runner.shutdown()


def test_out_of_range_parameter_is_rejected_by_its_descriptor():
    runner, _ = start_sim({"arm.control_rate_hz": -5.0})
    try:
        with pytest.raises(NodeDied, match=r"arm\.control_rate_hz out of range"):
            _wait_for(lambda: runner.check() or False)
    finally:
        runner.shutdown()


def test_shutdown_stops_a_running_node_cleanly_and_prefixes_output():
    output = Output()
    with GraphRunner(get_nodes(["sim"]), output=output) as runner:
        assert _wait_for(lambda: "[sim] [INFO]" in output.text()), output.text()
        runner.check()
    codes = {p.spec.name: p.popen.returncode for p in runner._procs}
    assert codes == {"sim": 0}, output.text()[-2000:]
    assert "[runner] stopped: {'sim': 0}" in output.text()


def _start_runner_cli() -> tuple[subprocess.Popen, int]:
    """`python -m mbrl.ros.runner` with the sim; returns it and the sim's pid once it is up."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mbrl.ros.runner", "--node", "sim"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pid = None
    for line in proc.stdout:  # blocks per line; pytest-timeout bounds a hang
        match = re.search(r"started node 'sim' \(pid (\d+)\)", line)
        pid = int(match.group(1)) if match else pid
        if "[sim] [INFO]" in line:
            return proc, pid
    raise AssertionError(f"runner exited with {proc.wait()} before the sim came up")


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" in f.read()  # a zombie waiting for init is dead too
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_runner_cli_stops_its_nodes_cleanly_on_ctrl_c_or_sigterm(sig):
    proc, pid = _start_runner_cli()
    try:
        proc.send_signal(sig)
        rest = proc.communicate(timeout=30)[0]
        assert proc.returncode == 0, rest
        assert "[runner] stopped: {'sim': 0}" in rest
        assert _gone(pid)
    finally:
        proc.kill()
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_nodes_die_with_a_killed_runner():
    proc, pid = _start_runner_cli()
    try:
        proc.kill()  # SIGKILL: the runner gets no chance to clean up
        proc.wait()
        assert _wait_for(lambda: _gone(pid), timeout=15.0), f"sim (pid {pid}) outlived its runner"
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)

"""The graph definition and the embedded runner, with real node processes."""

from __future__ import annotations

import time

import pytest
import yaml
from ros_helpers import Output, start_sim

from mbrl.ros.graph import GRAPH, config_dir, get_nodes, param_file_paths
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
        for path in param_file_paths(spec):
            assert spec.name in yaml.safe_load(path.read_text()), path
            assert "ros__parameters" in yaml.safe_load(path.read_text())[spec.name]


def test_config_dir_is_the_ament_share_directory():
    assert (config_dir() / "sim.yaml").is_file()


def test_unknown_node_is_named():
    with pytest.raises(KeyError, match=r"unknown node\(s\) \['simulator'\]"):
        get_nodes(["simulator"])


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

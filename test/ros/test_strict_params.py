"""Strict parameters (issue 16, part 4): a misspelt key or node block, a YAML syntax error or
an out-of-range value stops a node with exit code 2, naming the file, the key and a close
match (rclpy alone ignores undeclared parameters silently)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mbrl.config import ConfigError
from mbrl.ros.graph import config_dir
from mbrl.ros.strict_params import (
    check_node_parameters,
    check_parameter_files,
    declared_by,
    node_names,
)

CTL = declared_by("mpc_controller")


def _args(tmp_path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return ["x", "--ros-args", "--params-file", str(path)]


def test_unknown_keys_and_blocks_are_named_with_a_close_match(tmp_path) -> None:
    own = _args(tmp_path, "mpc_controller:\n  ros__parameters:\n    max_velocty: 0.3\n")
    with pytest.raises(ConfigError, match="unknown parameter 'max_velocty' for node "
                       "'mpc_controller'; did you mean 'max_velocity'"):  # fmt: skip
        check_node_parameters("mpc_controller", CTL, own)
    nested = _args(
        tmp_path, "/mpc_controller:\n  ros__parameters:\n    arm:\n      max_incremnt: 1\n"
    )
    with pytest.raises(ConfigError, match="'arm.max_incremnt'.*did you mean 'arm.max_increment'"):
        check_node_parameters("mpc_controller", CTL, nested)
    block = _args(tmp_path, "mpc_controler:\n  ros__parameters:\n    max_velocity: 0.3\n")
    with pytest.raises(ConfigError, match="unknown node block 'mpc_controler'; did you mean "
                       "'mpc_controller'"):  # fmt: skip
        check_node_parameters("collector", declared_by("collector"), block)
    shared = _args(tmp_path, "/**:\n  ros__parameters:\n    timnig: lockstep\n")
    with pytest.raises(ConfigError, match="'timnig'.*any mbrl node.*did you mean 'timing'"):
        check_node_parameters("collector", declared_by("collector"), shared)
    inner = _args(tmp_path, "mpc_controller:\n  ros_parameters:\n    mode: mpc\n")
    with pytest.raises(ConfigError, match="only 'ros__parameters'; did you mean"):
        check_node_parameters("mpc_controller", CTL, inner)
    with pytest.raises(ConfigError, match="-p tick_limt:=...: .*did you mean 'tick_limit'"):
        check_node_parameters("mpc_controller", CTL, ["x", "--ros-args", "-p", "tick_limt:=3"])
    # what is fine: a graph-wide key another node reads, a driver's block, another node's
    # own key (-p node:key), the node's own keys
    text = (
        "/**:\n  ros__parameters:\n    agent:\n      task: reach\n"
        "controller_manager:\n  ros__parameters:\n    update_rate: 50\n"
        "mpc_controller:\n  ros__parameters:\n    max_velocity: 0.3\n    mode: lqr\n"
    )
    fine = _args(tmp_path, text)
    check_node_parameters("mpc_controller", CTL, [*fine, "-p", "sim:seed:=3"])


def test_yaml_syntax_errors_name_the_file_and_line(tmp_path) -> None:
    args = _args(tmp_path, "mpc_controller:\n  ros__parameters:\n    mode: [mpc\n")
    with pytest.raises(ConfigError, match=r"p.yaml: YAML syntax error at line \d+"):
        check_parameter_files(args)


def test_every_shipped_parameter_file_passes() -> None:
    files = sorted(p for p in config_dir().glob("*.yaml") if not p.name.startswith("arm_"))
    files.append(config_dir() / "arm_so101_ros2_control.yaml")  # a driver + mbrl file
    for node in ("sim", "collector", "model_fitter", "mpc_controller", "experiment",
                 "feetech_bridge"):  # fmt: skip
        argv = ["x", "--ros-args", *(a for f in files for a in ("--params-file", str(f)))]
        check_node_parameters(node, declared_by(node), argv)
    assert "mpc_controller" in node_names()


def _run(tmp_path, text: str) -> subprocess.CompletedProcess:
    args = _args(tmp_path, text)[1:]
    argv = [sys.executable, "-m", "mbrl.ros.collector", *args]  # (the lightest node)
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


@pytest.mark.ros
def test_node_exits_2_on_a_misspelt_key_or_a_syntax_error(tmp_path) -> None:
    result = _run(tmp_path, "collector:\n  ros__parameters:\n    flush_perod: 0.3\n")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "unknown parameter 'flush_perod'" in result.stderr and "flush_period" in result.stderr
    result = _run(tmp_path, "collector:\n  ros__parameters:\n    chunk_bytes: [1\n")
    assert result.returncode == 2 and "YAML syntax error" in result.stderr
    assert str(tmp_path / "p.yaml") in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "params, match",
    [
        ("{fit_lr: -0.001}", "fit_lr = -0.001; the learning rate must be > 0"),
        ("{fit_lr: 0.0}", "learning rate must be > 0"),
        ("{hidden: []}", r"hidden = \[\]; expected a non-empty list"),
        ("{hidden: [64, 0]}", "widths >= 1"),
        ("{ensemble_size: 2, num_elites: 5}", "num_elites = 5 > ensemble_size = 2"),
        ("{fit_lr: fast}", "fit_lr = 'fast': expected a float"),
        ("{fit_max_epochs: 2.5}", "expected a int"),
        ("{planner_config: {horizon: 0}}", "planner_config.horizon = 0"),
        ("{fit_refit: hot}", "fit_refit = 'hot'; expected one of"),
        ("{fit_lrr: 0.01}", "unknown parameter 'fit_lrr'; did you mean 'fit_lr'"),
    ],
)
def test_agent_preset_values_are_range_checked(params, match) -> None:
    from mbrl.agents.config import AgentConfig

    with pytest.raises(ConfigError, match=match):
        AgentConfig(params=params)


def test_shipped_presets_pass_their_checks() -> None:
    from mbrl.agents.presets import PRESETS, check_values

    for (algo, task), params in PRESETS.items():
        check_values(params, f"{algo}/{task}")

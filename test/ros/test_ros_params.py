"""ROS parameters -> SimNodeConfig: declaration with descriptors and ranges, read back, errors."""

from __future__ import annotations

import math

import pytest

rclpy = pytest.importorskip("rclpy")

from rcl_interfaces.msg import ParameterType  # noqa: E402
from rclpy.exceptions import (  # noqa: E402
    InvalidParameterTypeException,
    InvalidParameterValueException,
)
from rclpy.parameter import Parameter  # noqa: E402

from mbrl.config import ArmConfig, ConfigError, load_yaml  # noqa: E402
from mbrl.ros.graph import config_dir  # noqa: E402
from mbrl.ros.params import (  # noqa: E402
    SimNodeConfig,
    declare_config_parameters,
    read_config_parameters,
)

_count = iter(range(10**6))


def _node(ros_context, **overrides):
    params = [Parameter(k.replace("__", "."), value=v) for k, v in overrides.items()]
    node = rclpy.create_node(f"params_test_{next(_count)}", parameter_overrides=params)
    return node


def test_defaults_give_the_default_config(ros_context):
    node = _node(ros_context)
    try:
        declare_config_parameters(node)
        assert read_config_parameters(node) == SimNodeConfig()
    finally:
        node.destroy_node()


def test_overrides_reach_nested_fields_and_unset_stays_default(ros_context):
    node = _node(
        ros_context, timing="lockstep", arm__home=[0.1] * 5, arm__servo__noise_std=0.01,
        joints=["wrist_roll", "shoulder_pan"], arm__servo__max_velocity=2.0,
    )  # fmt: skip
    try:
        declare_config_parameters(node)
        cfg = read_config_parameters(node)
    finally:
        node.destroy_node()
    assert cfg.timing == "lockstep" and cfg.arm.home == (0.1,) * 5
    assert cfg.arm.servo.noise_std == 0.01 and cfg.arm.servo.max_velocity == 2.0
    assert cfg.arm.servo.max_torque is None and cfg.arm.position_lower == ()
    assert cfg.controller_joints == ("wrist_roll", "shoulder_pan")
    assert SimNodeConfig().controller_joints == ArmConfig().joint_names


def test_descriptors_carry_description_type_and_range(ros_context):
    node = _node(ros_context)
    try:
        declare_config_parameters(node)
        rate, lower, vmax = node.describe_parameters(
            ["arm.control_rate_hz", "arm.position_lower", "arm.servo.max_velocity"]
        )
    finally:
        node.destroy_node()
    assert rate.type == ParameterType.PARAMETER_DOUBLE and "Hz" in rate.description
    assert rate.floating_point_range[0].from_value > 0 and rate.read_only
    assert lower.type == ParameterType.PARAMETER_DOUBLE_ARRAY and "URDF" in lower.description
    assert vmax.type == ParameterType.PARAMETER_DOUBLE


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        ({"arm__home": [0.0, 0.0]}, ConfigError, r"arm\.home has 2 entries; expected 5"),
        ({"timing": "fast"}, ConfigError, r"timing must be one of \['realtime', 'lockstep'\]"),
        ({"joints": ["elbow"]}, ConfigError, r"joints names unknown joint\(s\) \['elbow'\]"),
        ({"controller_name": "a/b"}, ConfigError, "controller_name must be a valid topic"),
        ({"arm__physics_rate_hz": 250.0}, ConfigError, "whole multiple"),
        (
            {"state_rate_hz": 50.0},
            ConfigError,
            r"physics_rate_hz 240 is not a multiple of "
            r"state_rate_hz 50",
        ),
        (
            {"state_rate_hz": 50.0, "arm__physics_rate_hz": 300.0, "timing": "lockstep"},
            ConfigError,
            "state_rate_hz 50 needs timing realtime",
        ),
        ({"arm__control_rate_hz": -1.0}, InvalidParameterValueException, "arm.control_rate_hz"),
        ({"arm__control_rate_hz": 20}, InvalidParameterTypeException, "arm.control_rate_hz"),
        ({"arm__servo__position_gain": 1.5}, InvalidParameterValueException, "position_gain"),
    ],
)
def test_bad_parameters_are_named(ros_context, overrides, error, match):
    node = _node(ros_context, **overrides)
    try:
        with pytest.raises(error, match=match):
            declare_config_parameters(node)
            read_config_parameters(node)
    finally:
        node.destroy_node()


def test_shipped_parameter_file_matches_the_declared_parameters(ros_context):
    block = load_yaml(config_dir() / "sim.yaml")["sim"]["ros__parameters"]

    def flatten(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flatten(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    flat = dict(flatten(block))
    node = rclpy.create_node(
        f"params_test_{next(_count)}",
        parameter_overrides=[Parameter(k, value=v) for k, v in flat.items()],
    )
    try:
        declare_config_parameters(node)
        undeclared = [k for k in flat if not node.has_parameter(k)]
        assert not undeclared, f"sim.yaml names undeclared parameters {undeclared}"
        cfg = read_config_parameters(node)
    finally:
        node.destroy_node()
    assert cfg.arm.control_period == pytest.approx(0.05) and math.isfinite(cfg.arm.max_increment)

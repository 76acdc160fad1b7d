"""ROS parameters <-> frozen config dataclasses: declare with descriptors and ranges, read back.

A nested dataclass becomes dotted parameter names (`arm.servo.noise_std`), which is exactly
how a `ros__parameters:` YAML block nests. Values go through mbrl.config.from_dict, so a bad
value raises ConfigError naming the parameter.
"""

from __future__ import annotations

import array
import dataclasses
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from mbrl.config import ConfigError, ServoConfig, from_dict
from mbrl.ros.node_configs import MODES, TIMINGS, SimNodeConfig

# Parameter ranges (inclusive) the descriptors advertise; rclpy rejects values outside them
# at declaration with an error naming the parameter.
RANGES: dict[str, tuple[float, float]] = {
    "arm.control_rate_hz": (0.1, 1000.0),
    "arm.physics_rate_hz": (1.0, 100000.0),
    "arm.max_increment": (1e-6, math.pi),
    "arm.servo.position_gain": (1e-6, 1.0),
    "arm.servo.velocity_gain": (1e-6, 1.0),
    "arm.servo.noise_std": (0.0, 1.0),
    "arm.servo.backlash": (0.0, 1.0),
    "arm.servo.latency_ticks": (0, 100),
    "arm.servo.kp": (0.0, 1e6),
    "arm.servo.kv": (0.0, 1e4),
    "arm.servo.damping": (0.0, 1e4),
    "arm.servo.friction": (0.0, 1e4),
    "arm.servo.armature": (0.0, 1e3),
    "arm.servo.resolution": (0.0, 1.0),
    "arm.servo.read_drop": (0.0, 0.99),
    "idle_publish_rate_hz": (0.0, 1000.0),
    "seed": (-1, 2**31 - 1),
}


def _attribute_docs(cls: type) -> dict[str, str]:
    """`name: text` entries of a Google-style "Attributes:" docstring section."""
    docs: dict[str, str] = {}
    doc = (cls.__doc__ or "").split("Attributes:", 1)
    if len(doc) < 2:
        return docs
    current: list[str] = []
    for line in doc[1].splitlines():
        match = re.match(r"\s{4,8}([a-z_][a-z0-9_ /]*):\s*(.*)", line)
        if match:
            current = [n.strip() for n in match.group(1).split("/")]
            for name in current:
                docs[name] = match.group(2)
        elif line.strip() and current:
            for name in current:
                docs[name] += " " + line.strip()
    return docs


def _ros_type(hint: Any) -> Parameter.Type:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # `float | None`: the type of the value
        return _ros_type(next(a for a in args if a is not type(None)))
    if origin is tuple:
        return {
            str: Parameter.Type.STRING_ARRAY,
            float: Parameter.Type.DOUBLE_ARRAY,
            int: Parameter.Type.INTEGER_ARRAY,
            bool: Parameter.Type.BOOL_ARRAY,
        }[args[0]]
    return {
        bool: Parameter.Type.BOOL,
        int: Parameter.Type.INTEGER,
        float: Parameter.Type.DOUBLE,
        str: Parameter.Type.STRING,
    }[hint]


def _descriptor(name: str, description: str, ptype: Parameter.Type) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(name=name, description=description, read_only=True)
    if name in RANGES:
        low, high = RANGES[name]
        if ptype == Parameter.Type.INTEGER:
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high))]
        else:
            descriptor.floating_point_range = [FloatingPointRange(from_value=low, to_value=high)]
    return descriptor


def _fields(cls: type, prefix: str) -> list[tuple[str, Any, Any, str]]:
    """(parameter name, type hint, default, description) of every leaf field of `cls`."""
    hints = typing.get_type_hints(cls)
    docs = _attribute_docs(cls)
    out = []
    default_obj = cls()
    for field in dataclasses.fields(cls):
        name = f"{prefix}{field.name}"
        default = getattr(default_obj, field.name)
        if dataclasses.is_dataclass(default):
            out.extend(_fields(type(default), name + "."))
        else:
            out.append((name, hints[field.name], default, docs.get(field.name, "")))
    return out


def declare_config_parameters(node: Node, cls: type = SimNodeConfig) -> None:
    """Declare one read-only parameter per leaf field of dataclass `cls` (defaults from it).

    Fields whose default is None or an empty tuple are declared typed but unset, so the
    dataclass default applies unless the parameter file gives a value.
    """
    for name, hint, default, description in _fields(cls, ""):
        ptype = _ros_type(hint)
        if isinstance(default, bool) and ptype == Parameter.Type.INTEGER:
            default = int(default)
        value: Any = ptype if default is None or default == () else default
        if isinstance(value, tuple):
            value = list(value)
        if ptype == Parameter.Type.DOUBLE and isinstance(value, int):
            value = float(value)
        node.declare_parameter(name, value, _descriptor(name, description, ptype))


def read_config_parameters(node: Node, cls: type[Any] = SimNodeConfig) -> Any:
    """Build `cls` from the node's declared parameters; ConfigError names a bad parameter."""
    data: dict[str, Any] = {}
    for name, _, default, _ in _fields(cls, ""):
        try:
            value = node.get_parameter(name).value
        except ParameterUninitializedException:
            if not (isinstance(default, tuple) and default):
                continue  # declared unset: the dataclass default applies
            # A parameter file's `[]` leaves the parameter unset (rcl cannot type an empty
            # list): for a field whose default is not empty (arm.gripper_joints) it means
            # "none", not the default.
            value = []
        if isinstance(value, (list, tuple, array.array)):
            # rclpy returns numeric arrays as array.array; from_dict turns lists into tuples
            value = list(value)
            if value == [EMPTY]:
                value = []
            if not value and not (isinstance(default, tuple) and default):
                continue  # an empty array of a field whose default is empty: the default
        *parents, leaf = name.split(".")
        target = data
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"node '{node.get_name()}' parameter error: {exc}") from exc


# A string array of this one element means "empty": a later parameter file's `[]` does not
# replace an earlier file's list in rcl (it leaves the value as the earlier file set it), so
# an arm file without a gripper could not override graph.yaml's `gripper_joints: [gripper]`.
EMPTY = ""


def config_parameters(cfg: Any, prefix: str) -> dict[str, Any]:
    """A config dataclass as {dotted parameter name: value} (the inverse of
    read_config_parameters for one block, e.g. an ArmConfig as `arm.*`), with the types its
    declared parameters have: floats as floats, tuples as lists, an empty string array as
    [EMPTY]; None (unset) is left out."""
    out: dict[str, Any] = {}
    for name, hint, _, _ in _fields(type(cfg), prefix):
        value: Any = cfg
        for part in name[len(prefix) :].split("."):
            value = getattr(value, part)
        if value is None:
            continue
        ptype = _ros_type(hint)
        if ptype == Parameter.Type.DOUBLE:
            value = float(value)
        elif ptype == Parameter.Type.DOUBLE_ARRAY:
            value = [float(v) for v in value]
        elif ptype == Parameter.Type.STRING_ARRAY and not value:
            value = [EMPTY]
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def write_effective_parameters(directory: str | Path, cfg: Any, **extra: Any) -> Path:
    """Write <directory>/effective_parameters.json: the node's whole config (defaults merged
    with its parameter files) and `extra` (e.g. the agent's merged preset), so a run can be
    audited and repeated from its files."""
    path = Path(directory) / "effective_parameters.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"config": dataclasses.asdict(cfg), **extra}
    path.write_text(json.dumps(body, indent=2, default=list) + "\n")
    return path


__all__ = [
    "MODES",
    "TIMINGS",
    "RANGES",
    "ServoConfig",
    "SimNodeConfig",
    "config_parameters",
    "declare_config_parameters",
    "read_config_parameters",
    "write_effective_parameters",
]

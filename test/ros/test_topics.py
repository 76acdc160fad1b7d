"""One source for each fact of the graph: topic names only in mbrl.ros.topics, and every
key of every parameter file a parameter some node really has (a misspelt or stale key would
silently configure nothing)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
from pathlib import Path

import pytest
import yaml

from mbrl.ros import topics
from mbrl.ros.graph import GRAPH, config_dir

pytestmark = pytest.mark.ros
ROS_SRC = Path(topics.__file__).parent
CREATORS = {"create_publisher", "create_subscription"}


def _literal_topics(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every publisher/subscription created with a literal global topic."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in CREATORS:
            args = node.args[1:2] + [k.value for k in node.keywords if k.arg == "topic"]
            for arg in args:
                if isinstance(arg, ast.Constant) and str(arg.value).startswith("/"):
                    found.append((node.lineno, arg.value))
                if isinstance(arg, ast.JoinedStr):  # an f-string topic name built in place
                    found.append((node.lineno, ast.unparse(arg)))
    return found


def _known_names(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant in a file that IS one of the graph's topics."""
    known = {v for k, v in vars(topics).items() if k.isupper() and isinstance(v, str)}
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in known
    ]


def test_no_node_spells_a_topic_of_its_own():
    offenders = {
        path.name: hits
        for path in sorted(ROS_SRC.glob("*.py"))
        if path.name != "topics.py" and (hits := _literal_topics(path) + _known_names(path))
    }
    assert not offenders, f"topics spelt outside mbrl.ros.topics: {offenders}"


def test_the_check_sees_a_literal_topic(tmp_path):
    bad = tmp_path / "node.py"
    bad.write_text('n.create_subscription(T, "/joint_states", cb, 10)\n'
                   'n.create_publisher(T, f"/{x}/commands", 10)\n')  # fmt: skip
    assert [name for _, name in _literal_topics(bad)] == ["/joint_states", "f'/{x}/commands'"]


def _keys(block: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in block.items():
        name = f"{prefix}{key}"
        out |= _keys(value, f"{name}.") if isinstance(value, dict) else {name}
    return out


def _parameters(spec) -> set[str]:
    """Every parameter node `spec` declares: its config's leaf fields, dotted."""
    module, cls = spec.config.split(":")
    config = getattr(importlib.import_module(module), cls)

    def leaves(c, prefix=""):
        out = set()
        for field in dataclasses.fields(c):
            default = (
                field.default_factory()
                if field.default_factory is not dataclasses.MISSING
                else None
            )
            if dataclasses.is_dataclass(default):
                out |= leaves(type(default), f"{prefix}{field.name}.")
            else:
                out.add(f"{prefix}{field.name}")
        return out

    return leaves(config) | set(spec.runtime_parameters) | {"use_sim_time"}


@pytest.mark.parametrize(
    "name", ["graph.yaml", "real_arm.yaml", *[f"{s.name}.yaml" for s in GRAPH]]
)
def test_every_parameter_file_key_is_a_parameter_of_a_node(name):
    declared = {spec.name: _parameters(spec) for spec in GRAPH}
    data = yaml.safe_load((config_dir() / name).read_text())
    for block, body in data.items():
        keys = _keys(body["ros__parameters"])
        if block == "/**":  # shared: each key must be a parameter of some node
            unknown = keys - set().union(*declared.values())
        else:
            assert block in declared, f"{name}: block {block!r} names no node of the graph"
            unknown = keys - declared[block]
        assert not unknown, f"{name}: {block}: keys no node declares: {sorted(unknown)}"


def test_the_agent_and_the_arm_are_the_same_for_every_node_that_has_them():
    # graph.yaml is the only file that sets them (test_ros_runner checks no node file does)
    shared = yaml.safe_load((config_dir() / "graph.yaml").read_text())["/**"]["ros__parameters"]
    for spec in GRAPH:
        params = _parameters(spec)
        if "agent.task" in params:
            assert "arm.joint_names" in params, spec.name
    assert {"agent", "arm", "timing"} <= set(shared)


def test_joint_state_depth_follows_the_timing():
    """Lockstep ticks on every new state of one sim: only the newest (a backlog was ticked
    through, re-stepping the sim on old states; graph reach fell to 0.2). Real time merges
    several drivers' messages: a history deep enough that none drops another's."""
    assert topics.state_qos("lockstep", True).depth == 1
    assert topics.state_qos("realtime", True).depth >= 3
    assert topics.state_qos("realtime", False).depth >= 3

"""Strict parameters (issue 16, part 4): rclpy silently ignores a parameter nobody declared,
so `max_velocty: 0.3` or a block for `mpc_controler` would run with the defaults. This module
reads the node's own command line (`--params-file`, `-p`) and refuses, naming the file, the
key and a close match: a YAML file that does not parse; a key of the node's own block that
the node does not declare; a key of a wildcard block (`/**`) that no mbrl node declares; and
a block whose name is a near miss of an mbrl node's name.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from mbrl.config import ConfigError

WILDCARDS = ("/**", "**", "/*", "*")
# Parameters rclpy declares on every node.
BUILTIN = ("use_sim_time", "start_type_description_service")
# The config dataclass of every mbrl node ("module:Class"), imported only to check a
# wildcard key this node does not declare itself.
NODE_CONFIGS = (
    "mbrl.ros.node_configs:SimNodeConfig",
    "mbrl.ros.node_configs:CollectorConfig",
    "mbrl.ros.node_configs:ModelFitterConfig",
    "mbrl.ros.experiment_core:ExperimentNodeConfig",
    "mbrl.real.bridge:FeetechBridgeConfig",
    "mbrl.ros.controller_core:MpcControllerConfig",
)
# Parameters some node declares beside its config dataclass.
EXTRA = ("mode", "tick_limit", "reset_q", "reset_cube")


def ros_args(argv: Sequence[str]) -> tuple[list[Path], dict[str, str]]:
    """(parameter files, `-p name:=value` overrides) of a command line's --ros-args part."""
    files: list[Path] = []
    params: dict[str, str] = {}
    inside = False
    i = 0
    argv = list(argv)
    while i < len(argv):
        arg = argv[i]
        if arg == "--ros-args":
            inside = True
        elif arg == "--":
            inside = False
        elif inside and arg == "--params-file" and i + 1 < len(argv):
            files.append(Path(argv[i + 1]))
            i += 1
        elif inside and arg in ("-p", "--param") and i + 1 < len(argv):
            name, _, value = argv[i + 1].partition(":=")
            params[name] = value
            i += 1
        i += 1
    return files, params


def load_parameter_file(path: Path) -> dict[str, Any]:
    """A parameter file's mapping; ConfigError names the file (and the line) otherwise."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"parameter file {path}: cannot be read ({exc})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"parameter file {path}: YAML syntax error{where}: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"parameter file {path}: expected a mapping of node names")
    return data


def check_parameter_files(argv: Sequence[str]) -> None:
    """Every --params-file of `argv` parses (run before rclpy.init, which would fail on it
    with a traceback); ConfigError names the file."""
    for path in ros_args(argv)[0]:
        load_parameter_file(path)


def _flatten(block: Any, prefix: str = "") -> list[str]:
    if not isinstance(block, dict):
        return [prefix[:-1]] if prefix else []
    out: list[str] = []
    for key, value in block.items():
        out.extend(_flatten(value, f"{prefix}{key}."))
    return out


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# node name -> index into NODE_CONFIGS of its config dataclass
DECLARING_NODES = {"sim": 0, "collector": 1, "model_fitter": 2, "experiment": 3,
                   "feetech_bridge": 4, "mpc_controller": 5}  # fmt: skip


def declared_by(node: str) -> set[str]:
    """The parameters mbrl node `node` declares (its config dataclass and extras), ROS-free."""
    from mbrl.ros.params import _fields

    module, cls = NODE_CONFIGS[DECLARING_NODES[node]].split(":")
    names = {n for n, *_ in _fields(getattr(importlib.import_module(module), cls), "")}
    extra = {"sim": ("reset_q", "reset_cube"), "mpc_controller": ("mode", "tick_limit")}
    return names | set(extra.get(node, ())) | set(BUILTIN)


def all_declared() -> set[str]:
    """Every parameter name some mbrl node declares (its config dataclass, EXTRA, BUILTIN)."""
    from mbrl.ros.params import _fields

    names = set(EXTRA) | set(BUILTIN)
    for spec in NODE_CONFIGS:
        module, cls = spec.split(":")
        names |= {n for n, *_ in _fields(getattr(importlib.import_module(module), cls), "")}
    return names


def node_names() -> tuple[str, ...]:
    """The names of the mbrl graph's nodes (mbrl.ros.graph)."""
    from mbrl.ros.graph import get_nodes

    return (*(spec.name for spec in get_nodes()), "feetech_bridge", "viewer")


def check_node_parameters(name: str, declared: Iterable[str], argv: Sequence[str]) -> None:
    """Refuse what node `name` (declaring `declared`) would silently ignore on `argv`.

    Raises ConfigError naming the file (or `-p`), the key and a close match.
    """
    declared = set(declared) | set(BUILTIN)
    files, params = ros_args(argv)
    shared: set[str] | None = None
    nodes = node_names()
    for path in files:
        for block_name, block in load_parameter_file(path).items():
            block_name = str(block_name)
            short = block_name.strip("/").rsplit("/", 1)[-1]
            if block_name in WILDCARDS:
                mine = False
            elif short == name:
                mine = True
            else:
                close = difflib.get_close_matches(short, nodes, n=1, cutoff=0.8)
                if close and short not in nodes:
                    raise ConfigError(
                        f"parameter file {path}: unknown node block {block_name!r}; did you "
                        f"mean {close[0]!r}?"
                    )
                continue  # another node's block (an mbrl node, or a driver's)
            if not isinstance(block, dict) or set(block) - {"ros__parameters"}:
                first = str(next(iter(block), "")) if isinstance(block, dict) else ""
                raise ConfigError(
                    f"parameter file {path}: block {block_name!r} must hold only "
                    f"'ros__parameters'{_suggest(first, ['ros__parameters'])}"
                )
            for key in _flatten(block.get("ros__parameters") or {}):
                if key in declared:
                    continue
                if not mine:
                    shared = all_declared() if shared is None else shared
                    if key in shared:
                        continue  # a graph-wide fact another node reads
                    known = shared
                else:
                    known = declared
                raise ConfigError(
                    f"parameter file {path}: unknown parameter {key!r} for node {name!r}"
                    f"{'' if mine else ' (or any mbrl node)'}{_suggest(key, known)}"
                )
    for key in params:
        if ":" in key:  # `-p node:name:=value` is for that node only
            node, _, key = key.rpartition(":")
            if node.strip("/").rsplit("/", 1)[-1] != name:
                continue
        if key not in declared:
            raise ConfigError(
                f"-p {key}:=...: unknown parameter {key!r} for node {name!r}"
                f"{_suggest(key, declared)}"
            )

"""The ROS 2 graph of mbrl, defined once: the launch files and the embedded runner read it.

Each entry names a node, the Python module that runs it (`python -m <module>`), the
console-script executable `ros2 launch` uses, and its parameter files in config/.
Plain Python on purpose (no rclpy import), so launch files and tools can import it anywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PACKAGE = "mbrl"
# Loaded first by every node: the arm and the agent, one description for the whole graph.
SHARED = "graph.yaml"
AGENT_NODES = ("model_fitter", "mpc_controller", "experiment")  # nodes with an `agent` block
TIMED_NODES = ("sim", "mpc_controller", "experiment")  # nodes with a `timing` parameter


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node of the graph.

    Attributes:
        name: the node name (also the `<name>:` key of its parameter files).
        module: Python module with a `main()`; the runner starts `python -m <module>`.
        executable: console script (setup.py entry point) used by `ros2 launch`.
        param_files: parameter files, relative to the package's config/ directory.
        launch_parameters: extra parameters only the launch file sets (e.g. features a
            robot_state_publisher takes over when launched with the full ROS install).
        config: "module:Class" of the frozen dataclass whose fields are the node's
            parameters (read at start; test/ros/test_topics.py checks every file key is one).
        runtime_parameters: parameters the node declares beside its config, settable while
            it runs (e.g. the controller's mode).
    """

    name: str
    module: str
    executable: str
    param_files: tuple[str, ...] = ()
    launch_parameters: tuple[tuple[str, Any], ...] = ()
    config: str = ""
    runtime_parameters: tuple[str, ...] = ()


GRAPH: tuple[NodeSpec, ...] = (
    NodeSpec(
        name="sim",
        module="mbrl.ros.sim_node",
        executable="sim_node",
        param_files=(SHARED, "sim.yaml"),
        config="mbrl.ros.node_configs:SimNodeConfig",
        runtime_parameters=("reset_q", "reset_cube"),
        launch_parameters=(("publish_robot_description", False),),
    ),
    NodeSpec(
        name="collector",
        module="mbrl.ros.collector",
        executable="collector",
        param_files=(SHARED, "collector.yaml"),
        config="mbrl.ros.node_configs:CollectorConfig",
    ),
    NodeSpec(
        name="model_fitter",
        module="mbrl.ros.model_fitter",
        executable="model_fitter",
        param_files=(SHARED, "model_fitter.yaml"),
        config="mbrl.ros.node_configs:ModelFitterConfig",
    ),
    NodeSpec(
        name="mpc_controller",
        module="mbrl.ros.mpc_controller",
        executable="mpc_controller",
        param_files=(SHARED, "mpc_controller.yaml"),
        config="mbrl.ros.controller_core:MpcControllerConfig",
        runtime_parameters=("mode", "tick_limit"),
    ),
    NodeSpec(
        name="experiment",
        module="mbrl.ros.experiment",
        executable="experiment",
        param_files=(SHARED, "experiment.yaml"),
        config="mbrl.ros.experiment_core:ExperimentNodeConfig",
    ),
)


def config_dir() -> Path:
    """The package's config/ directory: the ament share directory, else the source tree."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )

        try:
            return Path(get_package_share_directory(PACKAGE)) / "config"
        except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH not set
            pass
    except ImportError:
        pass
    return Path(__file__).resolve().parents[3] / "config"


def get_nodes(names: Iterable[str] | None = None) -> tuple[NodeSpec, ...]:
    """The specs of `names` (in graph order), or the whole graph; unknown names raise KeyError."""
    if names is None:
        return GRAPH
    wanted = list(names)
    known = {spec.name: spec for spec in GRAPH}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise KeyError(f"unknown node(s) {unknown}; the graph has {sorted(known)}")
    return tuple(spec for spec in GRAPH if spec.name in wanted)


def param_file_paths(spec: NodeSpec, directory: Path | None = None) -> list[Path]:
    """Absolute paths of a node's parameter files; a missing file raises FileNotFoundError."""
    directory = directory or config_dir()
    paths = [directory / f for f in spec.param_files]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"parameter file {path} of node '{spec.name}' not found")
    return paths

"""The launch files and the embedded runner start the same nodes with the same parameter
files. launch/launch_ros are not on PyPI: stub modules that only RECORD the Node(...) calls
are installed in sys.modules for this test, and the real launch files are imported and run
against them (the launch files' own logic is what is checked, not a mock of a running part).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

from mbrl.ros.graph import GRAPH, config_dir
from mbrl.ros.real_arm import REAL_ARM_PARAMS, real_arm_graph
from mbrl.ros.runner import GraphRunner

ROOT = Path(__file__).resolve().parents[2]


class _Recorded:
    """Stands for any launch object; keeps its constructor arguments."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


@pytest.fixture
def launch_stubs(monkeypatch):
    """Install recording stand-ins for launch and launch_ros; returns the Node calls list."""
    calls: list[_Recorded] = []

    class Node(_Recorded):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            calls.append(self)

    modules = {
        "launch": {"LaunchDescription": _Recorded},
        "launch.actions": {"DeclareLaunchArgument": _Recorded},
        "launch.conditions": {"IfCondition": _Recorded},
        "launch.substitutions": {"LaunchConfiguration": _Recorded, "PythonExpression": _Recorded},
        "launch_ros": {},
        "launch_ros.actions": {"Node": Node},
        "launch_ros.parameter_descriptions": {"ParameterValue": _Recorded},
    }
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def _run_launch(path: Path, calls: list) -> dict[str, _Recorded]:
    spec = importlib.util.spec_from_file_location(f"_launch_{path.stem.replace('.', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate_launch_description()
    return {c.kwargs["name"]: c for c in calls if c.kwargs.get("package") == "mbrl"}


def _runner_view(specs) -> dict[str, tuple[str, list[Path]]]:
    """name -> (module, parameter files) exactly as the embedded runner starts each node."""
    runner = GraphRunner(specs)
    out = {}
    for spec in specs:
        argv = runner.command(spec)
        files = [Path(argv[i + 1]).resolve() for i, a in enumerate(argv) if a == "--params-file"]
        out[spec.name] = (argv[argv.index("-m") + 1], files)
    return out


def _assert_same_graph(launched: dict[str, _Recorded], specs) -> None:
    runner = _runner_view(specs)
    assert list(launched) == list(runner)
    setup = (ROOT / "setup.py").read_text()
    for name, node in launched.items():
        module, runner_files = runner[name]
        # ros2 launch runs the console script; the runner `python -m module`: the same main().
        assert f'"{node.kwargs["executable"]} = {module}:main"' in setup
        launch_files = [Path(p).resolve() for p in node.kwargs["parameters"] if isinstance(p, str)]
        assert launch_files == runner_files, name


def test_sim_launch_starts_the_runners_graph(launch_stubs):
    launched = _run_launch(ROOT / "launch" / "manipulator_sim.launch.py", launch_stubs)
    assert {"sim", "collector", "model_fitter", "mpc_controller", "experiment"} <= set(launched)
    _assert_same_graph(launched, GRAPH)


def test_sim_launch_arguments_reach_parameters_the_nodes_declare(launch_stubs):
    """timing:=, algo:=, task:= set the graph's one switch on every node that has it, and
    every parameter the launch file sets in-line is one the node declares (a stale name,
    like the sim's old `mode`, would silently configure nothing)."""
    from test_topics import _parameters

    from mbrl.ros.graph import AGENT_NODES, TIMED_NODES

    module_calls = _run_launch(ROOT / "launch" / "manipulator_sim.launch.py", launch_stubs)
    specs = {s.name: s for s in GRAPH}
    for name, node in module_calls.items():
        inline = {
            k: v for p in node.kwargs["parameters"] if isinstance(p, dict) for k, v in p.items()
        }
        unknown = set(inline) - _parameters(specs[name])
        assert not unknown, f"{name}: launch sets undeclared {sorted(unknown)}"

        def arg(key):
            value = inline.get(key)
            return value.args[0] if isinstance(value, _Recorded) and value.args else None

        assert (arg("timing") == "timing") == (name in TIMED_NODES), name
        assert (arg("agent.algo"), arg("agent.task")) == (
            ("algo", "task") if name in AGENT_NODES else (None, None)
        ), name
    assert "with_cube" in [
        k for p in module_calls["sim"].kwargs["parameters"] if isinstance(p, dict) for k in p
    ]


def test_real_launch_starts_the_runners_real_graph_without_the_sim(launch_stubs):
    launched = _run_launch(ROOT / "launch" / "manipulator_real.launch.py", launch_stubs)
    assert "sim" not in launched
    _assert_same_graph(launched, real_arm_graph(with_experiment=True))
    # the schedule moves the arm by itself: only with experiment:=true
    assert launched["experiment"].kwargs["condition"] is not None
    assert all(n.kwargs["condition"] is None for k, n in launched.items() if k != "experiment")
    assert [s.name for s in real_arm_graph()] == ["collector", "model_fitter", "mpc_controller"]


def test_real_arm_defaults_are_conservative():
    params = yaml.safe_load((config_dir() / REAL_ARM_PARAMS).read_text())
    ctrl = params["mpc_controller"]["ros__parameters"]
    assert ctrl["start_enabled"] is False
    assert 0 < ctrl["max_velocity"] <= 0.5  # rad/s
    # one arm for every node (the fitter's model and the controller's actions agree on it)
    shared = params["/**"]["ros__parameters"]
    assert shared["arm"]["max_increment"] * 20.0 <= 1.0  # rad/s before the speed limit
    assert all("arm" not in block["ros__parameters"] for k, block in params.items() if k != "/**")
    experiment = params["experiment"]["ros__parameters"]
    assert shared["timing"] == "realtime" and experiment["reset_service"] == ""
    # every block names a node of the real graph (a typo would silently configure nothing)
    assert set(params) - {"/**"} <= {s.name for s in real_arm_graph(with_experiment=True)}

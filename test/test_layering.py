"""The layer rules of DESIGN.md, enforced: only mbrl.ros imports rclpy/ROS messages, only
mbrl.sim imports pybullet. Each module is imported in a fresh interpreter with the
forbidden packages made unimportable, so an indirect import is caught too."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import mbrl

SRC = Path(mbrl.__file__).parent


def _all_modules() -> list[str]:
    names = ["mbrl"]
    for info in pkgutil.walk_packages([str(SRC)], prefix="mbrl."):
        names.append(info.name)
    return sorted(names)


# One interpreter per layer imports the heavy third-party libraries its layer may use (never
# an mbrl module, never a blocked package), installs the layer's blocker, then imports each
# of its modules in turn. Every module of a layer has the same blocked packages, so a module
# that an earlier one already imported was checked under the same rule; a violation is
# raised while importing the first module whose import chain reaches a blocked package, and
# a module that failed is re-executed (and fails again) by everything that imports it.
ZYGOTE = """
import importlib, importlib.abc, json, os, sys, traceback
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
assert not any(m == "mbrl" or m.startswith("mbrl.") for m in sys.modules)
loaded = {m.split('.')[0] for m in sys.modules}
class Block(importlib.abc.MetaPathFinder):
    def __init__(self, roots): self.roots, self.mod = roots, None
    def find_spec(self, name, path, target=None):
        root = name.split('.')[0]
        if root in self.roots or (root.endswith('_msgs') and 'rclpy' in self.roots):
            raise ImportError(f'layer violation: {name} imported while importing {self.mod}')
        return None
results, block = {}, None
for line in sys.stdin:
    mod, blocked = json.loads(line)
    preloaded = sorted(loaded & set(blocked))
    assert not preloaded, f'{preloaded} preloaded, so not checked for {mod}'
    if block is None:
        block = Block(set(blocked))
        sys.meta_path.insert(0, block)
    assert block.roots == set(blocked), f'{mod}: one blocked set per interpreter'
    block.mod = mod
    try:
        importlib.import_module(mod)
        results[mod] = [0, ""]
    except BaseException:
        results[mod] = [1, traceback.format_exc()[-4000:]]
print(json.dumps(results))
"""


def _blocked_for(module: str) -> set[str]:
    blocked = set()
    if not module.startswith("mbrl.ros"):
        blocked |= {"rclpy", "rosidl_runtime_py", "launch", "launch_ros"}
    if not module.startswith("mbrl.sim") and not module.startswith("mbrl.ros"):
        blocked |= {"pybullet", "pybullet_data"}
    return blocked


MODULES = [m for m in _all_modules() if m != "mbrl.__main__"]


# What each zygote imports first: the libraries every layer may use, then what only the
# layer that may import it gets (a preloaded blocked package would escape the check: the
# zygote refuses that).
COMMON = (
    "numpy",
    "scipy",
    "scipy.linalg",
    "torch",
    "gymnasium",
    "yaml",
    "matplotlib",
    "matplotlib.pyplot",
    "pytorch_kinematics",
    "sklearn.mixture",
    "lz4.frame",
    "mcap",
)
MESSAGES = (
    "sensor_msgs.msg",
    "std_msgs.msg",
    "trajectory_msgs.msg",
    "diagnostic_msgs.msg",
    "visualization_msgs.msg",
    "nav_msgs.msg",
    "geometry_msgs.msg",
    "std_srvs.srv",
)
PRELOAD = {
    "mbrl.ros": (*COMMON, "pybullet", "rclpy", "rclpy.node", "rclpy.executors", *MESSAGES),
    "mbrl.sim": (*COMMON, "pybullet"),
    "": COMMON,
}


def _zygote_of(module: str) -> str:
    return next(k for k in PRELOAD if module == k or module.startswith(k + ".") or not k)


@pytest.fixture(scope="module")
def imports() -> dict[str, list]:
    """module -> [exit code, traceback] of importing it with its blocked packages."""
    results: dict[str, list] = {}
    running = []
    for zygote, preload in PRELOAD.items():  # the layers' interpreters run side by side
        mods = [m for m in MODULES if _zygote_of(m) == zygote]
        lines = "".join(json.dumps([m, sorted(_blocked_for(m))]) + "\n" for m in mods)
        proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE, *preload], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        running.append((proc, lines))
    for proc, lines in running:
        out, err = proc.communicate(lines, timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.update(json.loads(out.strip().splitlines()[-1]))
    return results


def test_every_module_is_found():
    assert "mbrl.config" in MODULES and "mbrl.cli" in MODULES


def test_the_check_catches_an_indirect_import(tmp_path):
    """A module that imports a blocked package through another module fails the check."""
    pkg = tmp_path / "fake_layer"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("import pybullet\n")
    (pkg / "high.py").write_text("from fake_layer import low\n")
    line = json.dumps(["fake_layer.high", ["pybullet"]]) + "\n"
    result = subprocess.run(
        [sys.executable, "-c", ZYGOTE], input=line, capture_output=True, text=True,
        timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    code, err = json.loads(result.stdout.strip().splitlines()[-1])["fake_layer.high"]
    assert code == 1 and "layer violation: pybullet imported while importing fake_layer.high" in err


def test_a_preloaded_blocked_package_is_refused_not_passed():
    """A zygote that imported pybullet first could not see mbrl.config import it."""
    line = json.dumps(["mbrl.config", ["pybullet"]]) + "\n"
    result = subprocess.run(
        [sys.executable, "-c", ZYGOTE, "pybullet"], input=line, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "['pybullet'] preloaded" in result.stderr


@pytest.mark.parametrize("module", MODULES)
def test_module_respects_layers(module, imports):
    code, err = imports[module]
    assert code == 0, err


def test_the_sim_and_the_collector_start_without_torch():
    """Neither node runs a model: importing them must not load torch (or matplotlib), which
    is 3-4 s of every start of each (the graph starts them in every learning run)."""
    code = (
        "import sys, mbrl.ros.sim_node, mbrl.ros.collector\n"
        "from mbrl.ros.strict_params import all_declared\n"
        "all_declared()  # what each node checks a `/**` parameter block against\n"
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout

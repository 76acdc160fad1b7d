"""The layer rules of DESIGN.md, enforced: only mbrl.ros imports rclpy/ROS messages, only
mbrl.sim imports pybullet. Each module is imported in a fresh interpreter with the
forbidden packages made unimportable, so an indirect import is caught too."""

from __future__ import annotations

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


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def __init__(self, roots): self.roots = roots
    def find_spec(self, name, path, target=None):
        root = name.split('.')[0]
        if root in self.roots or (root.endswith('_msgs') and 'rclpy' in self.roots):
            raise ImportError(f'layer violation: {{name}} imported while importing {mod}')
        return None
sys.meta_path.insert(0, Block({blocked!r}))
import importlib; importlib.import_module({mod!r})
"""


def _blocked_for(module: str) -> set[str]:
    blocked = set()
    if not module.startswith("mbrl.ros"):
        blocked |= {"rclpy", "rosidl_runtime_py", "launch", "launch_ros"}
    if not module.startswith("mbrl.sim") and not module.startswith("mbrl.ros"):
        blocked |= {"pybullet", "pybullet_data"}
    return blocked


MODULES = [m for m in _all_modules() if m != "mbrl.__main__"]


def test_every_module_is_found():
    assert "mbrl.config" in MODULES and "mbrl.cli" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_module_respects_layers(module):
    blocked = _blocked_for(module)
    code = BLOCKER.format(blocked=sorted(blocked), mod=module)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]

"""`mbrl demo` end to end: the runner, the sim node and the scripted motion over DDS."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.ros


def test_demo_in_lockstep_reaches_its_targets_and_rejects_bad_commands():
    result = subprocess.run(
        [sys.executable, "-m", "mbrl", "demo", "--scripted", "--mode", "lockstep"]
        + ["--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "/joint_states names ['shoulder_pan', 'shoulder_lift'" in out
    errors = dict(re.findall(r"\n  ([a-z ]+?)  \(.*\n    joints .* max err ([0-9.]+) rad", out))
    assert set(errors) == {"reach left", "reach right", "beyond limits", "trajectory end"}, out
    assert all(float(e) < 0.01 for e in errors.values()), errors
    assert "command has 2 values; expected 5 joints" in out
    assert "[runner] stopped: {'sim': 0}" in out

"""LeRobot calibration files -> joint angles, limits, the gripper scale, and the arm file.

The reference is LeRobot's own formula for a body joint in degrees,
deg = (ticks - (range_min + range_max) / 2) * 360 / 4095, and for the gripper
0 (closed, range_min) .. 100 (open, range_max) (lerobot motors_bus.py `_normalize`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mbrl.cli import main as mbrl_main
from mbrl.config import ConfigError, load_arm_config, load_yaml
from mbrl.real.calibration import SO101_MOTORS, load_lerobot_calibration

# A calibration as `lerobot-calibrate` writes it for an SO-101 follower (values of a real
# arm's kind: travel of ~200-230 degrees, wrist_roll fixed to the full turn).
CALIBRATION = {
    "shoulder_pan": {
        "id": 1,
        "drive_mode": 0,
        "homing_offset": -1470,
        "range_min": 758,
        "range_max": 3292,
    },
    "shoulder_lift": {
        "id": 2,
        "drive_mode": 0,
        "homing_offset": 157,
        "range_min": 612,
        "range_max": 3401,
    },
    "elbow_flex": {
        "id": 3,
        "drive_mode": 0,
        "homing_offset": 1105,
        "range_min": 889,
        "range_max": 3053,
    },
    "wrist_flex": {
        "id": 4,
        "drive_mode": 0,
        "homing_offset": -1895,
        "range_min": 854,
        "range_max": 3180,
    },
    "wrist_roll": {
        "id": 5,
        "drive_mode": 0,
        "homing_offset": 250,
        "range_min": 0,
        "range_max": 4095,
    },
    "gripper": {
        "id": 6,
        "drive_mode": 0,
        "homing_offset": 1312,
        "range_min": 2024,
        "range_max": 3458,
    },
}


def lerobot_degrees(ticks, range_min, range_max):
    return (ticks - (range_min + range_max) / 2) * 360 / 4095


def lerobot_gripper(ticks, range_min, range_max):
    bounded = min(range_max, max(range_min, ticks))
    return (bounded - range_min) / (range_max - range_min) * 100


@pytest.fixture
def calibration_file(tmp_path):
    path = tmp_path / "my_so101.json"
    path.write_text(json.dumps(CALIBRATION, indent=4))
    return path


def test_ticks_map_to_lerobots_angles_on_every_motor(calibration_file):
    cal = load_lerobot_calibration(calibration_file)
    assert cal.names == SO101_MOTORS
    for name, entry in CALIBRATION.items():
        motor = cal.motor(name)
        lo, hi = entry["range_min"], entry["range_max"]
        ticks = np.array([lo, lo + 1, (lo + hi) // 2, 2048, hi - 7, hi])
        expected_deg = np.array([lerobot_degrees(t, lo, hi) for t in ticks])
        np.testing.assert_allclose(np.degrees(motor.ticks_to_rad(ticks)), expected_deg, atol=1e-9)
        # and back: an angle goes to the tick that reads as that angle
        np.testing.assert_array_equal(motor.rad_to_ticks(motor.ticks_to_rad(ticks)), ticks)
        low, high = motor.limits
        assert math.degrees(low) == pytest.approx(lerobot_degrees(lo, lo, hi))
        assert math.degrees(high) == pytest.approx(lerobot_degrees(hi, lo, hi))
    gripper = cal.motor("gripper")
    for t in (2000, 2024, 2500, 3000, 3458, 3600):  # outside the range: clamped, as LeRobot does
        assert gripper.ticks_to_percent(t) == pytest.approx(lerobot_gripper(t, 2024, 3458))
    assert gripper.percent_to_ticks(0) == 2024  # closed
    assert gripper.percent_to_ticks(100) == 3458  # open


def test_drive_mode_inverts_and_offset_shifts_the_joint(tmp_path):
    data = json.loads(json.dumps(CALIBRATION))
    data["elbow_flex"]["drive_mode"] = 1
    data["elbow_flex"]["offset"] = 0.25
    data["gripper"]["drive_mode"] = 1
    path = tmp_path / "inverted.json"
    path.write_text(json.dumps(data))
    cal = load_lerobot_calibration(path)
    elbow, plain = cal.motor("elbow_flex"), load_lerobot_calibration(path).motor("shoulder_pan")
    mid = (889 + 3053) / 2
    assert float(elbow.ticks_to_rad(mid + 100)) == pytest.approx(
        0.25 - math.radians(lerobot_degrees(mid + 100, 889, 3053))
    )
    assert int(elbow.rad_to_ticks(0.25)) == round(mid)
    assert float(plain.ticks_to_rad(2025)) == pytest.approx(0.0)
    assert float(cal.motor("gripper").ticks_to_percent(2024)) == pytest.approx(100.0)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("wrist_flex"), "motor(s) ['wrist_flex'] missing"),
        (lambda d: d["elbow_flex"].pop("range_max"), "motor 'elbow_flex': missing 'range_max'"),
        (lambda d: d["gripper"].update(range_min=3458), "motor 'gripper': need 0 <= range_min"),
        (lambda d: d["shoulder_lift"].update(id="2"), "motor 'shoulder_lift': id must be an int"),
        (lambda d: d["wrist_roll"].update(id=1), "share bus id(s) [1]"),
        (lambda d: d["shoulder_pan"].update(homing_offset=5000), "motor 'shoulder_pan': homing"),
        (lambda d: d.update(gripper=[1, 2]), "motor 'gripper': expected an object"),
    ],
)
def test_bad_calibration_names_the_file_and_motor(tmp_path, mutate, message):
    data = json.loads(json.dumps(CALIBRATION))
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as err:
        load_lerobot_calibration(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_unreadable_or_non_json_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read calibration file .*absent.json"):
        load_lerobot_calibration(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"shoulder_pan": {"id": 1,')
    with pytest.raises(ConfigError, match=f"{broken} is not valid JSON"):
        load_lerobot_calibration(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ConfigError, match=f"{listed}: a LeRobot calibration is a JSON object"):
        load_lerobot_calibration(listed)


def test_cli_writes_an_arm_file_the_config_loader_reads(calibration_file, tmp_path, capsys):
    out = tmp_path / "arm_myso101.yaml"
    argv = ["arm", "import-calibration", str(calibration_file), "-o", str(out)]
    assert mbrl_main([*argv, "--names", "ros2_control"]) == 0
    arm = load_arm_config(out)
    assert arm.driver_names == tuple(f"{n}_joint" for n in arm.joint_names)
    assert arm.driver_gripper_names == ("gripper_joint",)
    cal = load_lerobot_calibration(calibration_file)
    for i, name in enumerate(arm.joint_names):
        lo, hi = cal.motor(name).limits
        # calibrated travel, inside the URDF's limits (the bundled URDF's are the narrower)
        assert lo - 1e-6 <= arm.position_lower[i] < arm.position_upper[i] <= hi + 1e-6
    assert arm.position_lower[2] == pytest.approx(cal.motor("elbow_flex").limits[0], abs=1e-6)
    feetech = load_yaml(out)["feetech"]
    assert feetech["motors"]["gripper"]["id"] == 6
    assert feetech["motors"]["shoulder_pan"]["zero_ticks"] == pytest.approx((758 + 3292) / 2)
    # an existing file is not overwritten silently; a missing motor names the file and motor
    assert mbrl_main(argv) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    data = dict(CALIBRATION)
    data.pop("gripper")
    short = tmp_path / "no_gripper.json"
    short.write_text(json.dumps(data))
    assert mbrl_main(["arm", "import-calibration", str(short), "-o", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err
    assert str(short) in err and "'gripper'" in err

"""The arm description's joint-name map (ours <-> the driver's): defaults, validation."""

from __future__ import annotations

import pytest

from mbrl.config import ArmConfig, ConfigError

JOINTS = ArmConfig().joint_names


def test_default_is_no_map():
    arm = ArmConfig()
    assert arm.driver_names == JOINTS and arm.driver_gripper_names == ("gripper",)
    assert arm.from_driver() == {}


def test_map_translates_driver_names_to_ours():
    arm = ArmConfig(
        driver_joint_names=tuple(f"{n}_joint" for n in JOINTS),
        driver_gripper_joints=("jaw_joint",),
    )
    mapping = arm.from_driver()
    assert [mapping[f"{n}_joint"] for n in JOINTS] == list(JOINTS)
    assert mapping["jaw_joint"] == "gripper"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"driver_joint_names": ("a", "b")}, "driver_joint_names has 2 entries; expected one"),
        ({"driver_gripper_joints": ("g1", "g2")}, "driver_gripper_joints has 2 entries"),
        ({"driver_joint_names": ("a", "b", "c", "d", "a")}, "driver joint names have duplicates"),
        (
            {"driver_joint_names": ("a", "b", "c", "d", "e"), "driver_gripper_joints": ("e",)},
            "duplicates",
        ),
    ],
)
def test_bad_map_is_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ArmConfig(**kwargs)

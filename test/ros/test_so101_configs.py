"""config/arm_so101_ros2_control.yaml read the way the nodes read their parameters (rcl
parameter files, in the order the real-arm graph gives them, into the config dataclasses),
and the real-arm graph's SO-101 drivers: ros2_control and the feetech_bridge node."""

from __future__ import annotations

import pytest
import rclpy
import yaml

from mbrl.config import ArmConfig
from mbrl.ros.collector import CollectorConfig
from mbrl.ros.controller_core import MpcControllerConfig
from mbrl.ros.experiment_core import ExperimentNodeConfig
from mbrl.ros.graph import config_dir, param_file_paths
from mbrl.ros.params import declare_config_parameters, read_config_parameters
from mbrl.ros.real_arm import BRIDGE, ROS2_CONTROL_PARAMS, arm_file_overrides, real_arm_graph

pytestmark = pytest.mark.ros
DRIVER = tuple(f"{n}_joint" for n in ArmConfig().joint_names)


def _node_config(spec, cls):
    files = [str(p) for p in param_file_paths(spec)]
    node = rclpy.create_node(
        spec.name, cli_args=["--ros-args", *[a for f in files for a in ("--params-file", f)]]
    )
    try:
        declare_config_parameters(node, cls)
        return read_config_parameters(node, cls)
    finally:
        node.destroy_node()


def test_ros2_control_file_configures_every_node_for_the_driver(ros_context):
    specs = {s.name: s for s in real_arm_graph(with_experiment=True, driver="ros2_control")}
    assert all(s.param_files[-1] == ROS2_CONTROL_PARAMS for s in specs.values())
    ctrl = _node_config(specs["mpc_controller"], MpcControllerConfig)
    assert ctrl.arm.driver_names == DRIVER
    assert ctrl.arm.from_driver()["gripper_joint"] == "gripper"
    assert ctrl.arm.control_rate_hz == 20.0
    assert ctrl.controller_name == "forward_position_controller"
    assert ctrl.command_interface == "position"
    assert ctrl.start_enabled is False  # real_arm.yaml still applies underneath
    experiment = _node_config(specs["experiment"], ExperimentNodeConfig)
    assert experiment.arm.driver_names == DRIVER and experiment.arm.control_rate_hz == 20.0
    collector = _node_config(specs["collector"], CollectorConfig)
    assert collector.driver_joints == DRIVER and collector.joints == ArmConfig().joint_names

    # The driver's side of the same file: 50 Hz states, a forward_position_controller whose
    # command order is the controller's joint order.
    params = yaml.safe_load((config_dir() / ROS2_CONTROL_PARAMS).read_text())
    manager = params["controller_manager"]["ros__parameters"]
    assert manager["update_rate"] == 50
    assert (
        manager["forward_position_controller"]["type"]
        == "position_controllers/JointGroupPositionController"
    )
    forward = params["forward_position_controller"]["ros__parameters"]
    assert tuple(forward["joints"]) == ctrl.arm.driver_names
    assert forward["interface_name"] == "position"


def test_bridge_driver_and_arm_file_overrides(tmp_path):
    specs = real_arm_graph(driver="bridge")
    assert specs[0] == BRIDGE and [s.name for s in specs[1:]] == [s.name for s in real_arm_graph()]
    assert param_file_paths(BRIDGE)  # the shipped config/feetech_bridge.yaml exists
    arm_file = tmp_path / "arm.yaml"
    arm_file.write_text(
        yaml.safe_dump(
            {
                "arm": {
                    "position_lower": [-1.0] * 5,
                    "position_upper": [1.0] * 5,
                    "driver_joint_names": list(DRIVER),
                }
            }
        )
    )
    overrides = arm_file_overrides(str(arm_file), real_arm_graph(True, "bridge"))
    assert overrides["feetech_bridge"] == {"arm_file": str(arm_file)}
    assert overrides["mpc_controller"]["arm.position_upper"] == [1.0] * 5
    assert overrides["experiment"]["arm.driver_joint_names"] == list(DRIVER)
    assert overrides["collector"] == {"driver_joints": list(DRIVER)}
    with pytest.raises(ValueError, match="driver must be one of"):
        real_arm_graph(driver="dynamixel")

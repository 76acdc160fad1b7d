"""Launch the mbrl graph against a real ros2_control arm: `ros2 launch mbrl
manipulator_real.launch.py`.

Start the arm's own bringup first (ros2_control_node with joint_state_broadcaster and
forward_position_controller or joint_trajectory_controller). The node list comes from
mbrl.ros.real_arm.real_arm_graph (the embedded runner's `python -m mbrl.ros.real_arm` starts
the same nodes with the same parameter files): every node but the sim, each with its own
file plus config/real_arm.yaml. The controller starts DISABLED; see docs/real_arm.md.

Arguments: command_interface (position | trajectory), experiment (false: also run the
learning schedule, which enables the controller itself), rviz (false), use_sim_time (false).
"""

from __future__ import annotations

import os
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from mbrl.ros.graph import PACKAGE, param_file_paths
from mbrl.ros.real_arm import OPT_IN, real_arm_graph


def generate_launch_description() -> LaunchDescription:
    config = os.path.join(get_package_share_directory(PACKAGE), "config")
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    arguments = [
        DeclareLaunchArgument(
            "command_interface",
            default_value="position",
            choices=["position", "trajectory"],
            description="forward_position_controller commands or joint_trajectory_controller",
        ),
        DeclareLaunchArgument(
            "experiment",
            default_value="false",
            description="also run the learning schedule (it enables the controller)",
        ),
        DeclareLaunchArgument("rviz", default_value="false", description="start rviz2"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="all nodes follow /clock"
        ),
    ]
    nodes = []
    for spec in real_arm_graph(with_experiment=True):
        parameters: list = [str(p) for p in param_file_paths(spec, Path(config))]
        extra = {"use_sim_time": use_sim_time, **dict(spec.launch_parameters)}
        if spec.name == "mpc_controller":
            extra["command_interface"] = LaunchConfiguration("command_interface")
        parameters.append(extra)
        condition = IfCondition(LaunchConfiguration("experiment")) if spec.name in OPT_IN else None
        nodes.append(
            Node(
                package=PACKAGE,
                executable=spec.executable,
                name=spec.name,
                output="screen",
                parameters=parameters,
                condition=condition,
            )
        )
    nodes.append(
        Node(
            package="rviz2",
            executable="rviz2",
            output="screen",
            arguments=["-d", os.path.join(config, "mbrl.rviz")],
            parameters=[{"use_sim_time": use_sim_time}],
            condition=IfCondition(LaunchConfiguration("rviz")),
        )
    )
    return LaunchDescription(arguments + nodes)

"""Launch the simulated arm and the mbrl graph: `ros2 launch mbrl manipulator_sim.launch.py`.

The node list comes from mbrl.ros.graph (the same list the embedded runner of `make demo`
starts, with the same parameter files). With a full ROS 2 install this adds
robot_state_publisher (TF for rviz) and, with `rviz:=true`, rviz2.

Arguments: rviz (false), use_sim_time (false), timing (realtime | lockstep: the graph's
one timing switch), algo (the agent: mpc | alg1 | alg2 | policy), task (reach | push; push
loads the cube into the sim).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from mbrl.agents.registry import AGENTS
from mbrl.costs.tasks import TASKS
from mbrl.ros.graph import AGENT_NODES, GRAPH, PACKAGE, SHARED, TIMED_NODES, param_file_paths


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    config = os.path.join(share, "config")
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    # The URDF the sim loads (the graph's arm, graph.yaml; package://mbrl/<file> lives in
    # share/urdf).
    with open(os.path.join(config, SHARED), encoding="utf-8") as f:
        urdf = yaml.safe_load(f)["/**"]["ros__parameters"]["arm"]["urdf"]
    urdf_file = os.path.join(share, "urdf", urdf.removeprefix(f"package://{PACKAGE}/"))
    with open(urdf_file, encoding="utf-8") as f:
        urdf_text = f.read()

    arguments = [
        DeclareLaunchArgument("rviz", default_value="false", description="start rviz2"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="all nodes follow /clock"
        ),
        DeclareLaunchArgument(
            "timing",
            default_value="realtime",
            choices=["realtime", "lockstep"],
            description="wall-clock control ticks, or one sim period per command (fast)",
        ),
        DeclareLaunchArgument(
            "algo", default_value="mpc", choices=list(AGENTS), description="the agent"
        ),
        DeclareLaunchArgument(
            "task", default_value="reach", choices=list(TASKS), description="the task"
        ),
    ]
    task = LaunchConfiguration("task")
    nodes = []
    for spec in GRAPH:
        parameters: list = [str(p) for p in param_file_paths(spec, Path(config))]
        extra = {"use_sim_time": use_sim_time, **dict(spec.launch_parameters)}
        if spec.name in TIMED_NODES:
            extra["timing"] = LaunchConfiguration("timing")
        if spec.name in AGENT_NODES:
            extra["agent.algo"] = LaunchConfiguration("algo")
            extra["agent.task"] = task
        if spec.name == "sim":
            push = PythonExpression(["'", task, "' == 'push'"])
            extra["with_cube"] = ParameterValue(push, value_type=bool)
        parameters.append(extra)
        nodes.append(
            Node(
                package=PACKAGE,
                executable=spec.executable,
                name=spec.name,
                output="screen",
                parameters=parameters,
            )
        )
    # robot_state_publisher publishes /robot_description and TF from /joint_states; the sim's
    # own /robot_description is switched off by its launch_parameters above.
    nodes.append(
        Node(
            package="robot_state_publisher",
            executable="robot_state_publisher",
            output="screen",
            parameters=[
                {
                    "robot_description": ParameterValue(urdf_text, value_type=str),
                    "use_sim_time": use_sim_time,
                }
            ],
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

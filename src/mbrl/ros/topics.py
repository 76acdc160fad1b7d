"""Every topic name and QoS profile of the mbrl graph, defined once: nodes, the viewer, the
launch files and the tests import them from here (test/ros/test_topics.py checks no node
spells a topic itself). Names follow ros2_control where the arm's driver is involved.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

# -- the arm (sim node or the real arm's ros2_control stack) --------------------------------
JOINT_STATES = "/joint_states"
ROBOT_DESCRIPTION = "/robot_description"
CLOCK = "/clock"
OBJECT_POSE = "/cube_pose"  # geometry_msgs/PoseStamped of the pushed cube (push task)


def command_topic(controller_name: str) -> str:
    """Position commands of a forward_position_controller (std_msgs/Float64MultiArray)."""
    return f"/{controller_name}/commands"


def trajectory_topic(controller_name: str) -> str:
    """Trajectories of a joint_trajectory_controller (trajectory_msgs/JointTrajectory)."""
    return f"/{controller_name}/joint_trajectory"


def plan_topic(controller_node: str = "mpc_controller") -> str:
    """The controller's planned end-effector path for rviz (its private ~/plan)."""
    return f"/{controller_node}/plan"


# -- mbrl's own topics ------------------------------------------------------------------
GOAL = "/mbrl/goal"
EPISODES = "/mbrl/episodes"
MODEL = "/mbrl/model"
EPISODE_CONTROL = "/mbrl/episode_control"
STATUS = "/mbrl/status"
DIAGNOSTICS = "/diagnostics"

# Commands and states: reliable, as ros2_control's controllers and broadcaster.
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Publisher history of the streams the collector records (/joint_states, commands,
# /cube_pose). In lockstep a tick takes milliseconds, so a collector that is busy for 50 ms
# would lose samples a depth-10 writer already overwrote: the history then covers a 10 s
# episode at 20 Hz. In real time a backlog would only feed a driver stale commands.
LOCKSTEP_DEPTH = 200


def stream_depth(timing: str) -> int:
    """History depth of a recorded stream's publisher under `timing` (lockstep|realtime)."""
    return 10 if timing == "realtime" else LOCKSTEP_DEPTH


def command_qos(timing: str) -> QoSProfile:
    """COMMAND_QOS with the history of stream_depth(timing)."""
    return QoSProfile(depth=stream_depth(timing), reliability=ReliabilityPolicy.RELIABLE)


# The controller's joint states. Several publishers may share the topic (an arm driver and a
# gripper driver): a keep-last reader's history is shared by all of them, so depth 1 would drop
# one publisher's message behind another's. Depth 10 covers a few publishers; the watchdog
# keeps each joint's newest reading. A real-time tick driven by states takes at most one per
# period (AlignedTicks) and the queue drains between ticks, so no tick acts on a backlog.
STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# ...but in lockstep every new state starts a tick, and one sim publishes them: a backlog
# there would be ticked through state by state, each tick stepping the sim again on an old
# state (graph reach fell to 0.2 with depth 10). The newest only.
LOCKSTEP_STATE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


def state_qos(timing: str, ticks_on_states: bool) -> QoSProfile:
    """The controller's /joint_states QoS under `timing` and its trigger."""
    return LOCKSTEP_STATE_QOS if timing == "lockstep" and ticks_on_states else STATE_QOS


OBJECT_QOS = qos_profile_sensor_data
# Late joiners get the latest value: the goal, the URDF, each node's status.
LATCHED_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
GOAL_QOS = LATCHED_QOS
# One latched status message per node (keyed by node name in the message): depth covers the
# graph's nodes so a late joiner gets each one's latest.
STATUS_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
# Every finished episode is kept for late joiners (a fitter started after the data was
# recorded, or restarted): reliable, transient-local, keep-last 1000 episodes.
EPISODES_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1000,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
# Only the latest model matters; a controller started later (anywhere) still receives it.
MODEL_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
# Episode start/end events must not be lost: reliable, volatile, depth 10.
EPISODE_CONTROL_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

"""Conversion between ROS 2 messages and numpy arrays, with the validation a real arm needs.

Joint data is always matched by joint NAME, never by position in a message. Every parser
raises ValueError whose message names what was wrong and what was expected.
Shapes use the glossary of mbrl.config: nj controlled joints, T trajectory points.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import PointStamped, PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint


def time_msg(seconds: float) -> Time:
    """A builtin_interfaces/Time for `seconds` (>= 0) since the clock's epoch."""
    nanos = int(round(seconds * 1e9))
    return Time(sec=nanos // 1_000_000_000, nanosec=nanos % 1_000_000_000)


def duration_msg(seconds: float) -> Duration:
    """A builtin_interfaces/Duration of `seconds` (>= 0)."""
    nanos = int(round(seconds * 1e9))
    return Duration(sec=nanos // 1_000_000_000, nanosec=nanos % 1_000_000_000)


def to_seconds(stamp: Time | Duration) -> float:
    """Seconds of a builtin_interfaces Time or Duration."""
    return stamp.sec + stamp.nanosec * 1e-9


def _finite_array(values: Sequence[float], what: str, names: Sequence[str]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    bad = ~np.isfinite(array)
    if bad.any():
        culprits = [names[i] for i in np.flatnonzero(bad)] if len(names) == len(array) else []
        raise ValueError(f"{what} contains NaN/Inf for {culprits}: {array.tolist()}")
    return array


def joint_state_msg(
    names: Sequence[str],
    position: np.ndarray,
    velocity: np.ndarray | None = None,
    stamp: Time | None = None,
) -> JointState:
    """A sensor_msgs/JointState for joints `names`.

    Args:
        names: joint names, length n.
        position: (n,) rad.
        velocity: (n,) rad/s, or None to leave the field empty.
        stamp: header stamp; None leaves it zero.
    """
    msg = JointState()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.name = list(names)
    msg.position = [float(v) for v in position]
    if velocity is not None:
        msg.velocity = [float(v) for v in velocity]
    return msg


def rename_joints(msg: JointState, from_driver: Mapping[str, str]) -> JointState:
    """`msg` with the driver's joint names replaced by ours, in place (ArmConfig.from_driver();
    names not in the map stay as they are), so that every later lookup uses our names."""
    if from_driver:
        msg.name = [from_driver.get(n, n) for n in msg.name]
    return msg


def joint_positions_by_name(msg: JointState, names: Sequence[str]) -> np.ndarray:
    """Positions of joints `names`, looked up by name in a JointState.

    Returns:
        (nj,) rad, in the order of `names`.
    Raises:
        ValueError naming a missing joint, a name/position length mismatch, or NaN/Inf.
    """
    return _by_name(msg, names, "position")


def joint_velocities_by_name(msg: JointState, names: Sequence[str]) -> np.ndarray:
    """Velocities of joints `names`, looked up by name in a JointState.

    Returns:
        (nj,) rad/s, in the order of `names`.
    Raises:
        ValueError as joint_positions_by_name (an empty velocity field is a length mismatch).
    """
    return _by_name(msg, names, "velocity")


def _by_name(msg: JointState, names: Sequence[str], field: str) -> np.ndarray:
    values = getattr(msg, field)
    if len(values) != len(msg.name):
        raise ValueError(f"joint_states has {len(msg.name)} names but {len(values)} {field} values")
    index = {name: i for i, name in enumerate(msg.name)}
    missing = [n for n in names if n not in index]
    if missing:
        raise ValueError(
            f"joint(s) {missing} missing from joint_states; expected {len(names)} joints: "
            f"{list(names)}, got {list(msg.name)}"
        )
    return _finite_array([values[index[n]] for n in names], f"joint_states {field}", names)


def float64_multiarray(values: Sequence[float], label: str = "") -> Float64MultiArray:
    """A std_msgs/Float64MultiArray holding the 1-D vector `values` (layout: one dimension)."""
    msg = Float64MultiArray()
    values = [float(v) for v in values]
    msg.layout.dim = [MultiArrayDimension(label=label, size=len(values), stride=len(values))]
    msg.data = values
    return msg


def command_to_array(msg: Float64MultiArray, joints: Sequence[str]) -> np.ndarray:
    """Validate a forward_position_controller command against the controller's joints.

    Args:
        msg: data holds one position per joint, in the order of `joints` (as
            ros2_control's forward_command_controller expects).
        joints: the controller's joint names, length nj.
    Returns:
        (nj,) rad.
    Raises:
        ValueError on wrong length or NaN/Inf, naming the expected joints.
    """
    if len(msg.data) != len(joints):
        raise ValueError(
            f"command has {len(msg.data)} values; expected {len(joints)} joints {list(joints)}"
        )
    return _finite_array(msg.data, "command", joints)


@dataclasses.dataclass(frozen=True)
class TrajectoryArrays:
    """A validated JointTrajectory as arrays.

    Attributes:
        joint_names: the trajectory's joints (a subset of the controller's), length n.
        times: (T,) time_from_start of each point, s, strictly increasing, >= 0.
        positions: (T, n) rad.
        velocities: (T, n) rad/s, or None when not every point gives velocities.
    """

    joint_names: tuple[str, ...]
    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray | None


MAX_TRAJECTORY_S = 600.0  # s: the longest trajectory accepted (10 min of motion)


def trajectory_to_arrays(msg: JointTrajectory, joints: Sequence[str]) -> TrajectoryArrays:
    """Validate a trajectory_msgs/JointTrajectory against the controller's joints.

    Raises:
        ValueError if it has no points, names unknown or duplicate joints, has a point whose
        positions/velocities length differs from joint_names, NaN/Inf, or points that are
        not strictly ordered in time_from_start, or longer than MAX_TRAJECTORY_S.
    """
    names = tuple(msg.joint_names)
    unknown = [n for n in names if n not in joints]
    if not names or unknown:
        raise ValueError(
            f"trajectory names unknown joint(s) {unknown or '(none given)'}; "
            f"expected a subset of {list(joints)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"trajectory joint_names has duplicates: {list(names)}")
    if not msg.points:
        raise ValueError("trajectory has no points")
    times, positions, velocities = [], [], []
    for k, point in enumerate(msg.points):
        if len(point.positions) != len(names):
            raise ValueError(
                f"trajectory point {k} has {len(point.positions)} positions; expected "
                f"{len(names)} for joints {list(names)}"
            )
        positions.append(_finite_array(point.positions, f"trajectory point {k}", names))
        if len(point.velocities) == len(names):
            velocities.append(_finite_array(point.velocities, f"trajectory point {k}", names))
        elif len(point.velocities) != 0:
            raise ValueError(
                f"trajectory point {k} has {len(point.velocities)} velocities; expected 0 or "
                f"{len(names)}"
            )
        times.append(to_seconds(point.time_from_start))
    t = np.asarray(times)
    if t[0] < 0 or np.any(np.diff(t) <= 0) or not math.isfinite(t[-1]):
        raise ValueError(
            f"trajectory time_from_start must be >= 0 and increasing, got {times[:10]}"
        )
    if t[-1] > MAX_TRAJECTORY_S:  # a lockstep sim would step it to its end at once
        raise ValueError(
            f"trajectory lasts {t[-1]:.6g} s; at most {MAX_TRAJECTORY_S:g} s are accepted"
        )
    return TrajectoryArrays(
        joint_names=names,
        times=t,
        positions=np.stack(positions),
        velocities=np.stack(velocities) if len(velocities) == len(times) else None,
    )


def joint_trajectory_msg(
    names: Sequence[str],
    times: Sequence[float],
    positions: np.ndarray,
    velocities: np.ndarray | None = None,
) -> JointTrajectory:
    """A JointTrajectory from times (T,) s, positions (T, n) rad, optional velocities (T, n).

    The header stamp stays zero, which ros2_control reads as "start on receipt".
    """
    msg = JointTrajectory()
    msg.joint_names = list(names)
    for k, t in enumerate(times):
        point = JointTrajectoryPoint()
        point.positions = [float(v) for v in positions[k]]
        if velocities is not None:
            point.velocities = [float(v) for v in velocities[k]]
        point.time_from_start = duration_msg(float(t))
        msg.points.append(point)
    return msg


def pose_stamped_msg(
    position: np.ndarray, quat_xyzw: np.ndarray, frame_id: str, stamp: Time | None = None
) -> PoseStamped:
    """A geometry_msgs/PoseStamped from position (3,) m and quaternion (4,) xyzw."""
    msg = PoseStamped()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    q.x, q.y, q.z, q.w = (float(v) for v in quat_xyzw)
    return msg


def point_stamped_msg(point: Sequence[float], frame_id: str, stamp: Time) -> PointStamped:
    """A geometry_msgs/PointStamped (a goal) from (3,) m."""
    msg = PointStamped()
    msg.header.frame_id, msg.header.stamp = frame_id, stamp
    msg.point.x, msg.point.y, msg.point.z = (float(v) for v in point)
    return msg


def episode_event_msg(
    event: str, episode_id: int, task: str, mode: str,
    goal: Sequence[float] | None = None, frame_id: str = "base_link",
    commands: int | None = None,
) -> String:  # fmt: skip
    """An /mbrl/episode_control event. A start carries the episode's goal: the collector
    records that one, whatever order it gets this and /goal in (another topic). An end may
    carry `commands`, how many commands its sender saw on the command topic in the episode:
    the collector rejects the episode if it recorded fewer."""
    body: dict = {"event": event, "episode_id": episode_id, "task": task, "mode": mode}
    if goal is not None:
        body.update(goal=[float(v) for v in goal], frame_id=frame_id)
    if commands is not None:
        body["commands"] = int(commands)
    return String(data=json.dumps(body))


def episode_event_goal(event: dict) -> tuple[list[float], str] | None:
    """The optional `goal` ([x, y, z] m) and `frame_id` of a decoded start event (the
    episode's own goal); ValueError if malformed."""
    if "goal" not in event:
        return None
    goal, frame = event["goal"], event.get("frame_id", "base_link")
    if not (isinstance(goal, list) and len(goal) == 3 and isinstance(frame, str)):
        raise ValueError(f"goal {repr(goal)[:80]}: expected [x, y, z] and a frame_id")
    point = [float(v) for v in goal]
    if not all(math.isfinite(v) for v in point):
        raise ValueError(f"goal {point} is not finite")
    return point, frame

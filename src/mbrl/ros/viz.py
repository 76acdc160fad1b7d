"""rviz messages of the controller's plan: end-effector points, uncertainty spheres, goal, Path.

config/mbrl.rviz shows /mpc_controller/plan (MarkerArray) and /mpc_controller/plan_path (Path)
in frame base_link. Shapes: T planned steps; points (T, 3) m.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseStamped
from nav_msgs.msg import Path
from visualization_msgs.msg import Marker, MarkerArray

NAMESPACE = "mbrl_plan"
# Marker ids within NAMESPACE, fixed so each publish replaces the previous plan in rviz.
LINE_ID, SPHERES_ID, GOAL_ID = 0, 1, 2
# Sphere diameter = 2 sigma of the predicted EE, floored so a certain plan stays visible.
MIN_DIAMETER = 0.005  # m


def _marker(kind: int, marker_id: int, frame_id: str, stamp: Time) -> Marker:
    m = Marker()
    m.header.frame_id, m.header.stamp = frame_id, stamp
    m.ns, m.id, m.type, m.action = NAMESPACE, marker_id, kind, Marker.ADD
    m.pose.orientation.w = 1.0
    return m


def _point(p: np.ndarray) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def plan_markers(
    points: np.ndarray,
    spread: np.ndarray | None,
    goal: np.ndarray | None,
    frame_id: str,
    stamp: Time,
) -> MarkerArray:
    """The plan as a LINE_STRIP of EE points, a SPHERE_LIST sized by the predicted spread,
    and the goal as a sphere.

    Args:
        points: (T, 3) planned end-effector positions, m.
        spread: (T,) std of each point, m, or None (known model: small fixed spheres).
        goal: (3,) m or None.
    """
    line = _marker(Marker.LINE_STRIP, LINE_ID, frame_id, stamp)
    line.scale.x = 0.004
    line.color.g, line.color.b, line.color.a = 0.8, 1.0, 1.0
    line.points = [_point(p) for p in points]
    spheres = _marker(Marker.SPHERE_LIST, SPHERES_ID, frame_id, stamp)
    # SPHERE_LIST has one scale for all points: the largest predicted 2-sigma of the plan.
    diameter = MIN_DIAMETER if spread is None or len(spread) == 0 else 2 * float(np.max(spread))
    spheres.scale.x = spheres.scale.y = spheres.scale.z = max(MIN_DIAMETER, diameter)
    spheres.color.r, spheres.color.g, spheres.color.a = 1.0, 0.6, 0.4
    spheres.points = [_point(p) for p in points]
    markers = [line, spheres]
    if goal is not None:
        g = _marker(Marker.SPHERE, GOAL_ID, frame_id, stamp)
        g.pose.position = _point(goal)
        g.scale.x = g.scale.y = g.scale.z = 0.02
        g.color.r, g.color.a = 1.0, 0.9
        markers.append(g)
    return MarkerArray(markers=markers)


def plan_path(points: np.ndarray, frame_id: str, stamp: Time) -> Path:
    """points (T, 3) m -> nav_msgs/Path of poses (identity orientation)."""
    path = Path()
    path.header.frame_id, path.header.stamp = frame_id, stamp
    for p in points:
        pose = PoseStamped()
        pose.header = path.header
        pose.pose.position = _point(p)
        pose.pose.orientation.w = 1.0
        path.poses.append(pose)
    return path

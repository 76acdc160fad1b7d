"""End-effector position from a URDF chain in plain numpy, for the viewer's traces.

The viewer must not import torch or pybullet, so it does not reuse mbrl.costs' batched FK;
one pose per message is all it needs. Chain product of URDF joint origins (xyz, rpy) and
joint motions (revolute / continuous: rotation about the axis; prismatic: translation).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np


def _floats(text: str | None, default: str) -> np.ndarray:
    return np.array([float(v) for v in (text or default).split()])


def _rpy(r: float, p: float, y: float) -> np.ndarray:
    """URDF fixed-axis roll-pitch-yaw: R = Rz(y) Ry(p) Rx(r)."""
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])  # fmt: skip


def _axis_angle(axis: np.ndarray, q: float) -> np.ndarray:
    """Rodrigues' formula: rotation by q rad about the unit axis."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(q) * k + (1 - np.cos(q)) * (k @ k)


class UrdfChain:
    """The joints from the URDF's root link to `ee_link`.

    Args:
        urdf_xml: the URDF text.
        ee_link: name of the end-effector link; ValueError lists the links if it is missing.
    """

    def __init__(self, urdf_xml: str, ee_link: str) -> None:
        robot = ET.fromstring(urdf_xml)
        links = [link.get("name") for link in robot.findall("link")]
        if ee_link not in links:
            raise ValueError(f"URDF has no link {ee_link!r}; links: {links}")
        by_child = {j.find("child").get("link"): j for j in robot.findall("joint")}
        chain = []
        link = ee_link
        while link in by_child:
            joint = by_child[link]
            origin = joint.find("origin")
            axis = joint.find("axis")
            u = _floats(None if axis is None else axis.get("xyz"), "1 0 0")
            chain.append((
                joint.get("name"), joint.get("type"),
                _floats(None if origin is None else origin.get("xyz"), "0 0 0"),
                _rpy(*_floats(None if origin is None else origin.get("rpy"), "0 0 0")),
                u / np.linalg.norm(u),
            ))  # fmt: skip
            link = joint.find("parent").get("link")
        self.joints = chain[::-1]  # root first

    def ee_position(self, angles: dict[str, float]) -> np.ndarray:
        """(3,) m, the end effector in the root link's frame; missing joints count as 0."""
        rotation, position = np.eye(3), np.zeros(3)
        for name, kind, xyz, rpy, axis in self.joints:
            position = position + rotation @ xyz
            rotation = rotation @ rpy
            q = angles.get(name, 0.0)
            if kind in ("revolute", "continuous"):
                rotation = rotation @ _axis_angle(axis, q)
            elif kind == "prismatic":
                position = position + rotation @ (axis * q)
        return position


def deepest_link(urdf_xml: str) -> str:
    """The link with the most joints between it and the root: the tool end of a serial arm,
    used when the configured end-effector link is not in a URDF."""
    robot = ET.fromstring(urdf_xml)
    parent = {
        j.find("child").get("link"): j.find("parent").get("link") for j in robot.findall("joint")
    }

    def depth(link: str) -> int:
        n = 0
        while link in parent:
            link, n = parent[link], n + 1
        return n

    return max((link.get("name") for link in robot.findall("link")), key=depth)

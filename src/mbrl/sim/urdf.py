"""URDF look-up for the simulator: `package://` / `pybullet_data://` URIs, and the joint and
link tables of a loaded body with the limits an ArmConfig may override."""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import numpy as np
import pybullet_data

from mbrl.config import ArmConfig, ConfigError

PACKAGE_PREFIX = "package://mbrl/"
PYBULLET_DATA_PREFIX = "pybullet_data://"


def assets_dir() -> Path:
    """Directory holding the bundled URDFs (src/mbrl/assets)."""
    return Path(str(resources.files("mbrl") / "assets"))


def resolve_urdf(uri: str) -> Path:
    """Turn an ArmConfig.urdf value into an existing file path.

    Accepted forms: `package://mbrl/<file>` (bundled assets), `pybullet_data://<file>`
    (models shipped with pybullet, e.g. `kuka_iiwa/model.urdf`), or a plain file path.
    Raises ConfigError naming the URI and the path tried when the file does not exist.
    """
    if uri.startswith(PACKAGE_PREFIX):
        path = assets_dir() / uri[len(PACKAGE_PREFIX) :]
    elif uri.startswith(PYBULLET_DATA_PREFIX):
        path = Path(pybullet_data.getDataPath()) / uri[len(PYBULLET_DATA_PREFIX) :]
    elif "://" in uri:
        raise ConfigError(
            f"arm.urdf {uri!r} has an unknown scheme; expected {PACKAGE_PREFIX}<file>, "
            f"{PYBULLET_DATA_PREFIX}<file> or a file path"
        )
    else:
        path = Path(uri).expanduser()
    if not path.is_file():
        raise ConfigError(f"arm.urdf {uri!r}: file {path} does not exist")
    return path.resolve()


@dataclasses.dataclass(frozen=True)
class JointLimits:
    """Per-joint limits of the controlled joints, in controller order (all shape (nj,)).

    lower/upper in rad (or m for prismatic joints), velocity in rad/s, effort in N m.
    """

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


@dataclasses.dataclass(frozen=True)
class BodyTables:
    """Name -> index maps of a loaded PyBullet body (a link's index is its parent joint's)."""

    joints: dict[str, int]
    links: dict[str, int]
    urdf_limits: dict[str, tuple[float, float, float, float]]  # lower, upper, effort, velocity


def read_tables(client, body: int) -> BodyTables:
    """Read joint and link names of `body` from a bullet client (`pybullet_utils.bullet_client`)."""
    joints: dict[str, int] = {}
    links: dict[str, int] = {client.getBodyInfo(body)[0].decode(): -1}
    limits: dict[str, tuple[float, float, float, float]] = {}
    for j in range(client.getNumJoints(body)):
        info = client.getJointInfo(body, j)
        name = info[1].decode()
        joints[name] = j
        links[info[12].decode()] = j
        if info[2] in (client.JOINT_REVOLUTE, client.JOINT_PRISMATIC):
            limits[name] = (float(info[8]), float(info[9]), float(info[10]), float(info[11]))
    return BodyTables(joints=joints, links=links, urdf_limits=limits)


def joint_limits(config: ArmConfig, tables: BodyTables, urdf: str) -> JointLimits:
    """Combine URDF limits with the config's overrides; validate them.

    Precedence: per-joint `arm.position_lower/upper/velocity_limit/effort_limit` over the
    URDF; then `arm.servo.max_velocity` / `max_torque` cap every joint (a servo cannot
    exceed its own rating whatever the URDF says).
    """
    missing = [n for n in config.joint_names if n not in tables.urdf_limits]
    if missing:
        raise ConfigError(
            f"arm.joint_names {missing} are not revolute/prismatic joints of {urdf}; "
            f"movable joints there: {sorted(tables.urdf_limits)}"
        )
    urdf_vals = np.array([tables.urdf_limits[n] for n in config.joint_names], dtype=float)
    lower, upper, effort, velocity = (urdf_vals[:, i].copy() for i in range(4))
    for name, arr in (
        ("position_lower", lower),
        ("position_upper", upper),
        ("effort_limit", effort),
        ("velocity_limit", velocity),
    ):
        override = getattr(config, name)
        if override:
            arr[:] = override
    if config.servo.max_velocity is not None:
        velocity = np.minimum(velocity, config.servo.max_velocity)
    if config.servo.max_torque is not None:
        effort = np.minimum(effort, config.servo.max_torque)
    for i, name in enumerate(config.joint_names):
        if not lower[i] < upper[i]:
            raise ConfigError(
                f"joint {name!r} of {urdf} has no usable position range [{lower[i]}, {upper[i]}] "
                "(continuous joint?); set arm.position_lower/position_upper"
            )
        if not (velocity[i] > 0 and effort[i] > 0):
            raise ConfigError(
                f"joint {name!r} of {urdf} has velocity limit {velocity[i]} and effort limit "
                f"{effort[i]}; both must be > 0 (set arm.velocity_limit / arm.effort_limit)"
            )
    return JointLimits(lower=lower, upper=upper, velocity=velocity, effort=effort)

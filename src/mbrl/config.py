"""Shared configuration dataclasses and the YAML loader that validates them.

Config is loaded at the edges (CLI, ROS parameters, benchmarks) and passed inward as frozen
dataclasses; no algorithm reads files or parameters itself.

Dimension glossary used in docstrings across mbrl:
    N  batch / samples         T  horizon (time steps)     E  ensemble members
    P  particles per sample    dx state dimension          du action dimension
    nj number of controlled joints
Units: joint positions rad, velocities rad/s, lengths m, time s, torques N m.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml


class ConfigError(ValueError):
    """A configuration value or file is malformed; the message names the field/file."""


def _check_nonneg(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{type(obj).__name__}.{name} must be >= 0, got {value!r}")


SERVO_DRIVES = ("position", "pd")  # ServoConfig.drive
SERVO_VELOCITIES = ("true", "difference")  # ServoConfig.velocity
ENCODER_TICK = 2 * math.pi / 4096  # rad: the STS3215's 12-bit magnetic encoder


@dataclasses.dataclass(frozen=True)
class ServoConfig:
    """Hobby-servo model applied to every controlled joint (simulation only).

    Two shipped profiles (SERVO_PROFILES): "ideal" (these defaults: a PyBullet position
    constraint, perfect sensing) and "realistic" (Feetech STS3215 figures, docs/sim.md). An
    arm file selects one with `servo: realistic`, or `servo: {profile: realistic, ...}` to
    change single figures of it.

    Attributes:
        max_velocity: joint speed limit, rad/s; None takes the URDF's velocity limit.
        max_torque: stall torque, N m; None takes the URDF's effort limit.
        position_gain: PyBullet POSITION_CONTROL positionGain (0..1], drive "position".
        velocity_gain: PyBullet POSITION_CONTROL velocityGain (0..1], drive "position".
        noise_std: std of Gaussian noise added to measured joint positions, rad (0 = off).
        backlash: dead band of the gear train, rad (0 = off).
        latency_ticks: commands take effect this many control ticks late (0 = off).
        drive: "position" (PyBullet's position constraint, at most max_velocity) or "pd"
            (the SO-101 MJCF's position actuator: torque = clip(kp (target - q) - kv qdot,
            +-max_torque) - damping qdot every physics step, with Coulomb friction and
            rotor armature).
        kp: N m/rad, position gain of drive "pd" (MJCF: 998.22 for servo P gain 16).
        kv: N m s/rad, velocity gain of drive "pd" (MJCF: 2.731).
        damping: N m s/rad, joint viscous damping of drive "pd" (MJCF: 0.60).
        friction: N m, joint Coulomb friction of drive "pd" (MJCF frictionloss: 0.052).
        armature: kg m^2, rotor inertia added about each joint axis, drive "pd" (MJCF 0.028).
        resolution: rad per encoder count; measured positions are rounded to it (0 = off).
        read_drop: probability that a tick's read fails and the previous reading is
            reported again, as on a serial bus with lost status packets (0 = off).
        velocity: "true" (the simulator's joint velocity) or "difference" (of successive
            readings over the time between them, as drivers that read positions only).
    """

    max_velocity: float | None = None
    max_torque: float | None = None
    position_gain: float = 0.3
    velocity_gain: float = 1.0
    noise_std: float = 0.0
    backlash: float = 0.0
    latency_ticks: int = 0
    drive: str = "position"
    kp: float = 998.22
    kv: float = 2.731
    damping: float = 0.60
    friction: float = 0.052
    armature: float = 0.028
    resolution: float = 0.0
    read_drop: float = 0.0
    velocity: str = "true"

    def __post_init__(self) -> None:
        _check_nonneg(self, "noise_std", "backlash", "latency_ticks", "kp", "kv", "damping",
                      "friction", "armature", "resolution", "read_drop")  # fmt: skip
        for name in ("max_velocity", "max_torque"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"servo.{name} must be a positive number or null, got {value!r}")
        for name in ("position_gain", "velocity_gain"):
            value = getattr(self, name)
            if not (0.0 < value <= 1.0):
                raise ConfigError(f"servo.{name} must be in (0, 1], got {value!r}")
        if self.drive not in SERVO_DRIVES:
            raise ConfigError(
                f"servo.drive must be one of {list(SERVO_DRIVES)}, got {self.drive!r}"
            )
        if self.velocity not in SERVO_VELOCITIES:
            raise ConfigError(
                f"servo.velocity must be one of {list(SERVO_VELOCITIES)}, got {self.velocity!r}"
            )
        if self.read_drop >= 1:
            raise ConfigError(f"servo.read_drop must be < 1 (a probability), got {self.read_drop}")
        if self.drive == "pd" and self.armature <= 0:
            raise ConfigError("servo.armature must be > 0 with drive pd (it keeps the explicit "
                              "servo torque stable at the physics rate)")  # fmt: skip

    @classmethod
    def from_config_value(cls, value: Any, where: str = "servo") -> ServoConfig:
        """A servo from an arm file's value: a profile name (`realistic`) or a mapping of
        fields, optionally with `profile: NAME` as the base the other fields change."""
        if isinstance(value, str):
            value = {"profile": value}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a profile name or a mapping, got {value!r}")
        data = dict(value)
        name = data.pop("profile", "ideal")
        if name not in SERVO_PROFILES:
            raise ConfigError(
                f"{where}.profile {name!r} unknown; expected one of {sorted(SERVO_PROFILES)}"
            )
        base = dataclasses.asdict(SERVO_PROFILES[name])
        return from_dict(cls, {**base, **data}, where)


# The STS3215 as LeRobot sets it up (P=16, position mode), from the sources in docs/sim.md:
# the official SO-101 MJCF actuator and joint figures, the 12-bit encoder, ~1 deg of measured
# backlash (datasheet <= 0.5 deg), one tick of bus latency and an occasional lost read.
SERVO_PROFILES: dict[str, ServoConfig] = {
    "ideal": ServoConfig(),
    "realistic": ServoConfig(
        drive="pd",
        resolution=ENCODER_TICK,
        backlash=math.radians(1.0),
        latency_ticks=1,
        read_drop=0.02,
        velocity="difference",
    ),
}


@dataclasses.dataclass(frozen=True)
class ArmConfig:
    """Which robot to load and how it is controlled. Any URDF works through this alone.

    Attributes:
        urdf: path to a URDF; `package://mbrl/<file>` for the bundled arm, or
            `pybullet_data://<file>` for a model shipped with pybullet_data.
        joint_names: the controlled joints, in controller (command) order.
        ee_link: name of the end-effector link whose position the tasks use.
        gripper_joints: extra joints held at a fixed position (not controlled by the agent).
        base_position: xyz of the robot base in the world, m.
        position_lower / position_upper / velocity_limit / effort_limit: per-joint overrides
            of the URDF limits, in joint_names order; empty means "take from the URDF".
        control_rate_hz: agent / controller rate (the env's step), Hz.
        physics_rate_hz: PyBullet integration rate; must be a multiple of control_rate_hz.
        max_increment: bound on one action's joint-position increment, rad.
        home: joint positions at reset, rad; empty means the midpoint of each range.
        servo: the servo model.
        driver_joint_names: the names the arm's driver uses for joint_names, in the same
            order (e.g. `shoulder_pan_joint` for `shoulder_pan`): /joint_states is read and
            trajectories are sent under these names; empty means joint_names themselves.
        driver_gripper_joints: the driver's names for gripper_joints, in the same order;
            empty means gripper_joints themselves.
    """

    urdf: str = "package://mbrl/so_arm.urdf"
    joint_names: tuple[str, ...] = (
        "shoulder_pan",
        "shoulder_lift",
        "elbow_flex",
        "wrist_flex",
        "wrist_roll",
    )
    ee_link: str = "ee_tip"
    gripper_joints: tuple[str, ...] = ("gripper",)
    base_position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    position_lower: tuple[float, ...] = ()
    position_upper: tuple[float, ...] = ()
    velocity_limit: tuple[float, ...] = ()
    effort_limit: tuple[float, ...] = ()
    control_rate_hz: float = 20.0
    physics_rate_hz: float = 240.0
    max_increment: float = 0.1
    home: tuple[float, ...] = ()
    servo: ServoConfig = dataclasses.field(default_factory=ServoConfig)
    driver_joint_names: tuple[str, ...] = ()
    driver_gripper_joints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.joint_names:
            raise ConfigError("arm.joint_names is empty; list the controlled joints")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ConfigError(f"arm.joint_names has duplicates: {list(self.joint_names)}")
        n = len(self.joint_names)
        for name in ("position_lower", "position_upper", "velocity_limit", "effort_limit", "home"):
            value = getattr(self, name)
            if value and len(value) != n:
                raise ConfigError(
                    f"arm.{name} has {len(value)} entries; expected {n} "
                    f"(one per joint in {list(self.joint_names)})"
                )
            if any(not math.isfinite(v) for v in value):
                raise ConfigError(f"arm.{name} contains NaN/Inf: {list(value)}")
        if self.control_rate_hz <= 0 or self.physics_rate_hz <= 0:
            raise ConfigError("arm.control_rate_hz and arm.physics_rate_hz must be positive")
        ratio = self.physics_rate_hz / self.control_rate_hz
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ConfigError(
                f"arm.physics_rate_hz ({self.physics_rate_hz}) must be a whole multiple of "
                f"arm.control_rate_hz ({self.control_rate_hz})"
            )
        if not (0 < self.max_increment <= math.pi):
            raise ConfigError(f"arm.max_increment must be in (0, pi] rad, got {self.max_increment}")
        for ours, theirs in (
            ("joint_names", "driver_joint_names"),
            ("gripper_joints", "driver_gripper_joints"),
        ):
            names = getattr(self, theirs)
            if names and len(names) != len(getattr(self, ours)):
                raise ConfigError(
                    f"arm.{theirs} has {len(names)} entries; expected one per arm.{ours} "
                    f"{list(getattr(self, ours))}"
                )
        wire = self.driver_names + self.driver_gripper_names
        if len(set(wire)) != len(wire):
            raise ConfigError(f"arm driver joint names have duplicates: {list(wire)}")

    @property
    def driver_names(self) -> tuple[str, ...]:
        """The driver's names of joint_names (the names on /joint_states), same order."""
        return self.driver_joint_names or self.joint_names

    @property
    def driver_gripper_names(self) -> tuple[str, ...]:
        """The driver's names of gripper_joints, same order."""
        return self.driver_gripper_joints or self.gripper_joints

    def from_driver(self) -> dict[str, str]:
        """{driver name: our name} for every joint whose names differ (empty: no map)."""
        pairs = zip(
            self.driver_names + self.driver_gripper_names,
            self.joint_names + self.gripper_joints,
            strict=True,
        )
        return {theirs: ours for theirs, ours in pairs if theirs != ours}

    @property
    def control_period(self) -> float:
        """Seconds per control tick."""
        return 1.0 / self.control_rate_hz

    @property
    def substeps(self) -> int:
        """Physics steps per control tick."""
        return int(round(self.physics_rate_hz / self.control_rate_hz))


T = TypeVar("T")


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build a (nested) frozen dataclass from a mapping, rejecting unknown keys.

    Lists become tuples; nested dataclass fields are built recursively. Errors name the
    offending key with its dotted path (`where`), e.g. `arm.servo.noise_std`.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in {where or cls.__name__}; "
            f"expected some of {sorted(fields)}"
        )
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        field = fields[key]
        has_factory = field.default_factory is not dataclasses.MISSING
        nested = field.default_factory() if has_factory else None
        if dataclasses.is_dataclass(nested):
            path = f"{where}.{key}" if where else key
            if hasattr(type(nested), "from_config_value"):  # e.g. `servo: realistic`
                kwargs[key] = type(nested).from_config_value(value or {}, path)
            else:
                kwargs[key] = from_dict(type(nested), value or {}, path)
        elif isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc


def read_text(path: str | Path, what: str = "config file") -> str:
    """The text of file `path`; ConfigError "cannot read <what> <path>: <reason>" if it fails."""
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML file into a dict; a missing or malformed file raises ConfigError naming it."""
    path = Path(path)
    text = read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def load_arm_config(path: str | Path, key: str = "arm") -> ArmConfig:
    """Load the `arm:` section of a YAML file as an ArmConfig."""
    data = load_yaml(path)
    try:
        return from_dict(ArmConfig, data.get(key, {}), key)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def arm_from_options(arm_file: str | Path | None = None, servo: str | None = None) -> ArmConfig:
    """The arm of the command line: `--arm FILE` (its `arm:` section; default the bundled
    arm) with its servo replaced by profile `--servo NAME` (SERVO_PROFILES) if given."""
    arm = load_arm_config(arm_file) if arm_file else ArmConfig()
    if servo is None:
        return arm
    if servo not in SERVO_PROFILES:
        raise ConfigError(
            f"servo profile {servo!r} unknown; expected one of {sorted(SERVO_PROFILES)}"
        )
    return dataclasses.replace(arm, servo=SERVO_PROFILES[servo])


def add_arm_arguments(parser: Any) -> None:
    """`--arm FILE` and `--servo PROFILE` of `mbrl experiment` and `mbrl demo`."""
    parser.add_argument("--arm", default=None, metavar="FILE",
                        help="arm file (YAML with an `arm:` section, e.g. config/arm_iiwa.yaml); "
                        "default: the bundled SO-101-class arm")  # fmt: skip
    parser.add_argument("--servo", default=None, choices=sorted(SERVO_PROFILES),
                        help="servo profile replacing the arm file's servo (docs/sim.md): "
                        "ideal (a position constraint) or realistic (STS3215)")  # fmt: skip

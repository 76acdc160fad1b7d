"""LeRobot servo calibration files -> joint angles (rad), joint limits and the gripper scale.

A LeRobot calibration JSON (one per robot id, written by `lerobot-calibrate`) holds per motor
`id`, `drive_mode`, `homing_offset`, `range_min` and `range_max` in encoder ticks. LeRobot
reads a body joint in degrees about the middle of the calibrated range,
`deg = (ticks - (range_min + range_max) / 2) * 360 / 4095`, and the gripper as 0 (closed,
range_min) .. 100 (open, range_max) (huggingface/lerobot src/lerobot/motors/motors_bus.py
`_normalize`, modes DEGREES and RANGE_0_100). Here the same scale is in radians; drive_mode 1
inverts a joint's direction (LeRobot's range modes do; SO-101 calibrations use 0 throughout).
The homing offset is the servo's own EEPROM register (Present_Position = actual -
Homing_Offset): a driver writes it once, the conversion never applies it again.
ROS-free. Units: ticks (int), rad, percent.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mbrl.config import ConfigError, read_text

RESOLUTION = 4096  # STS3215: 12-bit encoder, ticks per turn
MAX_TICK = RESOLUTION - 1  # LeRobot scales by 4095 (max_res = resolution - 1), and so do we
RAD_PER_TICK = 2.0 * math.pi / MAX_TICK
HOMING_OFFSET_LIMIT = 2047  # sign-magnitude with the sign in bit 11 (LeRobot feetech tables)
SO101_MOTORS = (
    "shoulder_pan",
    "shoulder_lift",
    "elbow_flex",
    "wrist_flex",
    "wrist_roll",
    "gripper",
)
FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")


@dataclasses.dataclass(frozen=True)
class MotorCalibration:
    """One motor's calibration, in encoder ticks, plus the joint offset of our arm model.

    Attributes:
        name: the motor (= joint) name in the calibration file.
        id: bus id, 0..252.
        drive_mode: 0 normal, 1 inverted direction.
        homing_offset: the servo's Homing_Offset register, ticks (|offset| <= 2047).
        range_min / range_max: the calibrated travel, ticks, 0 <= min < max <= 4095.
        offset: rad added to the converted angle, so that the arm model's zero (the URDF's)
            may differ from the calibrated mid-range (0: they coincide, as in the official
            SO-101 `new_calib` model).
    """

    name: str
    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int
    offset: float = 0.0

    @property
    def mid(self) -> float:
        """Middle of the calibrated range, ticks: the joint's zero before `offset`."""
        return (self.range_min + self.range_max) / 2.0

    @property
    def sign(self) -> float:
        return -1.0 if self.drive_mode else 1.0

    def ticks_to_rad(self, ticks: np.ndarray | float) -> np.ndarray:
        """Present_Position ticks -> joint angle, rad (LeRobot's degrees, in radians)."""
        return self.sign * (np.asarray(ticks, dtype=float) - self.mid) * RAD_PER_TICK + self.offset

    def rad_to_ticks(self, angle: np.ndarray | float) -> np.ndarray:
        """Joint angle, rad -> Goal_Position ticks (int), clipped to [range_min, range_max]."""
        ticks = self.mid + self.sign * (np.asarray(angle, dtype=float) - self.offset) / RAD_PER_TICK
        return np.clip(np.rint(ticks), self.range_min, self.range_max).astype(int)

    @property
    def limits(self) -> tuple[float, float]:
        """(lower, upper) joint limits, rad: the calibrated travel."""
        a, b = (float(v) for v in self.ticks_to_rad([self.range_min, self.range_max]))
        return (min(a, b), max(a, b))

    def ticks_to_percent(self, ticks: np.ndarray | float) -> np.ndarray:
        """Gripper ticks -> 0 (closed) .. 100 (open), clamped (LeRobot's RANGE_0_100)."""
        bounded = np.clip(np.asarray(ticks, dtype=float), self.range_min, self.range_max)
        norm = (bounded - self.range_min) / (self.range_max - self.range_min) * 100.0
        return 100.0 - norm if self.drive_mode else norm

    def percent_to_ticks(self, percent: np.ndarray | float) -> np.ndarray:
        """Gripper 0 (closed) .. 100 (open) -> ticks (int), clamped to the range."""
        p = np.clip(np.asarray(percent, dtype=float), 0.0, 100.0)
        p = 100.0 - p if self.drive_mode else p
        ticks = p / 100.0 * (self.range_max - self.range_min) + self.range_min
        return np.rint(ticks).astype(int)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ArmCalibration:
    """The calibration of every motor of one arm, in file order.

    Attributes:
        motors: one MotorCalibration per motor.
        source: where it was read from (named in errors).
    """

    motors: tuple[MotorCalibration, ...]
    source: str = ""

    def __post_init__(self) -> None:
        ids = [m.id for m in self.motors]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ConfigError(f"{self.source}: motors share bus id(s) {dupes}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.motors)

    def motor(self, name: str) -> MotorCalibration:
        """The calibration of motor `name`; ConfigError naming the file and the motor if absent."""
        for m in self.motors:
            if m.name == name:
                return m
        raise ConfigError(
            f"{self.source}: no calibration for motor {name!r}; the file has {list(self.names)}"
        )

    def select(self, names: Sequence[str]) -> ArmCalibration:
        """The calibrations of `names`, in that order (each must be present)."""
        return ArmCalibration(tuple(self.motor(n) for n in names), self.source)


def _int_field(entry: Mapping[str, Any], key: str, where: str) -> int:
    if key not in entry:
        raise ConfigError(f"{where}: missing {key!r}; expected the fields {list(FIELDS)}")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
    return value


def motor_from_dict(name: str, entry: Any, source: str = "") -> MotorCalibration:
    """Validate one motor's entry of a LeRobot calibration file; errors name file and motor."""
    where = f"{source}: motor {name!r}" if source else f"motor {name!r}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected an object with {list(FIELDS)}, got {entry!r}")
    values = {key: _int_field(entry, key, where) for key in FIELDS}
    offset = entry.get("offset", 0.0)
    if (
        isinstance(offset, bool)
        or not isinstance(offset, (int, float))
        or not math.isfinite(offset)
    ):
        raise ConfigError(f"{where}: offset must be a finite number of rad, got {offset!r}")
    if not 0 <= values["id"] <= 252:
        raise ConfigError(f"{where}: id {values['id']} outside the bus ids 0..252")
    if values["drive_mode"] not in (0, 1):
        raise ConfigError(f"{where}: drive_mode must be 0 or 1, got {values['drive_mode']}")
    if abs(values["homing_offset"]) > HOMING_OFFSET_LIMIT:
        raise ConfigError(
            f"{where}: homing_offset {values['homing_offset']} outside "
            f"+-{HOMING_OFFSET_LIMIT} ticks (the servo register's range)"
        )
    lo, hi = values["range_min"], values["range_max"]
    if not 0 <= lo < hi <= MAX_TICK:
        raise ConfigError(
            f"{where}: need 0 <= range_min < range_max <= {MAX_TICK} ticks, got {lo}..{hi}"
        )
    return MotorCalibration(name=name, offset=float(offset), **values)


def calibration_from_dict(
    data: Any, motors: Sequence[str] | None = SO101_MOTORS, source: str = ""
) -> ArmCalibration:
    """An ArmCalibration from the parsed JSON object {motor: {id, drive_mode, ...}}.

    Args:
        data: the parsed file.
        motors: motors that must be present (these, in this order); None keeps every motor
            of the file in file order.
        source: the file name, for errors.
    """
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(
            f"{source}: a LeRobot calibration is a JSON object mapping motor names to "
            f"{{{', '.join(FIELDS)}}}; got {type(data).__name__}"
        )
    names = list(data) if motors is None else list(motors)
    missing = [n for n in names if n not in data]
    if missing:
        raise ConfigError(
            f"{source}: motor(s) {missing} missing from the calibration; the file has "
            f"{list(data)}, expected {names}"
        )
    return ArmCalibration(tuple(motor_from_dict(n, data[n], source) for n in names), source)


def load_lerobot_calibration(
    path: str | Path, motors: Sequence[str] | None = SO101_MOTORS
) -> ArmCalibration:
    """Read a LeRobot calibration JSON (e.g. ~/.cache/huggingface/lerobot/calibration/robots/
    so101_follower/<id>.json). A missing, non-JSON or incomplete file raises ConfigError
    naming the file (and the motor)."""
    path = Path(path)
    text = read_text(path, "calibration file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"calibration file {path} is not valid JSON: {exc}") from exc
    return calibration_from_dict(data, motors, str(path))

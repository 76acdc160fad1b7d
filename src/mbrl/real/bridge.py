"""What the feetech_bridge node computes, without ROS: its config, and the bridge between
joint angles (rad, by joint name) and one Feetech bus, with the dead-bus hold.

The bridge reads every motor each cycle (Present_Position, retried by FeetechBus), converts
to radians with the arm file's calibration, and turns position commands into clamped
Goal_Position ticks. After `dead_after` failed cycles in a row it HOLDS: it stops writing,
drops commands and probes the bus only every `probe_period`; the first good read ends the
hold, and only a command received after that moves the arm again.
Shapes: n motors = nj arm joints + ng gripper joints, in that order.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mbrl.config import ArmConfig, ConfigError, load_arm_config, load_yaml
from mbrl.real.calibration import ArmCalibration, calibration_from_dict
from mbrl.real.feetech_bus import BusError, FeetechBus

OK, HELD = "ok", "held"


@dataclasses.dataclass(frozen=True)
class FeetechBridgeConfig:
    """Settings of node `feetech_bridge` (docs/real_arm.md).

    Attributes:
        arm_file: the arm file written by `mbrl arm import-calibration`: its `arm:` section
            (joints, limits, driver names) and `feetech:` section (port, motors).
        port: serial device; empty takes feetech.port of the arm file.
        controller_name: commands arrive on /<controller_name>/commands (Float64MultiArray,
            nj values in arm.joint_names order, or nj + ng with the gripper joints, rad).
        state_rate_hz: /joint_states rate (one sync read per cycle), Hz.
        retries: extra tries of a failed read within one cycle.
        dead_after: this many failed cycles in a row mean a dead bus: hold.
        probe_period: s between reads while holding.
        write_calibration: write the file's homing offset and limits to a servo whose
            EEPROM differs (false: refuse to start instead).
        diagnostics_period: s between /diagnostics reports.
    """

    arm_file: str = ""
    port: str = ""
    controller_name: str = "forward_position_controller"
    state_rate_hz: float = 50.0
    retries: int = 2
    dead_after: int = 5
    probe_period: float = 1.0
    write_calibration: bool = True
    diagnostics_period: float = 1.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", self.controller_name):
            raise ConfigError(
                f"controller_name must be a topic token, got {self.controller_name!r}"
            )
        if not (0 < self.state_rate_hz <= 1000 and self.probe_period > 0):
            raise ConfigError("state_rate_hz must be in (0, 1000] and probe_period > 0 s")
        if self.retries < 0 or self.dead_after < 1 or self.diagnostics_period <= 0:
            raise ConfigError("need retries >= 0, dead_after >= 1 and diagnostics_period > 0")


def load_arm_file(path: str | Path) -> tuple[ArmConfig, ArmCalibration, dict]:
    """(arm, calibration of its joints + grippers in that order, the feetech section)."""
    arm = load_arm_config(path)
    feetech = load_yaml(path).get("feetech")
    if not isinstance(feetech, dict) or not isinstance(feetech.get("motors"), dict):
        raise ConfigError(
            f"{path}: no `feetech:` section with `motors:`; write the file with "
            "`mbrl arm import-calibration`"
        )
    calibration = calibration_from_dict(
        feetech["motors"], arm.joint_names + arm.gripper_joints, f"{path} feetech.motors"
    )
    return arm, calibration, feetech


class Bridge:
    """Joint angles <-> one Feetech bus.

    Args:
        config: the node's settings.
        bus_factory: (port, calibration, baudrate, retries) -> FeetechBus (tests may wrap it).
    """

    def __init__(
        self, config: FeetechBridgeConfig, bus_factory: Callable[..., FeetechBus] = FeetechBus
    ) -> None:
        self.config = config
        if not config.arm_file:
            raise ConfigError(
                "arm_file is empty; give the arm file of `mbrl arm import-calibration`"
            )
        self.arm, self.calibration, feetech = load_arm_file(config.arm_file)
        self.port = config.port or str(feetech.get("port", ""))
        if not self.port:
            raise ConfigError(f"{config.arm_file}: no serial port (feetech.port or `port`)")
        self.nj, self.ng = len(self.arm.joint_names), len(self.arm.gripper_joints)
        self.names = self.arm.driver_names + self.arm.driver_gripper_names  # as published
        limits = [m.limits for m in self.calibration.motors]
        lower = np.array([lo for lo, _ in limits])
        upper = np.array([hi for _, hi in limits])
        if self.arm.position_lower:
            lower[: self.nj] = np.maximum(lower[: self.nj], self.arm.position_lower)
        if self.arm.position_upper:
            upper[: self.nj] = np.minimum(upper[: self.nj], self.arm.position_upper)
        self.lower, self.upper = lower, upper  # (n,) rad
        self.bus = bus_factory(
            self.port, self.calibration, int(feetech.get("baudrate", 1_000_000)), config.retries
        )
        self.state = HELD
        self.detail = "not connected"
        self.failed_cycles = 0
        self.last_probe = -math.inf
        self.goal: np.ndarray | None = None  # (n,) ticks last written
        self.q: np.ndarray | None = None  # (n,) rad of the last good read
        self.clamped = 0

    def connect(self) -> None:
        """Open and set up the bus, read the start pose and hold it (BusError on failure)."""
        self.bus.connect(self.config.write_calibration)
        ticks = self.bus.read_positions()
        self.goal = ticks.copy()
        self.q = self._to_rad(ticks)
        self.state, self.detail = OK, ""

    def close(self) -> None:
        self.bus.close()

    def _to_rad(self, ticks: np.ndarray) -> np.ndarray:
        return np.array(
            [float(m.ticks_to_rad(t)) for m, t in zip(self.calibration.motors, ticks, strict=True)]
        )

    def read(self, now: float) -> np.ndarray | None:
        """One cycle's read at monotonic time `now` (s): (n,) rad, or None (failed, or
        holding and not yet time to probe)."""
        if self.state == HELD and now - self.last_probe < self.config.probe_period:
            return None
        self.last_probe = now
        try:
            ticks = self.bus.read_positions()
        except BusError as exc:
            self.failed_cycles += 1
            if self.state == OK and self.failed_cycles >= self.config.dead_after:
                self.state = HELD
                self.detail = (
                    f"bus dead: {self.failed_cycles} failed reads in a row on {self.port} "
                    f"({exc}); holding: no goal is written until the bus answers"
                )
            return None
        self.failed_cycles = 0
        if self.state == HELD:
            self.state, self.detail = OK, ""
        self.q = self._to_rad(ticks)
        return self.q

    def command(self, values: np.ndarray) -> np.ndarray | None:
        """Write position command `values` ((nj,) or (n,) rad) as clamped goals; returns the
        (n,) ticks written, or None when holding (the command is dropped). ValueError on a
        wrong length or NaN/Inf; BusError if the write fails."""
        values = np.asarray(values, dtype=float)
        if values.shape not in ((self.nj,), (self.nj + self.ng,)):
            raise ValueError(
                f"command has {values.size} values; expected {self.nj} for "
                f"{list(self.arm.joint_names)} or {self.nj + self.ng} with "
                f"{list(self.arm.gripper_joints)}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError(f"command contains NaN/Inf: {values.tolist()}")
        if self.state == HELD or self.goal is None:
            return None
        n = values.size
        clipped = np.clip(values, self.lower[:n], self.upper[:n])
        self.clamped += int(np.any(clipped != values))
        goal = self.goal.copy()
        for i, m in enumerate(self.calibration.motors[:n]):
            goal[i] = int(m.rad_to_ticks(clipped[i]))
        self.bus.write_goals(goal)
        self.goal = goal
        return goal

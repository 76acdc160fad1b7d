"""Feetech STS3215 servos on one serial bus, through `feetech-servo-sdk` (module scservo_sdk,
the library LeRobot uses): set-up at connect, sync reads of Present_Position with bounded
retries, sync writes of Goal_Position. ROS-free; mbrl.ros.feetech_bridge puts it on ROS 2.

Every wait is bounded: one transaction ends at its packet timeout (~50 ms, as LeRobot sets it);
a read is tried 1 + `retries` times and then raises BusError. Units: ticks (0..4095).
Register addresses: the STS/SMS control table (lerobot src/lerobot/motors/feetech/tables.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from mbrl.real.calibration import ArmCalibration, MotorCalibration

# name: (address, bytes) of the STS/SMS series control table.
REGISTERS = {
    "Model_Number": (3, 2),
    "ID": (5, 1),
    "Return_Delay_Time": (7, 1),
    "Min_Position_Limit": (9, 2),
    "Max_Position_Limit": (11, 2),
    "P_Coefficient": (21, 1),
    "D_Coefficient": (22, 1),
    "I_Coefficient": (23, 1),
    "Homing_Offset": (31, 2),
    "Operating_Mode": (33, 1),
    "Torque_Enable": (40, 1),
    "Acceleration": (41, 1),
    "Goal_Position": (42, 2),
    "Lock": (55, 1),
    "Present_Position": (56, 2),
    "Maximum_Acceleration": (85, 1),
}
STS3215_MODEL = 777
HOMING_SIGN_BIT = 11  # Homing_Offset is sign-magnitude, sign in bit 11
# Set-up LeRobot applies at every connect (FeetechMotorsBus.configure_motors and
# SOFollower.configure): fast replies, full acceleration, position mode, P=16 (half the
# factory 32, "to avoid shakiness"), I=0, D=32.
SETUP = (
    ("Return_Delay_Time", 0),
    ("Maximum_Acceleration", 254),
    ("Acceleration", 254),
    ("Operating_Mode", 0),
    ("P_Coefficient", 16),
    ("I_Coefficient", 0),
    ("D_Coefficient", 32),
)


class BusError(RuntimeError):
    """A transaction failed after its retries; the message names the motor(s) and result."""


def encode_sign_magnitude(value: int, sign_bit: int) -> int:
    """A signed int -> the servo's sign-magnitude register value."""
    limit = (1 << sign_bit) - 1
    if abs(value) > limit:
        raise ValueError(f"{value} does not fit {sign_bit} magnitude bits (|value| <= {limit})")
    return (1 << sign_bit) | -value if value < 0 else value


def decode_sign_magnitude(raw: int, sign_bit: int) -> int:
    """The servo's sign-magnitude register value -> a signed int."""
    magnitude = raw & ((1 << sign_bit) - 1)
    return -magnitude if raw >> sign_bit & 1 else magnitude


@dataclasses.dataclass
class BusStats:
    """Counters of one bus since connect: reads, retries taken, reads failed, writes."""

    reads: int = 0
    retries: int = 0
    failed_reads: int = 0
    writes: int = 0
    last_error: str = ""


class FeetechBus:
    """The servos of one arm on one serial port.

    Args:
        port: serial device, e.g. /dev/ttyACM0 (any path pyserial opens, a pty too).
        calibration: the motors (ids, ranges, homing offsets), in joint order (n motors).
        baudrate: bus speed, bit/s (SO-101: 1 Mbps).
        retries: extra tries of a failed read (LeRobot reads with num_retry=2).
    """

    def __init__(
        self,
        port: str,
        calibration: ArmCalibration,
        baudrate: int = 1_000_000,
        retries: int = 2,
    ) -> None:
        import scservo_sdk as scs  # optional hardware dependency, only when a bus is made

        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self._scs = scs
        self.port_name, self.calibration, self.retries = port, calibration, retries
        self.motors: tuple[MotorCalibration, ...] = calibration.motors
        self.ids = [m.id for m in self.motors]
        self.port = scs.PortHandler(port)
        self.port.baudrate = baudrate
        self.port.setPacketTimeout = self._set_packet_timeout
        self.packets = scs.PacketHandler(0)  # protocol 0: STS/SMS series, little-endian
        self.stats = BusStats()
        self._reader = scs.GroupSyncRead(self.port, self.packets, *REGISTERS["Present_Position"])
        for i in self.ids:
            self._reader.addParam(i)
        self._writer = scs.GroupSyncWrite(self.port, self.packets, *REGISTERS["Goal_Position"])

    def _set_packet_timeout(self, packet_length: int) -> None:
        # The PyPI SDK's timeout (16 ms latency timer x 2 + 2 ms) is one LeRobot replaces,
        # after the SDK bug fixed upstream only: wire time of the packet plus 3 bytes plus
        # 50 ms (lerobot src/lerobot/motors/feetech/feetech.py patch_setPacketTimeout).
        port = self.port
        port.packet_start_time = port.getCurrentTime()
        port.packet_timeout = port.tx_time_per_byte * (packet_length + 3) + 50.0

    # -- connection -----------------------------------------------------------------------
    def open(self) -> None:
        """Open the serial port (BusError naming it if that fails)."""
        try:
            ok = self.port.openPort()
        except Exception as exc:  # pyserial raises SerialException / OSError subclasses
            raise BusError(f"cannot open serial port {self.port_name}: {exc}") from exc
        if not ok:
            raise BusError(f"cannot open {self.port_name} at {self.port.baudrate} bit/s")

    def close(self) -> None:
        if self.port.is_open:
            self.port.closePort()

    def connect(self, write_calibration: bool = True) -> None:
        """Open the port, check every motor answers as an STS3215, set it up as LeRobot does,
        make its EEPROM calibration (Homing_Offset, position limits) equal the file's, then
        enable torque holding the present position. BusError names the first motor that fails."""
        if not self.port.is_open:
            self.open()
        for m in self.motors:
            model = self.read_register(m, "Model_Number")
            if model != STS3215_MODEL:
                raise BusError(
                    f"motor {m.name!r} (id {m.id}) on {self.port_name} reports model {model}; "
                    f"expected an STS3215 ({STS3215_MODEL})"
                )
        for m in self.motors:
            self.write_register(m, "Torque_Enable", 0)
            self.write_register(m, "Lock", 0)  # EEPROM writable
            for name, value in SETUP:
                self.write_register(m, name, value)
            self._sync_calibration(m, write_calibration)
        for m in self.motors:
            # Hold where it stands: a stale Goal_Position (written in another homing frame,
            # or by another program) must not make the arm jump when the torque comes on.
            self.write_register(m, "Goal_Position", self.read_register(m, "Present_Position"))
            self.write_register(m, "Torque_Enable", 1)
            self.write_register(m, "Lock", 1)

    def _sync_calibration(self, m: MotorCalibration, write: bool) -> None:
        wanted = {
            "Homing_Offset": encode_sign_magnitude(m.homing_offset, HOMING_SIGN_BIT),
            "Min_Position_Limit": m.range_min,
            "Max_Position_Limit": m.range_max,
        }
        for name, value in wanted.items():
            have = self.read_register(m, name)
            if have == value:
                continue
            if not write:
                raise BusError(
                    f"motor {m.name!r} (id {m.id}): {name} is {have} on the servo but {value} in "
                    f"{self.calibration.source}; recalibrate or allow writing the calibration"
                )
            self.write_register(m, name, value)

    def disable_torque(self) -> None:
        """Torque off on every motor (best effort: a dead motor is skipped)."""
        for m in self.motors:
            try:
                self.write_register(m, "Torque_Enable", 0)
            except BusError:
                pass

    # -- single registers (set-up; each with its status reply) --------------------------
    def _begin(self) -> None:
        # A late status packet of an earlier, timed-out transaction would be read as this
        # one's reply; and a failed transaction can leave the SDK's busy flag set.
        self.port.is_using = False
        self.port.ser.reset_input_buffer()

    def read_register(self, m: MotorCalibration, name: str) -> int:
        """One register of motor `m` (retried); BusError after 1 + retries failures."""
        address, size = REGISTERS[name]
        reader = {1: self.packets.read1ByteTxRx, 2: self.packets.read2ByteTxRx}[size]
        for _ in range(self.retries + 1):
            self._begin()
            value, result, _ = reader(self.port, m.id, address)
            if result == self._scs.COMM_SUCCESS:
                return int(value)
        raise BusError(
            f"reading {name} of motor {m.name!r} (id {m.id}) on {self.port_name} failed "
            f"{self.retries + 1} times: {self.packets.getTxRxResult(result)}"
        )

    def write_register(self, m: MotorCalibration, name: str, value: int) -> None:
        """Write one register of motor `m` and wait for its status reply (retried)."""
        address, size = REGISTERS[name]
        writer = {1: self.packets.write1ByteTxRx, 2: self.packets.write2ByteTxRx}[size]
        for _ in range(self.retries + 1):
            self._begin()
            result, _ = writer(self.port, m.id, address, int(value))
            if result == self._scs.COMM_SUCCESS:
                return
        raise BusError(
            f"writing {name}={value} to motor {m.name!r} (id {m.id}) on {self.port_name} "
            f"failed {self.retries + 1} times: {self.packets.getTxRxResult(result)}"
        )

    # -- the control loop: one sync read, one sync write ---------------------------------
    def read_positions(self) -> np.ndarray:
        """Present_Position of every motor (n,) ticks, one sync read retried on a corrupt or
        missing status packet; BusError naming the motors after 1 + retries failures."""
        self.stats.reads += 1
        address, size = REGISTERS["Present_Position"]
        for attempt in range(self.retries + 1):
            self._begin()
            result = self._reader.txRxPacket()
            if result == self._scs.COMM_SUCCESS:
                values = [self._reader.getData(i, address, size) for i in self.ids]
                return np.array(values, dtype=int)
            if attempt < self.retries:
                self.stats.retries += 1
        self.stats.failed_reads += 1
        # The SDK reads the replies in id order and stops at the first bad one.
        culprit = next((m for m in self.motors if not self._reader.data_dict.get(m.id)), None)
        who = f"motor {culprit.name!r} (id {culprit.id})" if culprit else "a motor"
        self.stats.last_error = (
            f"sync read of Present_Position on {self.port_name} failed {self.retries + 1} "
            f"times ({self.packets.getTxRxResult(result)}); no valid reply from {who}"
        )
        raise BusError(self.stats.last_error)

    def write_goals(self, ticks: Sequence[int]) -> None:
        """Goal_Position of every motor (n,) ticks in one sync write (no reply: broadcast)."""
        ticks = [int(t) for t in ticks]
        if len(ticks) != len(self.ids):
            raise ValueError(f"{len(ticks)} goals for {len(self.ids)} motors {self.ids}")
        scs = self._scs
        self._writer.clearParam()
        for i, t in zip(self.ids, ticks, strict=True):
            self._writer.addParam(i, [scs.SCS_LOBYTE(t), scs.SCS_HIBYTE(t)])
        self._begin()
        result = self._writer.txPacket()
        if result != scs.COMM_SUCCESS:
            raise BusError(
                f"sync write of Goal_Position on {self.port_name} failed: "
                f"{self.packets.getTxRxResult(result)}"
            )
        self.stats.writes += 1

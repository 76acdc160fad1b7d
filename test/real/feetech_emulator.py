"""A byte-level emulator of Feetech STS servos on one bus, behind a pseudo-terminal.

The test opens the pty's slave path like a USB serial adapter; a thread reads instruction
packets (0xFF 0xFF id length instruction params checksum, checksum = ~(id + length + ...)
& 0xFF) from the master side and answers with status packets as the servos would: PING,
READ, WRITE, SYNC_READ (0x82: one status packet per listed id, in order) and SYNC_WRITE
(0x83, no reply). Each servo has a 256-byte register file (STS/SMS control table) and moves
its position towards its goal at a bounded speed while torque is on. Faults are injected per
reply: dropped (no reply), corrupt (wrong checksum), or the whole bus dead.
"""

from __future__ import annotations

import dataclasses
import os
import select
import threading
import time
import tty

PING, READ, WRITE, SYNC_READ, SYNC_WRITE = 0x01, 0x02, 0x03, 0x82, 0x83
BROADCAST = 0xFE
ADDR = {
    "Model_Number": 3,
    "ID": 5,
    "Return_Delay_Time": 7,
    "Min_Position_Limit": 9,
    "Max_Position_Limit": 11,
    "P_Coefficient": 21,
    "D_Coefficient": 22,
    "I_Coefficient": 23,
    "Homing_Offset": 31,
    "Operating_Mode": 33,
    "Torque_Enable": 40,
    "Acceleration": 41,
    "Goal_Position": 42,
    "Lock": 55,
    "Present_Position": 56,
    "Maximum_Acceleration": 85,
}
WORDS = {"Model_Number", "Min_Position_Limit", "Max_Position_Limit", "Homing_Offset"}
WORDS |= {"Goal_Position", "Present_Position"}


def checksum(body: bytes) -> int:
    return ~sum(body) & 0xFF


def packet(servo_id: int, first: int, params: bytes = b"") -> bytes:
    """Instruction (first = instruction) or status (first = error byte) packet."""
    body = bytes([servo_id, len(params) + 2, first]) + params
    return b"\xff\xff" + body + bytes([checksum(body)])


@dataclasses.dataclass
class Servo:
    """One emulated STS3215: registers, and the raw encoder position it really has."""

    id: int
    actual: float  # raw ticks before the homing offset
    speed: float = 3000.0  # ticks/s towards the goal (the STS3215 does ~3,000 at 12 V)
    registers: bytearray = dataclasses.field(default_factory=lambda: bytearray(256))

    def __post_init__(self) -> None:
        self.set("Model_Number", 777)
        self.set("ID", self.id)
        self.set("Return_Delay_Time", 250)  # factory default: 500 us
        self.set("Max_Position_Limit", 4095)
        self.set("P_Coefficient", 32)
        self.set("D_Coefficient", 32)
        self.set("Maximum_Acceleration", 0)
        self.set("Goal_Position", self.present())

    def get(self, name: str) -> int:
        a = ADDR[name]
        if name in WORDS:
            return self.registers[a] | self.registers[a + 1] << 8
        return self.registers[a]

    def set(self, name: str, value: int) -> None:
        a = ADDR[name]
        if name in WORDS:
            self.registers[a], self.registers[a + 1] = value & 0xFF, value >> 8 & 0xFF
        else:
            self.registers[a] = value & 0xFF

    def offset(self) -> int:
        raw = self.get("Homing_Offset")
        magnitude = raw & 0x7FF
        return -magnitude if raw >> 11 & 1 else magnitude

    def present(self) -> int:
        # Present_Position = actual - Homing_Offset (lerobot feetech.py _get_half_turn_homings)
        return int(round(self.actual - self.offset())) % 4096

    def advance(self, dt: float) -> None:
        if self.get("Torque_Enable"):
            lo, hi = self.get("Min_Position_Limit"), self.get("Max_Position_Limit")
            goal = min(max(self.get("Goal_Position"), lo), hi) + self.offset()
            step = self.speed * dt
            self.actual += max(-step, min(step, goal - self.actual))
        self.set("Present_Position", self.present())


class FeetechBusEmulator:
    """Servos `ids` on a pty; `port` is the path to open. Use as a context manager.

    Fault injection (each counts replies, i.e. status packets the servos would send):
        drop_every: every k-th reply is not sent (0 = never).
        corrupt_every: every k-th reply is sent with a wrong checksum (0 = never).
        dead: no servo answers anything (a cut cable, a brown-out).
    """

    def __init__(self, positions: dict[int, int]) -> None:
        self.servos = {i: Servo(i, float(p)) for i, p in positions.items()}
        self.drop_every = 0
        self.corrupt_every = 0
        self.dead = False
        self.replies = 0
        self.dropped = 0
        self.corrupted = 0
        self.sync_writes = 0
        self.instructions: list[tuple[int, int]] = []  # (id, instruction) as received
        self.lock = threading.Lock()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feetech-emulator", daemon=True)
        self._last = time.monotonic()

    def __enter__(self) -> FeetechBusEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        os.close(self._master)
        os.close(self._slave)

    def register(self, servo_id: int, name: str) -> int:
        with self.lock:
            return self.servos[servo_id].get(name)

    def present(self, servo_id: int) -> int:
        with self.lock:
            self._advance()
            return self.servos[servo_id].present()

    # -- the bus --------------------------------------------------------------------------
    def _advance(self) -> None:
        now = time.monotonic()
        for s in self.servos.values():
            s.advance(now - self._last)
        self._last = now

    def _run(self) -> None:
        buffer = bytearray()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                buffer += os.read(self._master, 4096)
            except OSError:
                return
            while True:
                start = buffer.find(b"\xff\xff")
                if start < 0:
                    buffer.clear()
                    break
                del buffer[:start]
                if len(buffer) < 4 or len(buffer) < 4 + buffer[3]:
                    break  # wait for the rest of the packet
                length = buffer[3]
                frame = bytes(buffer[: 4 + length])
                del buffer[: 4 + length]
                if checksum(frame[2:-1]) != frame[-1]:
                    continue  # a servo ignores a corrupt instruction
                self._handle(frame[2], frame[4], frame[5:-1])

    def _reply(self, servo_id: int, params: bytes = b"") -> None:
        if self.dead:
            return
        self.replies += 1
        if self.drop_every and self.replies % self.drop_every == 0:
            self.dropped += 1
            return
        data = bytearray(packet(servo_id, 0, params))
        if self.corrupt_every and self.replies % self.corrupt_every == 0:
            self.corrupted += 1
            data[-1] ^= 0x5A
        os.write(self._master, bytes(data))

    def _handle(self, servo_id: int, instruction: int, params: bytes) -> None:
        with self.lock:
            self.instructions.append((servo_id, instruction))
            self._advance()
            servo = self.servos.get(servo_id)
            if instruction == SYNC_WRITE:
                self.sync_writes += 1
                address, size = params[0], params[1]
                body = params[2:]
                for k in range(0, len(body), size + 1):
                    target = self.servos.get(body[k])
                    if target is not None and not self.dead:
                        target.registers[address : address + size] = body[k + 1 : k + 1 + size]
            elif instruction == SYNC_READ:
                address, size = params[0], params[1]
                for i in params[2:]:
                    if i in self.servos:
                        regs = self.servos[i].registers
                        self._reply(i, bytes(regs[address : address + size]))
            elif servo is None or servo_id == BROADCAST:
                return
            elif instruction == PING:
                self._reply(servo_id)
            elif instruction == READ:
                address, size = params[0], params[1]
                self._reply(servo_id, bytes(servo.registers[address : address + size]))
            elif instruction == WRITE:
                if not self.dead:
                    address = params[0]
                    servo.registers[address : address + len(params) - 1] = params[1:]
                self._reply(servo_id)

"""The Feetech bus (feetech-servo-sdk over pyserial) against the byte-level servo emulator on
a pseudo-terminal: set-up at connect, reads with retries through dropped and corrupt status
packets, sync writes, a dead bus that fails within a bounded time."""

from __future__ import annotations

import time

import pytest
from feetech_emulator import FeetechBusEmulator
from test_calibration import CALIBRATION

from mbrl.real.calibration import calibration_from_dict
from mbrl.real.feetech_bus import (
    SETUP,
    BusError,
    FeetechBus,
    decode_sign_magnitude,
    encode_sign_magnitude,
)

pytest.importorskip("scservo_sdk")
CAL = calibration_from_dict(CALIBRATION, source="my_so101.json")


@pytest.fixture
def emulator():
    # raw encoder positions such that every joint reads inside its calibrated range
    with FeetechBusEmulator({m.id: 2048 + m.homing_offset for m in CAL.motors}) as emu:
        yield emu


@pytest.fixture
def bus(emulator):
    bus = FeetechBus(emulator.port, CAL, retries=2)
    try:
        yield bus
    finally:
        bus.close()


def test_sign_magnitude_round_trip():
    for v in (-2047, -1470, -1, 0, 1, 157, 2047):
        assert decode_sign_magnitude(encode_sign_magnitude(v, 11), 11) == v
    assert encode_sign_magnitude(-1, 11) == 0x801
    with pytest.raises(ValueError):
        encode_sign_magnitude(2048, 11)


def test_connect_sets_up_servos_as_lerobot_and_writes_the_calibration(emulator, bus):
    bus.connect()
    for m in CAL.motors:
        for name, value in SETUP:
            assert emulator.register(m.id, name) == value, (m.name, name)
        assert decode_sign_magnitude(emulator.register(m.id, "Homing_Offset"), 11) == (
            m.homing_offset
        )
        assert emulator.register(m.id, "Min_Position_Limit") == m.range_min
        assert emulator.register(m.id, "Max_Position_Limit") == m.range_max
        assert emulator.register(m.id, "Torque_Enable") == 1
        assert emulator.register(m.id, "Lock") == 1
    # the homing offset now applies: every motor reads ~2048 (the raw positions were
    # chosen so), as Present_Position = actual - Homing_Offset
    ticks = bus.read_positions()
    assert all(abs(int(t) - 2048) <= 1 for t in ticks), ticks
    goals = [m.range_min + 100 for m in CAL.motors]
    bus.write_goals(goals)
    # a sync write has no status reply: wait (bounded) for the emulator to have read it
    written = []
    for _ in range(200):
        written = [emulator.register(m.id, "Goal_Position") for m in CAL.motors]
        if written == goals:
            break
        time.sleep(0.01)
    assert written == goals
    ticks = None
    for _ in range(500):  # the emulated servos move at ~3,000 ticks/s: well under 1 s
        try:
            ticks = bus.read_positions()
        except BusError:  # a starved emulator thread on a loaded machine: read again
            continue
        if all(abs(int(t) - g) <= 2 for t, g in zip(ticks, goals, strict=True)):
            break
        time.sleep(0.01)
    assert ticks is not None and all(
        abs(int(t) - g) <= 2 for t, g in zip(ticks, goals, strict=True)
    ), ticks


def test_without_write_permission_a_calibration_mismatch_names_the_motor(emulator, bus):
    with pytest.raises(BusError, match="motor 'shoulder_pan' \\(id 1\\): Homing_Offset"):
        bus.connect(write_calibration=False)


def test_reads_survive_dropped_and_corrupt_status_packets(emulator, bus):
    bus.connect()
    # At most two faults in any 18 replies (three sync reads of 6 motors): 2 retries
    # always get through, deterministically.
    emulator.drop_every, emulator.corrupt_every = 37, 29
    before = emulator.replies
    for _ in range(100):
        ticks = bus.read_positions()
        assert len(ticks) == len(CAL.motors)
    assert emulator.dropped > 0 and emulator.corrupted > 0
    # each faulty sync read was retried (two faults in one read cost one retry)
    assert 0.5 * (emulator.dropped + emulator.corrupted) <= bus.stats.retries
    assert bus.stats.retries <= emulator.dropped + emulator.corrupted
    assert bus.stats.failed_reads == 0
    assert emulator.replies - before >= 600


def test_a_dead_bus_fails_within_a_bounded_time_and_recovers(emulator, bus):
    bus.connect()
    emulator.dead = True
    start = time.monotonic()
    with pytest.raises(BusError, match="failed 3 times .*no valid reply from motor"):
        bus.read_positions()
    # three attempts of one packet timeout each (~50 ms at 1 Mbps), not a hang; the bound
    # is loose on purpose (a loaded machine)
    assert time.monotonic() - start < 10.0
    emulator.dead = False
    assert len(bus.read_positions()) == len(CAL.motors)


def test_a_wrong_model_or_missing_motor_is_named(emulator):
    cal = calibration_from_dict(
        {**CALIBRATION, "gripper": {**CALIBRATION["gripper"], "id": 9}}, source="x.json"
    )
    bus = FeetechBus(emulator.port, cal, retries=0)
    try:
        with pytest.raises(BusError, match="Model_Number of motor 'gripper' \\(id 9\\)"):
            bus.connect()
    finally:
        bus.close()
    with pytest.raises(BusError, match="cannot open serial port /nonexistent/tty"):
        FeetechBus("/nonexistent/tty", CAL).open()

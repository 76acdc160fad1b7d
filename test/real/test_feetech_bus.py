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


def test_sign_magnitude_round_trip():
    for v in (-2047, -1470, -1, 0, 1, 157, 2047):
        assert decode_sign_magnitude(encode_sign_magnitude(v, 11), 11) == v
    assert encode_sign_magnitude(-1, 11) == 0x801
    with pytest.raises(ValueError):
        encode_sign_magnitude(2048, 11)


def test_connect_sets_up_servos_as_lerobot_and_writes_the_calibration(emulator):
    bus = FeetechBus(emulator.port, CAL)
    try:
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
        assert [emulator.register(m.id, "Goal_Position") for m in CAL.motors] == goals
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(
            abs(int(t) - g) > 2 for t, g in zip(bus.read_positions(), goals, strict=True)
        ):
            time.sleep(0.02)
        assert all(abs(int(t) - g) <= 2 for t, g in zip(bus.read_positions(), goals, strict=True))
    finally:
        bus.close()


def test_without_write_permission_a_calibration_mismatch_names_the_motor(emulator):
    bus = FeetechBus(emulator.port, CAL)
    try:
        with pytest.raises(BusError, match="motor 'shoulder_pan' \\(id 1\\): Homing_Offset"):
            bus.connect(write_calibration=False)
    finally:
        bus.close()


def test_reads_survive_dropped_and_corrupt_status_packets(emulator):
    bus = FeetechBus(emulator.port, CAL, retries=2)
    try:
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
    finally:
        bus.close()


def test_a_dead_bus_fails_within_a_bounded_time_and_recovers(emulator):
    bus = FeetechBus(emulator.port, CAL, retries=2)
    try:
        bus.connect()
        emulator.dead = True
        start = time.monotonic()
        with pytest.raises(BusError, match="failed 3 times .*no valid reply from motor"):
            bus.read_positions()
        # three attempts of one SDK packet timeout each (~35 ms at 1 Mbps): never a hang
        assert time.monotonic() - start < 1.0
        emulator.dead = False
        assert len(bus.read_positions()) == len(CAL.motors)
    finally:
        bus.close()


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

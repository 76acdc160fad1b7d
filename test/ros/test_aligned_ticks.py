"""Real-time ticks aligned to the joint states (mbrl.ros.controller_support.AlignedTicks):
one tick per control period on the first new state after each boundary, at any state rate."""

from __future__ import annotations

import numpy as np

from mbrl.ros.controller_support import AlignedTicks


def _ticks(state_times, period=0.05) -> list[float]:
    gate = AlignedTicks(period)
    return [t for t in state_times if gate.tick(t)]


def test_a_20_hz_state_stream_ticks_on_every_state_despite_jitter():
    rng = np.random.default_rng(0)
    times = np.arange(200) * 0.05 + rng.uniform(-0.008, 0.008, 200)
    assert _ticks(times) == list(times)


def test_a_50_hz_driver_ticks_at_20_hz_on_the_state_after_each_boundary():
    times = np.arange(500) * 0.02  # a ros2_control joint_state_broadcaster at 50 Hz
    ticks = np.array(_ticks(times))
    assert len(ticks) == 200  # 10 s at 20 Hz, not 50 Hz
    gaps = np.diff(ticks)
    assert np.all((gaps > 0.035) & (gaps < 0.065))  # one state period of jitter at most
    assert abs(gaps.mean() - 0.05) < 1e-3


def test_a_pause_in_the_states_restarts_the_schedule_without_a_burst():
    times = [0.0, 0.05, 0.10, 1.0, 1.02, 1.04, 1.06, 1.08, 1.10]  # states stop, then 50 Hz
    assert _ticks(times) == [0.0, 0.05, 0.10, 1.0, 1.04, 1.10]


def test_a_repeated_state_inside_a_period_does_not_tick_twice():
    assert _ticks([0.0, 0.001, 0.002, 0.05, 0.051]) == [0.0, 0.05]

"""Deadline handling with a fake clock: each model step costs a known amount of 'time'."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from control_systems import double_integrator

from mbrl.control.anytime import AnytimeMPC
from mbrl.control.cem import CEMConfig, CEMPlanner
from mbrl.control.ilqr import ILQRConfig, ILQRPlanner
from mbrl.control.plan import IterationBudget, Plan
from mbrl.costs.quadratic import QuadraticCost

T = 10  # horizon: one CEM iteration = T model steps = T * DT fake seconds
DT = 0.001


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class TimedSystem:
    """The double integrator, where every batched step advances the fake clock by DT."""

    ensemble_size = 1

    def __init__(self, clock):
        self.clock, self.base = clock, double_integrator()
        self.du = 1

    def step(self, x, u, mode="mean", generator=None):
        self.clock.t += DT
        return self.base.step(x, u)

    def predict(self, x, u):
        self.clock.t += DT
        return self.base.predict(x, u)

    def linearize(self, x, u):
        return self.base.linearize(x, u)


def _mpc(clock, iterations=5):
    cost = QuadraticCost(np.diag([1.0, 0.1]), np.array([[0.01]]), np.diag([10.0, 1.0]))
    cfg = CEMConfig(horizon=T, num_samples=20, num_elites=5, iterations=iterations)
    planner = CEMPlanner(
        TimedSystem(clock), cost, 1, cfg, generator=torch.Generator().manual_seed(0), clock=clock
    )
    return AnytimeMPC(planner, du=1, clock=clock)


def test_full_budget_when_deadline_is_generous():
    clock = FakeClock()
    mpc = _mpc(clock)
    plan = mpc.plan(np.array([1.0, 0.0]), deadline=clock() + 1.0)
    assert plan.iterations == 5 and plan.complete
    assert mpc.stats.misses == 0 and mpc.stats.truncated == 0 and mpc.stats.late == 0


def test_iterations_stop_before_the_deadline_and_count_truncation():
    clock = FakeClock()
    mpc = _mpc(clock)
    mpc.warmup(np.array([1.0, 0.0]))  # learns the iteration length (T * DT)
    assert mpc.stats.ticks == 0
    start = clock()
    deadline = start + 2.5 * T * DT
    plan = mpc.plan(np.array([1.0, 0.0]), deadline=deadline)
    assert plan.iterations == 2 and not plan.complete
    assert clock() <= deadline  # the nominal rollout was skipped rather than run late
    assert mpc.stats.truncated == 1 and mpc.stats.misses == 0 and mpc.stats.late == 0


def test_no_time_uses_shifted_previous_plan_and_counts_a_miss():
    clock = FakeClock()
    mpc = _mpc(clock)
    first = mpc.plan(np.array([1.0, 0.0]))
    plan = mpc.plan(np.array([0.9, -0.1]), deadline=clock() + 0.5 * T * DT)
    assert plan.iterations == 0 and mpc.stats.misses == 1
    np.testing.assert_array_equal(plan.actions[:-1], first.actions[1:])
    np.testing.assert_array_equal(plan.states[:-1], first.states[1:])
    u = mpc.act(np.array([0.9, -0.1]), deadline=clock() - 1.0)  # deadline already past
    np.testing.assert_array_equal(u, first.actions[2])
    assert mpc.stats.misses == 2 and mpc.stats.late == 0


def test_never_late_over_many_deadlines():
    clock = FakeClock()
    mpc = _mpc(clock)
    rng = np.random.default_rng(0)
    mpc.plan(np.array([1.0, 0.0]))
    x = np.array([1.0, 0.0])
    for _ in range(40):
        budget = rng.uniform(0.0, 7 * T * DT)
        deadline = clock() + budget
        mpc.act(x, deadline)
        assert clock() <= deadline
    assert mpc.stats.late == 0
    assert mpc.stats.misses > 0 and mpc.stats.truncated > 0  # both paths were exercised


def test_ilqr_honours_deadline_with_fake_clock():
    clock = FakeClock()
    cost = QuadraticCost(np.diag([1.0, 0.1]), np.array([[0.01]]), np.diag([10.0, 1.0]))
    planner = ILQRPlanner(
        TimedSystem(clock), cost, 1, ILQRConfig(horizon=T, iterations=3), clock=clock
    )
    planner.plan(np.array([1.0, 0.0]))
    planner.reset()
    plan = planner.plan(np.array([1.0, 0.0]), deadline=clock())
    assert plan.iterations == 0 and not plan.complete


def test_iteration_budget_estimate_decays_after_one_slow_iteration():
    clock = FakeClock()
    b = IterationBudget(clock)
    b.start(None)
    clock.t += 1.0
    b.lap()
    for _ in range(30):
        clock.t += 0.1
        b.lap()
    assert b.estimate < 0.1


def test_one_inflated_iteration_locks_planning_out_for_a_few_calls_only():
    clock = FakeClock()
    b = IterationBudget(clock)
    b.start(None)
    for _ in range(4):  # real iterations take 10 ms ...
        clock.t += 0.01
        b.lap()
    clock.t += 1.0  # ... then one took 1 s (descheduled)
    b.lap()
    refused = 0
    for _ in range(20):  # ticks with a 30 ms budget
        b.start(clock() + 0.03)
        if b.may_start():
            break
        refused += 1
    # 1 s would halve to < 30 ms after 6 refusals; after probe_every (5) refusals in a row
    # the next call measures again instead. Without either it would refuse forever.
    assert refused == IterationBudget.probe_every == 5
    clock.t += 0.01
    b.lap()
    assert b.estimate == pytest.approx(0.01)
    for _ in range(2):  # three recent iterations of 10 ms: the median floor is 10 ms
        b.start(None)
        clock.t += 0.01
        b.lap()
    # A deadline shorter than a real iteration does not decay it below the recent median ...
    for _ in range(IterationBudget.probe_every - 1):
        b.start(clock() + 0.001)
        assert not b.may_start()
        assert b.estimate == pytest.approx(0.01)
    # ... for probe_every calls in a row; then one call runs an iteration to measure again
    # (the median may come from a load that has passed: in real time the arm held still)
    b.start(clock() + 0.001)
    assert not b.may_start()
    b.start(clock() + 0.001)
    assert b.may_start()
    clock.t += 0.01
    b.lap()
    assert b.estimate == pytest.approx(0.01)
    # Refusals after an iteration ran in the same call do not decay the estimate.
    b.start(clock() + 0.001)
    before = b.estimate
    clock.t += 0.0005
    b.lap()
    assert not b.may_start() and b.estimate == pytest.approx(max(0.0005, 0.9 * before))


def test_plan_shift_repeats_last_step():
    p = Plan(np.arange(6.0).reshape(3, 2), np.arange(8.0).reshape(4, 2), iterations=2)
    s = p.shifted()
    np.testing.assert_array_equal(s.actions, [[2, 3], [4, 5], [4, 5]])
    np.testing.assert_array_equal(s.states[-1], [6, 7])
    assert s.iterations == 0 and not s.complete

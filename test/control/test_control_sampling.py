"""CEM, iCEM and MPPI reduce cost on analytic systems; particle propagation layout is right."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from control_systems import NoisyEnsemble, Pendulum, double_integrator

from mbrl.control.cem import CEMConfig, CEMPlanner
from mbrl.control.icem import ICEMConfig, ICEMPlanner, coloured_noise
from mbrl.control.mppi import MPPIConfig, MPPIPlanner
from mbrl.costs.quadratic import QuadraticCost

PLANNERS = {
    "cem": (CEMPlanner, CEMConfig),
    "icem": (ICEMPlanner, ICEMConfig),
    "mppi": (MPPIPlanner, MPPIConfig),
}


def _make(name, system, cost, **kw):
    cls, cfg_cls = PLANNERS[name]
    return cls(system, cost, system.du, cfg_cls(**kw), generator=torch.Generator().manual_seed(0))


def _di_cost():
    return QuadraticCost(np.diag([1.0, 0.1]), np.array([[0.01]]), np.diag([10.0, 1.0]))


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_open_loop_plan_cuts_double_integrator_cost(name):
    system, cost = double_integrator(), _di_cost()
    kw = dict(horizon=30, num_samples=200, iterations=5)
    if name == "mppi":
        kw.update(iterations=5, temperature=0.1)
    planner = _make(name, system, cost, **kw)
    x0 = np.array([1.0, 0.0])
    zero = planner.rollout(torch.tensor(x0), torch.zeros(1, 30, 1)).item()
    plan = planner.plan(x0)
    assert plan.actions.shape == (30, 1) and plan.states.shape == (31, 2)
    assert plan.iterations == 5 and plan.complete
    assert np.all(np.abs(plan.actions) <= 1.0)
    # Threshold: the unconstrained LQR optimum here is 0.43 of the zero-action cost.
    assert plan.cost < 0.5 * zero, (plan.cost, zero)


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_mpc_swings_pendulum_towards_upright(name):
    system = Pendulum()
    cost = QuadraticCost(np.diag([1.0, 0.05]), np.array([[1e-3]]), np.diag([10.0, 1.0]), [np.pi, 0])
    # |u| <= 12 exceeds the peak gravity torque 9.81, so a 1.5 s horizon sees the goal.
    kw = dict(horizon=30, num_samples=100, iterations=3, action_low=-12.0, action_high=12.0)
    if name == "mppi":
        kw.update(temperature=1.0, init_std=0.5)
    planner = _make(name, system, cost, **kw)
    x = np.zeros(2)
    for _ in range(80):
        u = planner.plan(x).actions[0]
        x = system.predict(x[None], u[None])[0][0]
    err = abs((x[0] - np.pi + np.pi) % (2 * np.pi) - np.pi)
    assert err < 0.2 and abs(x[1]) < 1.0, x


def test_warm_start_shifts_previous_plan():
    planner = _make("cem", double_integrator(), _di_cost(), horizon=10, num_samples=50)
    first = planner.plan(np.array([1.0, 0.0]))
    np.testing.assert_allclose(planner._warm[:-1].numpy(), first.actions[1:])
    np.testing.assert_allclose(planner._warm[-1].numpy(), 0.0)
    planner.reset()
    assert planner._warm is None


def test_ts1_keeps_each_particle_on_its_member():
    # x' = x + u + b_e: with P = E particles the P rollouts of a sample use members 0..E-1.
    biases = [[0.0], [1.0], [2.0], [3.0]]

    class Integrator:
        def step(self, x, u, *a):
            return x + u

    ens = NoisyEnsemble(Integrator(), biases)
    cost = QuadraticCost(np.zeros((1, 1)), np.zeros((1, 1)), np.eye(1))
    planner = CEMPlanner(
        ens,
        cost,
        1,
        CEMConfig(horizon=3, num_samples=2, num_elites=1, particles=4, propagation="ts1"),
    )
    c = planner.rollout(torch.zeros(1), torch.zeros(2, 3, 1))
    # terminal x for member e is 3 * b_e; cost 1/2 x^2 averaged over members
    expected = np.mean([0.5 * (3 * b[0]) ** 2 for b in biases])
    np.testing.assert_allclose(c.numpy(), [expected, expected], rtol=1e-6)
    assert planner.model_steps == 2 * 4 * 3


def test_disagreement_penalty_charges_particle_spread():
    class Integrator:
        def step(self, x, u, *a):
            return x + u

    ens = NoisyEnsemble(Integrator(), [[-1.0], [1.0]])
    cost = QuadraticCost(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)))
    cfg = dict(horizon=2, num_samples=4, num_elites=1, particles=2, propagation="ts1")
    plain = CEMPlanner(ens, cost, 1, CEMConfig(**cfg)).rollout(torch.zeros(1), torch.zeros(4, 2, 1))
    pen = CEMPlanner(ens, cost, 1, CEMConfig(**cfg, disagreement_weight=1.0))
    c = pen.rollout(torch.zeros(1), torch.zeros(4, 2, 1))
    np.testing.assert_allclose(plain.numpy(), 0.0)
    # particle positions +-1 then +-2: population variance 1 + 4
    np.testing.assert_allclose(c.numpy(), 5.0, rtol=1e-6)


def test_ts1_rejects_a_layout_that_splits_samples_across_members():
    ens = NoisyEnsemble(double_integrator(), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="divisible by ensemble_size 5"):
        CEMPlanner(
            ens,
            _di_cost(),
            1,
            CEMConfig(num_samples=12, num_elites=2, particles=3, propagation="ts1"),
        )


def test_coloured_noise_is_unit_variance_and_smoother_with_beta():
    g = torch.Generator().manual_seed(0)
    white = coloured_noise(0.0, (2000, 30, 1), g, torch.float64)
    red = coloured_noise(2.0, (2000, 30, 1), g, torch.float64)
    assert abs(white.std().item() - 1) < 0.05 and abs(red.std().item() - 1) < 0.05

    def lag1(x):
        return torch.corrcoef(torch.stack([x[:, :-1].flatten(), x[:, 1:].flatten()]))[0, 1]

    assert abs(lag1(white)) < 0.1 and lag1(red) > 0.7


def test_icem_population_decays_to_twice_the_elites():
    planner = _make(
        "icem",
        double_integrator(),
        _di_cost(),
        num_samples=100,
        num_elites=10,
        population_decay=2.0,
    )
    assert [planner._population(i) for i in range(4)] == [100, 50, 25, 20]


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match="num_elites"):
        CEMConfig(num_samples=10, num_elites=20)
    with pytest.raises(ValueError, match="propagation"):
        CEMConfig(propagation="bogus")
    with pytest.raises(ValueError, match="expected du=1"):
        _make("cem", double_integrator(), _di_cost(), action_low=(-1.0, -1.0))


def test_chunked_rollout_equals_unchunked():
    # Deterministic model, so chunking (a memory-traffic optimisation) must not change costs.
    ens = NoisyEnsemble(double_integrator(), [[0.0, 0.1], [0.0, -0.1]])
    acts = torch.randn(30, 8, 1, generator=torch.Generator().manual_seed(1))
    costs = []
    for chunk in (0, 16, 7):
        cfg = CEMConfig(
            horizon=8,
            num_samples=30,
            num_elites=3,
            particles=2,
            propagation="ts1",
            chunk_rows=chunk,
        )
        costs.append(CEMPlanner(ens, _di_cost(), 1, cfg).rollout(torch.tensor([1.0, 0.0]), acts))
    torch.testing.assert_close(costs[0], costs[1])
    torch.testing.assert_close(costs[0], costs[2])


def test_icem_rejects_particles_not_spread_over_members():
    ens = NoisyEnsemble(double_integrator(), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="particles divisible by 5"):
        ICEMPlanner(ens, _di_cost(), 1, ICEMConfig(num_samples=50, particles=1, propagation="ts1"))


@pytest.mark.parametrize("mode", ["ts1", "tsinf", "expectation", "mean"])
@pytest.mark.parametrize("name", ["cem", "icem", "mppi"])
def test_planners_run_on_the_probabilistic_ensemble(mode, name):
    from mbrl.models.ensemble import ProbabilisticEnsemble

    model = ProbabilisticEnsemble(4, 2, ensemble_size=2, hidden=(16, 16))
    cost = QuadraticCost(np.eye(4), 0.01 * np.eye(2), np.eye(4))
    cls, cfg_cls = PLANNERS[name]
    kw = dict(horizon=6, num_samples=20, iterations=2, particles=4, propagation=mode)
    if name != "mppi":
        kw["num_elites"] = 5
    cfg = cfg_cls(**kw, chunk_rows=40)
    planner = cls(model, cost, 2, cfg, generator=torch.Generator().manual_seed(0))
    plan = planner.plan(np.zeros(4, dtype=np.float32))
    assert plan.actions.shape == (6, 2) and plan.states.shape == (7, 4)
    assert np.isfinite(plan.cost) and np.all(np.abs(plan.actions) <= 1)


def test_deterministic_model_is_rolled_out_with_one_particle():
    from mbrl.models.kinematic import KinematicArmModel

    model = KinematicArmModel(-np.ones(2), np.ones(2), np.ones(2), 0.1, 0.05)
    cost = QuadraticCost(np.eye(2), 0.01 * np.eye(2), np.eye(2), [0.3, -0.2])
    cfg = CEMConfig(
        horizon=5, num_samples=10, num_elites=2, iterations=1, particles=5, propagation="ts1"
    )
    planner = CEMPlanner(model, cost, 2, cfg)
    planner.rollout(torch.zeros(2), torch.zeros(10, 5, 2))
    assert planner.model_steps == 10 * 5  # not 10 * 5 * 5

"""Named planner budgets: the PETS reference budget and the configuration shipped for 20 Hz.

Figures behind these choices are in docs/planners.md (bench/planner.py).
"""

from __future__ import annotations

from mbrl.control.cem import CEMConfig
from mbrl.control.icem import ICEMConfig

# PETS (Chua et al. 2018) as in mbrl-lib: CEM, 5 iterations x 400 samples, horizon 25,
# 40 elites, TS-infinity with 20 particles per sample (~1M model evaluations per replan).
PETS_BUDGET = CEMConfig(
    horizon=25,
    num_samples=400,
    num_elites=40,
    iterations=5,
    particles=20,
    propagation="tsinf",
    momentum=0.1,
)

# Shipped for replanning on every 20 Hz tick (50 ms) on 2 CPU cores: iCEM with coloured
# noise and elite reuse reaches the same task success with ~1/200 of the evaluations.
REALTIME_20HZ = ICEMConfig(
    horizon=10,
    num_samples=40,
    num_elites=8,
    iterations=3,
    particles=5,
    propagation="ts1",
    nominal_rollout=False,
)

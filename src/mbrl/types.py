"""Shared plain-data types passed between layers (arrays in, arrays out).

Shapes use the glossary in `mbrl.config`: N batch, T horizon, dx state, du action.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class JointState:
    """One measurement of the controlled joints, in controller joint order.

    Attributes:
        stamp: time of the measurement, s (sim time or wall time).
        position: (nj,) rad.
        velocity: (nj,) rad/s.
    """

    stamp: float
    position: np.ndarray
    velocity: np.ndarray

"""Time-parametrised joint trajectories sampled at the control rate, as trajectory controllers do.

Interpolation follows ros2_controllers' joint_trajectory_controller: linear in position when
points carry positions only, cubic Hermite when every point carries velocities.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicHermiteSpline


class TrajectorySampler:
    """Reference positions along a trajectory that starts at the arm's current position.

    Args:
        start: (n,) rad, the joints' positions when the trajectory is received; used as the
            point at t = 0 when the first point's time_from_start is > 0.
        times: (T,) s, strictly increasing time_from_start, >= 0.
        positions: (T, n) rad.
        velocities: (T, n) rad/s or None. With velocities the segment between two points is
            the cubic Hermite polynomial matching both positions and velocities; the implicit
            start point then has zero velocity.
    """

    def __init__(
        self,
        start: np.ndarray,
        times: np.ndarray,
        positions: np.ndarray,
        velocities: np.ndarray | None = None,
    ) -> None:
        times = np.asarray(times, dtype=float)
        positions = np.asarray(positions, dtype=float)
        if times[0] > 0:
            times = np.concatenate([[0.0], times])
            positions = np.vstack([np.asarray(start, dtype=float)[None], positions])
            if velocities is not None:
                velocities = np.vstack([np.zeros_like(positions[:1]), velocities])
        self.times = times
        self.positions = positions
        self._spline = (
            CubicHermiteSpline(times, positions, velocities, axis=0)
            if velocities is not None and len(times) > 1
            else None
        )

    @property
    def duration(self) -> float:
        """time_from_start of the last point, s."""
        return float(self.times[-1])

    def sample(self, t: float) -> np.ndarray:
        """Reference positions (n,) rad at `t` s after the start; held at the ends."""
        t = float(np.clip(t, self.times[0], self.times[-1]))
        if self._spline is not None:
            return np.asarray(self._spline(t), dtype=float)
        if len(self.times) == 1:
            return self.positions[0].copy()
        return np.array(
            [np.interp(t, self.times, self.positions[:, j]) for j in range(self.positions.shape[1])]
        )

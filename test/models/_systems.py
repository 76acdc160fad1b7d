"""Small synthetic systems shared by the model tests (fixed seeds, seconds to run)."""

from __future__ import annotations

import numpy as np


def linear_system(dx: int, du: int, seed: int):
    rng = np.random.default_rng(seed)
    A = np.eye(dx) + 0.05 * rng.standard_normal((dx, dx))
    B = 0.2 * rng.standard_normal((dx, du))
    c = 0.01 * rng.standard_normal(dx)
    return A, B, c


def rollouts(f, dx: int, du: int, K: int, T: int, rng: np.random.Generator, noise: float):
    """K episodes of length T of x' = f(x, u) + noise under uniform random actions."""
    X = np.zeros((K, T + 1, dx))
    U = rng.uniform(-1, 1, (K, T, du))
    X[:, 0] = rng.uniform(-1, 1, (K, dx))
    for t in range(T):
        X[:, t + 1] = f(X[:, t], U[:, t]) + noise * rng.standard_normal((K, dx))
    return X, U


def nonlinear_f(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A smooth 2-D pendulum-like map with a 1-D action."""
    return x + 0.1 * np.stack([np.sin(x[:, 1]), np.cos(x[:, 0]) * u[:, 0] - 0.2 * x[:, 1]], 1)

"""Analytic systems for planner tests: numpy (predict/linearize) and torch (step) faces."""

from __future__ import annotations

import numpy as np
import torch


class LinearSystem:
    """x' = A x + B u (+ c); ensemble_size 1; exact linearisation."""

    ensemble_size = 1

    def __init__(self, A, B, c=None):
        self.A, self.B = np.asarray(A, float), np.asarray(B, float)
        self.dx, self.du = self.B.shape
        self.c = np.zeros(self.dx) if c is None else np.asarray(c, float)

    def predict(self, x, u):
        mean = x @ self.A.T + u @ self.B.T + self.c
        return mean, np.zeros_like(mean)

    def linearize(self, x, u):
        N = x.shape[0]
        return (
            np.repeat(self.A[None], N, 0),
            np.repeat(self.B[None], N, 0),
            np.repeat(self.c[None], N, 0),
        )

    def step(self, x, u, mode="mean", generator=None):
        A = torch.as_tensor(self.A, dtype=x.dtype)
        B = torch.as_tensor(self.B, dtype=x.dtype)
        return x @ A.T + u @ B.T + torch.as_tensor(self.c, dtype=x.dtype)


def double_integrator(dt: float = 0.1) -> LinearSystem:
    """Position/velocity of a unit mass pushed by a force u (N), Euler-discretised."""
    return LinearSystem([[1.0, dt], [0.0, 1.0]], [[0.5 * dt * dt], [dt]])


class Pendulum:
    """theta'' = -(g/l) sin(theta) - b theta' + u, semi-implicit Euler; x = (theta, omega)."""

    ensemble_size = 1
    dx, du = 2, 1

    def __init__(self, dt=0.05, g_over_l=9.81, damping=0.1):
        self.dt, self.g, self.b = dt, g_over_l, damping

    def _acc(self, th, om, u, sin):
        return -self.g * sin(th) - self.b * om + u

    def predict(self, x, u):
        om = x[:, 1] + self.dt * self._acc(x[:, 0], x[:, 1], u[:, 0], np.sin)
        th = x[:, 0] + self.dt * om
        mean = np.stack([th, om], 1)
        return mean, np.zeros_like(mean)

    def linearize(self, x, u):
        N, dt = x.shape[0], self.dt
        dom_dth = -dt * self.g * np.cos(x[:, 0])
        dom_dom = 1 - dt * self.b
        A = np.zeros((N, 2, 2))
        A[:, 1, 0], A[:, 1, 1] = dom_dth, dom_dom
        A[:, 0, 0], A[:, 0, 1] = 1 + dt * dom_dth, dt * dom_dom
        B = np.zeros((N, 2, 1))
        B[:, 1, 0], B[:, 0, 0] = dt, dt * dt
        mean, _ = self.predict(x, u)
        c = mean - np.einsum("nij,nj->ni", A, x) - np.einsum("nij,nj->ni", B, u)
        return A, B, c

    def step(self, x, u, mode="mean", generator=None):
        om = x[:, 1] + self.dt * self._acc(x[:, 0], x[:, 1], u[:, 0], torch.sin)
        th = x[:, 0] + self.dt * om
        return torch.stack([th, om], 1)


class NoisyEnsemble:
    """E copies of a torch system with member-specific additive bias (for propagation tests).

    Row r belongs to member r // (N // E) (the TorchDynamics layout); under "tsinf" rows
    pick a random member each step; "expectation"/"mean" average the members."""

    def __init__(self, base, biases):
        self.base = base
        self.biases = torch.as_tensor(biases, dtype=torch.float32)  # (E, dx)
        self.ensemble_size = self.biases.shape[0]
        self.calls = 0

    def step(self, x, u, mode="ts1", generator=None):
        self.calls += 1
        nxt = self.base.step(x, u)
        E, N = self.ensemble_size, x.shape[0]
        if mode in ("expectation", "mean"):
            return nxt + self.biases.mean(0)
        if mode == "ts1":
            member = torch.arange(N) // (N // E)
        else:
            member = torch.randint(0, E, (N,), generator=generator)
        return nxt + self.biases[member]

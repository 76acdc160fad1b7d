"""The global policy of guided policy search: a small torch MLP trained by supervised learning
on the local controllers' actions, and its linearisation about the local trajectories.

MDGPS (Montgomery & Levine 2016, sec. 4) alternates a C-step (each local controller p_i takes
a KL-bounded LQG step towards low cost, the bound measured to the linearised global policy
pi_bar_i) and an S-step: minimise over the network parameters

    sum_i sum_t E_{x ~ p_i(x_t)} (pi(x) - mu_it(x))^T Lambda_it (pi(x) - mu_it(x)),

the KL(pi || p_i) terms that depend on the mean, where mu_it(x) = K_it x + k_it is the local
controller's mean action and Lambda_it = cov_it^-1 its precision. The policy covariance is the
inverse of the mean precision (the minimiser of the covariance terms of the same KL).

The network sees task features of the local state x (dx,) and the goal (3,): x, goal,
object - ee (push) and goal - (object or ee); with `relative` only the joint state (x before
the end effector) and those difference vectors, so that a few training goals cannot be told
apart by their absolute positions and the policy has to act on where the target is relative
to the tip. The linearisation differentiates through the features, so pi_bar_i is the
Jacobian of the policy in the local state the dynamics are fitted in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mbrl.control.gps_kl import LinearGaussianPolicy
from mbrl.models.io import check_arrays, load_model_file, save_model_file


class GlobalPolicy:
    """u = pi(x, goal) + N(0, cov): MLP mean (tanh hidden layers, linear output), diagonal cov.

    Args:
        dx: local state size; du: action size (normalised joint increments).
        ee: (start, stop) of the end effector in x; obj: of the object, or None (reach).
        hidden: hidden layer widths.
        generator: torch.Generator for the weight initialisation.
        relative: features without the absolute ee, object and goal (module docstring).
    """

    def __init__(
        self,
        dx: int,
        du: int,
        ee: tuple[int, int],
        obj: tuple[int, int] | None,
        hidden: tuple[int, ...] = (64, 64),
        generator: torch.Generator | None = None,
        relative: bool = False,
    ) -> None:
        self.dx, self.du, self.ee, self.obj, self.hidden = dx, du, tuple(ee), obj, tuple(hidden)
        self.relative = bool(relative)
        n_rel = 6 if obj is not None else 3
        self.n_features = (self.ee[0] if self.relative else dx + 3) + n_rel
        layers: list[torch.nn.Module] = []
        width = self.n_features
        for h in self.hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.Tanh()]
            width = h
        layers.append(torch.nn.Linear(width, du))
        self.net = torch.nn.Sequential(*layers).double()
        if generator is not None:
            with torch.no_grad():
                for p in self.net.parameters():
                    bound = 1.0 / np.sqrt(p.shape[-1])
                    p.uniform_(-bound, bound, generator=generator)
        with torch.no_grad():  # start as the zero policy: the first C-step is unbiased
            self.net[-1].weight.mul_(0.0)
            self.net[-1].bias.zero_()
        self.feat_mean = torch.zeros(self.n_features, dtype=torch.float64)
        self.feat_std = torch.ones(self.n_features, dtype=torch.float64)
        self.cov = np.eye(du)
        self.trained = False

    # -- features and mean -------------------------------------------------------------
    def features(self, x: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """x (N, dx), goal (N, 3) -> (N, n_features) unnormalised features."""
        ee = x[:, self.ee[0] : self.ee[1]]
        parts = [x[:, : self.ee[0]]] if self.relative else [x, goal]
        if self.obj is not None:
            obj = x[:, self.obj[0] : self.obj[1]]
            parts += [obj - ee, goal - obj]
        else:
            parts.append(goal - ee)
        return torch.cat(parts, dim=1)

    def _mean(self, x: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        f = (self.features(x, goal) - self.feat_mean) / self.feat_std
        return self.net(f)

    def mean(self, x: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """x (N, dx), goal (N, 3) or (3,) -> mean action (N, du)."""
        x_t = torch.as_tensor(np.atleast_2d(x), dtype=torch.float64)
        g_t = torch.as_tensor(np.broadcast_to(goal, (len(x_t), 3)).copy(), dtype=torch.float64)
        with torch.no_grad():
            return self._mean(x_t, g_t).numpy()

    def linearize(self, x: np.ndarray, goal: np.ndarray) -> LinearGaussianPolicy:
        """pi_bar about states x (T, dx) with a fixed goal (3,): K_t = d pi / d x at x_t,
        k_t = pi(x_t) - K_t x_t, cov_t = self.cov. Returns K (T, du, dx), k (T, du)."""
        x_t = torch.as_tensor(x, dtype=torch.float64).clone().requires_grad_(True)
        g_t = torch.as_tensor(np.broadcast_to(goal, (len(x_t), 3)).copy(), dtype=torch.float64)
        out = self._mean(x_t, g_t)
        # Rows do not interact, so the gradient of a column sum is every row's gradient.
        rows = [
            torch.autograd.grad(out[:, j].sum(), x_t, retain_graph=j < self.du - 1)[0]
            for j in range(self.du)
        ]
        K = torch.stack(rows, dim=1).detach().numpy()  # (T, du, dx)
        k = out.detach().numpy() - np.einsum("tux,tx->tu", K, x)
        cov = np.broadcast_to(self.cov, (len(x), self.du, self.du)).copy()
        return LinearGaussianPolicy(K, k, cov)

    # -- S-step ------------------------------------------------------------------------
    def fit(
        self,
        x: np.ndarray,
        goal: np.ndarray,
        target: np.ndarray,
        precision: np.ndarray,
        *,
        generator: torch.Generator,
        steps: int = 1000,
        batch: int = 256,
        lr: float = 1e-3,
    ) -> float:
        """Precision-weighted regression (module docstring), warm-started from the current
        weights. x (N, dx), goal (N, 3), target (N, du) local mean actions, precision
        (N, du, du). Sets cov = inverse mean precision. Returns the final mean loss."""
        n = len(x)
        if not (goal.shape == (n, 3) and target.shape == (n, self.du)):
            raise ValueError(
                f"GlobalPolicy.fit: x {x.shape}, goal {goal.shape}, target {target.shape}; "
                f"expected (N, {self.dx}), (N, 3), (N, {self.du})"
            )
        x_t = torch.as_tensor(x, dtype=torch.float64)
        g_t = torch.as_tensor(goal, dtype=torch.float64)
        y_t = torch.as_tensor(target, dtype=torch.float64)
        P = torch.as_tensor(precision, dtype=torch.float64)
        # Normalise the precision weights so the learning rate does not depend on the
        # controllers' noise scale; the minimiser is unchanged.
        P = P / P.diagonal(dim1=1, dim2=2).mean()
        self._renormalise(self.features(x_t, g_t))
        opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        loss_value = float("nan")
        for _ in range(steps):
            idx = torch.randint(n, (min(batch, n),), generator=generator)
            err = self._mean(x_t[idx], g_t[idx]) - y_t[idx]
            loss = torch.einsum("ni,nij,nj->n", err, P[idx], err).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_value = float(loss.detach())
        self.cov = np.linalg.inv(np.asarray(precision, float).mean(0))
        self.cov = 0.5 * (self.cov + self.cov.T)
        self.trained = True
        return loss_value

    def _renormalise(self, feats: torch.Tensor) -> None:
        """Set the input normalisation to the statistics of `feats` (N, n_features) and
        change the first layer so that the network computes the same function: statistics
        frozen at the first S-step (the arm near home, the cube still) put later states tens
        of standard deviations out and saturate the tanh units."""
        mean, std = feats.mean(0), feats.std(0).clamp_min(1e-3)
        first = self.net[0]
        with torch.no_grad():
            # W ((f - m) / s) + b = W' ((f - m') / s') + b' for all f:
            scale = std / self.feat_std
            first.bias.add_(first.weight @ ((mean - self.feat_mean) / self.feat_std))
            first.weight.mul_(scale)
        self.feat_mean, self.feat_std = mean, std

    # -- files -------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Weights, feature normalisation and covariance in a safe model file (no pickle)."""
        meta = dict(dx=self.dx, du=self.du, ee=list(self.ee), hidden=list(self.hidden))
        meta["relative"] = self.relative
        meta["obj"] = None if self.obj is None else list(self.obj)
        arrays = {f"p{i}": p.detach().numpy() for i, p in enumerate(self.net.parameters())}
        arrays.update(feat_mean=self.feat_mean.numpy(), feat_std=self.feat_std.numpy())
        arrays["cov"] = self.cov
        save_model_file(path, "GPSGlobalPolicy", meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> GlobalPolicy:
        meta, arrays = load_model_file(path, "GPSGlobalPolicy")
        obj = None if meta["obj"] is None else tuple(meta["obj"])
        pol = cls(
            meta["dx"],
            meta["du"],
            tuple(meta["ee"]),
            obj,
            tuple(meta["hidden"]),
            relative=bool(meta.get("relative", False)),
        )
        params = list(pol.net.parameters())
        shapes = {f"p{i}": tuple(p.shape) for i, p in enumerate(params)}
        shapes.update(feat_mean=(pol.n_features,), feat_std=(pol.n_features,))
        shapes["cov"] = (pol.du, pol.du)
        check_arrays(path, arrays, shapes)
        with torch.no_grad():
            for i, p in enumerate(params):
                p.copy_(torch.as_tensor(arrays[f"p{i}"]))
        pol.feat_mean = torch.as_tensor(arrays["feat_mean"])
        pol.feat_std = torch.as_tensor(arrays["feat_std"])
        pol.cov, pol.trained = arrays["cov"], True
        return pol

"""Model evaluation: one-step and k-step open-loop error, Gaussian NLL, 1/2-sigma coverage,
and a PNG of predicted vs real trajectories with uncertainty bands.

Any model with numpy `predict(x, u) -> (mean, var)` and `sample(x, u, rng)` works; the
time-varying local model is called with its time index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mbrl.data.dataset import TransitionDataset
from mbrl.models.local_lg import TimeVaryingLinearGaussian

_VAR_FLOOR = 1e-12


def _predict(model, x: np.ndarray, u: np.ndarray, t: np.ndarray):
    if isinstance(model, TimeVaryingLinearGaussian):
        return model.predict(x, u, t)
    return model.predict(x, u)


def _sample(model, x: np.ndarray, u: np.ndarray, t: np.ndarray, rng: np.random.Generator):
    if isinstance(model, TimeVaryingLinearGaussian):
        return model.sample(x, u, t, rng)
    return model.sample(x, u, rng)


def gaussian_metrics(
    mean: np.ndarray, var: np.ndarray, truth: np.ndarray, scale: np.ndarray | None = None
) -> dict[str, float]:
    """mean, var, truth (N, dx) -> rmse, nrmse, mean NLL per dimension (nats), coverage.

    nrmse divides each dimension's error by `scale` (dx,) first (default 1), so dimensions
    in different units weigh alike. Coverage is the fraction of (row, dimension) pairs with
    |truth - mean| <= k sqrt(var); a calibrated Gaussian gives 0.683 and 0.954.
    """
    var = np.maximum(var, _VAR_FLOOR)
    err = truth - mean
    z = np.abs(err) / np.sqrt(var)
    nll = 0.5 * (np.log(2 * np.pi * var) + err**2 / var)
    scale = np.ones(err.shape[1]) if scale is None else scale
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "nrmse": float(np.sqrt(np.mean((err / scale) ** 2))),
        "nll": float(np.mean(nll)),
        "cover1": float(np.mean(z <= 1.0)),
        "cover2": float(np.mean(z <= 2.0)),
    }


def one_step(model, data: TransitionDataset, scale: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of the one-step prediction x_{t+1} | x_t, u_t over every row of `data`."""
    mean, var = _predict(model, data.obs, data.act, data.t)
    return gaussian_metrics(mean, var, data.next_obs, scale)


def _episode_arrays(data: TransitionDataset):
    for eid in data.episode_ids:
        ep = data.subset(data.episode == eid)
        order = np.argsort(ep.t)
        yield ep.obs[order], ep.act[order], ep.next_obs[order], ep.t[order]


def k_step_rollouts(
    model,
    data: TransitionDataset,
    k: int,
    rng: np.random.Generator,
    num_particles: int = 20,
    stride: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open-loop k-step predictions from windows of every episode (recorded actions).

    Particles are sampled for k-1 steps; the last step uses `predict`, so the k-step
    predictive is the particle mixture: mean = avg mean_p, var = avg var_p + var(mean_p).
    Returns mean, var, truth, each (W, dx) over W windows starting every `stride` steps.
    """
    stride = k if stride is None else stride
    means, vars_, truths = [], [], []
    for obs, act, nxt, t in _episode_arrays(data):
        starts = np.arange(0, len(act) - k + 1, stride)
        if len(starts) == 0:
            continue
        W, P = len(starts), num_particles
        x = np.repeat(obs[starts], P, axis=0)  # (W P, dx), window-major
        for j in range(k - 1):
            idx = np.repeat(starts + j, P)
            x = _sample(model, x, act[idx], t[idx], rng)
        idx = np.repeat(starts + k - 1, P)
        m, v = _predict(model, x, act[idx], t[idx])
        m, v = m.reshape(W, P, -1), v.reshape(W, P, -1)
        means.append(m.mean(1))
        vars_.append(v.mean(1) + m.var(1))
        truths.append(nxt[starts + k - 1])
    if not means:
        raise ValueError(f"no episode has {k} steps; cannot evaluate {k}-step prediction")
    return np.vstack(means), np.vstack(vars_), np.vstack(truths)


def k_step(
    model,
    data: TransitionDataset,
    k: int,
    rng: np.random.Generator,
    num_particles: int = 20,
    scale: np.ndarray | None = None,
) -> dict[str, float]:
    """Gaussian metrics of the k-step open-loop prediction (see k_step_rollouts)."""
    return gaussian_metrics(*k_step_rollouts(model, data, k, rng, num_particles), scale)


def plot_rollout(
    models: dict,
    data: TransitionDataset,
    episode: int,
    dims: list[int],
    path: str | Path,
    rng: np.random.Generator,
    num_particles: int = 30,
    labels: list[str] | None = None,
) -> Path:
    """PNG: one panel per state dim, real trajectory vs each model's open-loop prediction
    from t=0 with recorded actions (mean and +-2 sigma band of the particle mixture)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obs, act, nxt, t = next(
        a for e, a in zip(data.episode_ids, _episode_arrays(data), strict=True) if e == episode
    )
    T = len(act)
    truth = np.vstack([obs[:1], nxt])
    fig, axes = plt.subplots(len(dims), 1, figsize=(7, 2.0 * len(dims)), sharex=True, squeeze=False)
    for name, model in models.items():
        x = np.repeat(obs[:1], num_particles, axis=0)
        mean, sd = [obs[0]], [np.zeros(obs.shape[1])]
        for j in range(T):
            uj, tj = np.repeat(act[j : j + 1], num_particles, 0), np.full(num_particles, t[j])
            m, v = _predict(model, x, uj, tj)
            mean.append(m.mean(0))
            sd.append(np.sqrt(v.mean(0) + m.var(0)))
            x = _sample(model, x, uj, tj, rng)
        mean, sd = np.array(mean), np.array(sd)
        for ax, d in zip(axes[:, 0], dims, strict=True):
            (line,) = ax.plot(mean[:, d], label=name)
            ax.fill_between(
                np.arange(T + 1),
                mean[:, d] - 2 * sd[:, d],
                mean[:, d] + 2 * sd[:, d],
                alpha=0.2,
                color=line.get_color(),
            )
    for i, (ax, d) in enumerate(zip(axes[:, 0], dims, strict=True)):
        ax.plot(truth[:, d], "k--", label="real")
        ax.set_ylabel(labels[i] if labels else f"x[{d}]")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize=7)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout(rect=(0, 0.03 + 0.02 * (len(models) // 3), 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path

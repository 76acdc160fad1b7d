"""Model quality where push needs it: one-step and k-step error of the object position on
contact transitions (the cube moves more than `threshold` in the tick) and on free motion,
the direction of the predicted cube displacement, and the calibration of the variance.

nMSE of a dimension = MSE of the predicted change / variance of the true change over the
contact transitions (windows), for both subsets: on contact, predicting their mean change
scores 1; on free motion the same scale says how large the error is next to a push.
Object position = the cube's x and y (the table holds z); the two are averaged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_VAR_FLOOR = 1e-14


def _nmse(pred_delta: np.ndarray, true_delta: np.ndarray, var: np.ndarray) -> float:
    """(N, 2), (N, 2), (2,) -> mean over the two dims of MSE / var."""
    return float(np.mean(((pred_delta - true_delta) ** 2).mean(0) / np.maximum(var, _VAR_FLOOR)))


def _calibration(mean: np.ndarray, var: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    z2 = (truth - mean) ** 2 / np.maximum(var, _VAR_FLOOR)
    return {
        "z2": float(np.mean(z2)),  # 1 if calibrated; > 1 over-confident
        "cover1": float(np.mean(z2 <= 1.0)),  # 0.683 if Gaussian and calibrated
        "cover2": float(np.mean(z2 <= 4.0)),  # 0.954
    }


def direction_agreement(pred_delta: np.ndarray, true_delta: np.ndarray) -> dict[str, float]:
    """(N, 2) planar displacements -> mean cosine, share with cosine > 0.5 (within 60 deg),
    share whose component along the true direction is at least half the true length, and
    the mean captured share of the move (a model predicting a nearly still cube scores ~0 on
    the last two whatever its direction)."""
    num = (pred_delta * true_delta).sum(1)
    true_len = np.linalg.norm(true_delta, axis=1)
    cos = num / np.maximum(np.linalg.norm(pred_delta, axis=1) * true_len, 1e-12)
    along = num / np.maximum(true_len, 1e-12)
    return {
        "cos_mean": float(cos.mean()),
        "within_60deg": float(np.mean(cos > 0.5)),
        "along_half": float(np.mean(along >= 0.5 * true_len)),
        # Mean share of the true move the prediction covers along its direction, in [0, 1].
        "captured": float(np.mean(np.clip(along / np.maximum(true_len, 1e-12), 0.0, 1.0))),
    }


def _scores(
    mean: np.ndarray,
    var: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    moved: np.ndarray,
    xy: slice,
    moves: bool,
) -> dict[str, dict[str, float]]:
    """Predicted mean/var of the end state, true start/end states (N, dx), the contact mask
    (N,) -> {"contact": ..., "free": ...} scores of the cube's x/y change."""
    true_d, pred_d = end[:, xy] - start[:, xy], mean[:, xy] - start[:, xy]
    scale = true_d[moved].var(0) if moved.sum() >= 2 else true_d.var(0)
    out = {}
    for name, rows in (("contact", moved), ("free", ~moved)):
        if rows.sum() < 2:
            out[name] = {"n": int(rows.sum())}
            continue
        t, p = true_d[rows], pred_d[rows]
        entry = {
            "n": int(rows.sum()),
            "nmse_xy": _nmse(p, t, scale),
            "zero_nmse_xy": _nmse(np.zeros_like(t), t, scale),
            "rmse_mm": float(1e3 * np.sqrt(np.mean((p - t) ** 2))),
            **_calibration(mean[rows][:, xy], var[rows][:, xy], end[rows][:, xy]),
        }
        if moves:
            entry["mean_move_mm"] = float(1e3 * np.linalg.norm(t, axis=1).mean())
            entry["mean_pred_move_mm"] = float(1e3 * np.linalg.norm(p, axis=1).mean())
            if name == "contact":
                entry.update(direction_agreement(p, t))
        out[name] = entry
    return out


def one_step_contact(
    model, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray, obj: int, threshold: float
) -> dict[str, dict[str, float]]:
    """Transitions (N, dx), (N, du), (N, dx); `obj` = state index of the cube x (then y, z).

    Returns {"contact": {...}, "free": {...}} with n, nmse_xy, rmse_mm, zero_nmse_xy (the
    score of predicting no motion), direction agreement (contact) and calibration of x, y.
    """
    mean, var = model.predict(obs, act)
    xy = slice(obj, obj + 2)
    moved = np.linalg.norm(next_obs[:, xy] - obs[:, xy], axis=1) > threshold
    return _scores(mean, var, obs, next_obs, moved, xy, moves=True)


def k_step_contact(
    model,
    episodes: Sequence[tuple[np.ndarray, np.ndarray]],
    obj: int,
    threshold: float,
    k: int = 10,
    particles: int = 20,
    rng: np.random.Generator | None = None,
) -> dict[str, dict[str, float]]:
    """Open-loop k-step prediction with the recorded actions from every start t of every
    episode (states (T+1, dx), actions (T, du)); `particles` draws per start via
    model.sample. A window is "contact" if any of its ticks moves the cube > threshold.

    Returns per subset: n windows, nmse_xy of the k-step cube displacement (particle mean),
    rmse_mm, zero_nmse_xy, and calibration against the particles' spread.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    starts, acts, ends, contact = [], [], [], []
    xy = slice(obj, obj + 2)
    for x, u in episodes:
        steps = np.linalg.norm(np.diff(x[:, xy], axis=0), axis=1)
        for t in range(len(u) - k + 1):
            starts.append(x[t])
            acts.append(u[t : t + k])
            ends.append(x[t + k])
            contact.append(bool((steps[t : t + k] > threshold).any()))
    if not starts:
        return {}
    x0, U, xk, moved = np.array(starts), np.array(acts), np.array(ends), np.array(contact)
    W = len(x0)
    x = np.repeat(x0, particles, axis=0)
    for j in range(k):
        x = model.sample(x, np.repeat(U[:, j], particles, axis=0), rng)
    cloud = x.reshape(W, particles, -1)
    mean, var = cloud.mean(1), cloud.var(1)
    return _scores(mean, var, x0, xk, moved, xy, moves=False)

"""Training loop of the probabilistic ensemble: bootstrapped minibatches, Gaussian NLL with
log-variance bound penalty, weight decay, per-member holdout early stopping (Chua et al. 2018).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from mbrl.data.dataset import NormStats, TransitionDataset
from mbrl.models.base import FitReport
from mbrl.models.losses import check_loss, member_loss


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Ensemble optimisation settings.

    Attributes:
        lr: Adam learning rate.
        weight_decay: decoupled (AdamW) decay on weight matrices only (not biases/bounds).
        batch_size: rows per member per gradient step.
        max_epochs: upper bound on passes over the (bootstrapped) training set.
        patience: stop after this many epochs without >1% relative holdout improvement
            of any member; each member keeps its best-holdout weights.
        holdout_fraction: share of EPISODES held out for early stopping and elites.
        logvar_penalty: weight of (sum max_logvar - sum min_logvar) in the loss (PETS A.1).
        bootstrap: resample each member's training rows with replacement.
        loss: "nll" (Gaussian NLL), "beta_nll" (Seitzer et al. 2022) or "mse" (mean by
            squared error, variance by NLL of the detached mean); see mbrl.models.losses.
        beta: the beta of "beta_nll" (0 = NLL, 1 = MSE-like gradient of the mean).
        loss_dims: output dims that get `loss`; the others keep the NLL (() = all dims).
    """

    lr: float = 1e-3
    weight_decay: float = 5e-5
    batch_size: int = 256
    max_epochs: int = 100
    patience: int = 8
    holdout_fraction: float = 0.2
    logvar_penalty: float = 0.01
    bootstrap: bool = True
    loss: str = "nll"
    beta: float = 0.5
    loss_dims: tuple[int, ...] = ()


def _normalise(ds: TransitionDataset, st: NormStats) -> tuple[torch.Tensor, torch.Tensor]:
    inp = (np.hstack([ds.obs, ds.act]) - st.in_mean) / st.in_std
    tgt = (ds.next_obs - ds.obs - st.delta_mean) / st.delta_std
    return torch.as_tensor(inp, dtype=torch.float32), torch.as_tensor(tgt, dtype=torch.float32)


def train_ensemble(
    net: torch.nn.Module,
    dataset: TransitionDataset,
    stats: NormStats,
    cfg: FitConfig,
    rng: np.random.Generator,
    progress: bool = True,
) -> tuple[FitReport, np.ndarray]:
    """Fit `net` (an EnsembleNet) in place. Returns the report and per-member holdout MSE (E,)."""
    start = time.perf_counter()
    train, hold = dataset.split(cfg.holdout_fraction, rng)
    if len(hold) == 0:
        hold = train  # too few episodes to hold any out: early-stop on training error
    x_tr, y_tr = _normalise(train, stats)
    x_ho, y_ho = _normalise(hold, stats)
    E = net.weights[0].shape[0]
    check_loss(cfg.loss, cfg.beta, cfg.loss_dims, y_tr.shape[1])
    n = len(x_tr)
    decay = list(net.weights)
    rest = [*net.biases, net.max_logvar, net.min_logvar]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0}],
        lr=cfg.lr,
    )
    if cfg.bootstrap:
        boot = torch.as_tensor(rng.integers(n, size=(E, n)))
    else:
        boot = torch.arange(n).expand(E, n)

    def holdout_mse() -> torch.Tensor:
        with torch.no_grad():
            mean, _ = net(x_ho.expand(E, *x_ho.shape))
            return ((mean - y_ho) ** 2).mean(dim=(1, 2))

    best = holdout_mse()
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    train_losses: list[float] = []
    hold_losses: list[float] = []
    stale = 0
    bar = tqdm(range(cfg.max_epochs), desc="ensemble fit", disable=not progress, leave=False)
    for _ in bar:
        order = torch.as_tensor(np.argsort(rng.random((E, n)), axis=1))
        idx = torch.gather(boot, 1, order)
        total = 0.0
        for s in range(0, n, cfg.batch_size):
            rows = idx[:, s : s + cfg.batch_size]
            mean, lv = net(x_tr[rows])
            # Per-member loss (FitConfig.loss; Gaussian NLL by default), summed over members.
            nll = member_loss(mean, lv, y_tr[rows], cfg.loss, cfg.beta, cfg.loss_dims).sum()
            loss = nll + cfg.logvar_penalty * (net.max_logvar.sum() - net.min_logvar.sum())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(nll.detach()) * rows.shape[1]
        train_losses.append(total / (n * E))
        mse = holdout_mse()
        hold_losses.append(float(mse.mean()))
        improved = (best - mse) / best.clamp_min(1e-12) > 0.01
        if bool(improved.any()):
            state = net.state_dict()
            for k, v in state.items():
                if v.shape[0] == E and k.startswith(("weights", "biases")):
                    best_state[k][improved] = v.detach()[improved]
                else:
                    best_state[k] = v.detach().clone()
            best = torch.where(improved, mse, best)
            stale = 0
        else:
            stale += 1
        bar.set_postfix(train=f"{train_losses[-1]:.3f}", holdout_mse=f"{hold_losses[-1]:.4f}")
        if stale >= cfg.patience:
            break
    net.load_state_dict(best_state)
    report = FitReport(
        train_loss=tuple(train_losses),
        holdout_loss=tuple(hold_losses),
        num_transitions=len(dataset),
        seconds=time.perf_counter() - start,
        extra={"epochs": len(train_losses), "holdout_mse": best.tolist()},
    )
    return report, best.numpy()

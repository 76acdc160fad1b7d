"""Training loop of the probabilistic ensemble: bootstrapped minibatches, Gaussian NLL with
log-variance bound penalty, weight decay, per-member holdout early stopping (Chua et al. 2018),
and the rule that decides whether a refit is warm-started or starts again from scratch.
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

REFIT_MODES = ("continue", "warm", "cold")
PRECISIONS = ("float32", "bfloat16")


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
        eval_every: evaluate the holdout (early stopping, best-weights snapshot) every k
            epochs and after the last one; patience still counts epochs.
        refit: what a fit does when the model has been fitted before:
            "continue": train on from the current weights with fresh normalisation
            statistics and the full budget (max_epochs / patience);
            "warm": train on from the current weights with the normalisation re-expressed
            exactly (the network computes the same function under the new statistics) and the
            short budget (warm_max_epochs / warm_patience); episodes keep their train/holdout
            side from earlier fits. A warm refit falls back to a cold one on the rule below;
            "cold": re-initialise the weights (a new draw) and fit with the full budget.
        precision: "float32", or "bfloat16": the training steps' matrix products (forward
            and backward) run in bfloat16 under torch.autocast, weights, optimizer, loss and
            the holdout error stay float32. On a CPU with AVX512-BF16 the products run
            ~2.4x faster (docs/models.md: the speed-up of a whole fit and what it costs in
            accuracy); elsewhere it may be slower. The holdout pass (early stopping, elites)
            runs its products in bfloat16 too; its error is computed in float32.
        warm_max_epochs, warm_patience: the budget of a warm refit.
        reinit_every: with refit="warm", every K-th fit is cold (0 = never), so the ensemble
            does not stay tied to what it learned from its first, small data set.
        reinit_drift: with refit="warm", fit cold when the new normalisation statistics moved
            further than this from the ones the weights were trained under: the largest of
            |mean_new - mean_old| / std_old and |log(std_new / std_old)| over every input and
            target dimension (1.0 = a shift of one old standard deviation, or a factor e).
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
    eval_every: int = 1
    refit: str = "continue"
    precision: str = "float32"
    warm_max_epochs: int = 20
    warm_patience: int = 3
    reinit_every: int = 0
    reinit_drift: float = 1.0

    def __post_init__(self) -> None:
        if self.refit not in REFIT_MODES:
            raise ValueError(f"FitConfig.refit={self.refit!r}; expected one of {REFIT_MODES}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"FitConfig.precision={self.precision!r}; expected one of {PRECISIONS}"
            )
        for name in ("batch_size", "max_epochs", "patience", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"FitConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warm_max_epochs", "warm_patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"FitConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.reinit_every < 0 or not self.reinit_drift > 0:
            raise ValueError(
                f"FitConfig.reinit_every must be >= 0 and reinit_drift > 0; got "
                f"{self.reinit_every}, {self.reinit_drift}"
            )


def stats_drift(old: NormStats, new: NormStats) -> float:
    """Largest shift of `new` from `old` in old standard deviations or log std ratios."""
    shifts = [
        np.abs(new.in_mean - old.in_mean) / old.in_std,
        np.abs(np.log(new.in_std / old.in_std)),
        np.abs(new.delta_mean - old.delta_mean) / old.delta_std,
        np.abs(np.log(new.delta_std / old.delta_std)),
    ]
    return float(max(np.max(s) for s in shifts))


def stable_split(
    dataset: TransitionDataset,
    fraction: float,
    rng: np.random.Generator,
    train_ids: set[int],
    hold_ids: set[int],
) -> tuple[TransitionDataset, TransitionDataset]:
    """Split by episode, keeping episodes seen before on their side (a warm-started model has
    trained on its old train episodes, so they must not become holdout); new episodes are
    shuffled and enough of them go to the holdout to bring it to `fraction` of all episodes."""
    ids = dataset.episode_ids
    old_train = [int(i) for i in ids if int(i) in train_ids]
    old_hold = [int(i) for i in ids if int(i) in hold_ids]
    new = [int(i) for i in rng.permutation(ids) if int(i) not in train_ids | hold_ids]
    n_hold = int(round(fraction * len(ids))) - len(old_hold)
    if fraction > 0 and len(ids) >= 2 and not old_hold:
        n_hold = max(n_hold, 1)
    n_hold = int(np.clip(n_hold, 0, max(len(new) - (0 if old_train else 1), 0)))
    train = np.array(old_train + new[n_hold:], dtype=np.int64)
    hold = np.array(old_hold + new[:n_hold], dtype=np.int64)
    return dataset.select_episodes(train), dataset.select_episodes(hold)


def _normalise(ds: TransitionDataset, st: NormStats) -> tuple[torch.Tensor, torch.Tensor]:
    inp = (np.hstack([ds.obs, ds.act]) - st.in_mean) / st.in_std
    tgt = (ds.next_obs - ds.obs - st.delta_mean) / st.delta_std
    return torch.as_tensor(inp, dtype=torch.float32), torch.as_tensor(tgt, dtype=torch.float32)


def _epoch_batches(
    x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, batch: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """All minibatches of one epoch from one gather: idx (E, n) rows per member ->
    [(x (E, B, d_in), y (E, B, dx))], each batch contiguous in memory."""
    E, n = idx.shape
    full = n // batch
    head = idx[:, : full * batch].reshape(E, full, batch).transpose(0, 1)
    xs, ys = x[head], y[head]  # (full, E, B, d): one index op per epoch, not one per step
    out = list(zip(xs.unbind(0), ys.unbind(0), strict=True))
    if n % batch:
        tail = idx[:, full * batch :]
        out.append((x[tail], y[tail]))
    return out


def make_optimizer(net: torch.nn.Module, cfg: FitConfig) -> torch.optim.AdamW:
    """AdamW over an EnsembleNet: decay on the weight matrices only."""
    decay = list(net.weights)
    rest = [*net.biases, net.max_logvar, net.min_logvar]
    # fused: one kernel over all parameters per step (the per-tensor loop cost ~2 ms a step,
    # ~10 % of a 5 x 4 x 200 step at batch 256 on one core).
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0}],
        lr=cfg.lr,
        fused=True,
    )


def train_ensemble(
    net: torch.nn.Module,
    train: TransitionDataset,
    hold: TransitionDataset,
    stats: NormStats,
    cfg: FitConfig,
    rng: np.random.Generator,
    progress: bool = True,
    max_epochs: int | None = None,
    patience: int | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> tuple[FitReport, np.ndarray]:
    """Fit `net` (an EnsembleNet) in place on `train`, early-stopping on `hold`.

    Args:
        max_epochs, patience: the budget (default cfg.max_epochs, cfg.patience).
        optimizer: an AdamW from `make_optimizer(net, cfg)` to continue with (its moment
            estimates carry over, so a warm refit does not start with Adam's large
            first steps); None = a fresh one.
    Returns:
        the report and per-member holdout MSE (E,) of the kept (best-holdout) weights.
    """
    start = time.perf_counter()
    max_epochs = cfg.max_epochs if max_epochs is None else max_epochs
    patience = cfg.patience if patience is None else patience
    if len(hold) == 0:
        hold = train  # too few episodes to hold any out: early-stop on training error
    x_tr, y_tr = _normalise(train, stats)
    x_ho, y_ho = _normalise(hold, stats)
    E = net.weights[0].shape[0]
    check_loss(cfg.loss, cfg.beta, cfg.loss_dims, y_tr.shape[1])
    n = len(x_tr)
    opt = make_optimizer(net, cfg) if optimizer is None else optimizer
    if cfg.bootstrap:
        boot = torch.as_tensor(rng.integers(n, size=(E, n)))
    else:
        boot = torch.arange(n).expand(E, n)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    bf16 = cfg.precision == "bfloat16"
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def holdout_mse() -> torch.Tensor:
        with torch.no_grad(), autocast:
            mean, _ = net(x_ho.expand(E, *x_ho.shape))
        return ((mean.float() - y_ho) ** 2).mean(dim=(1, 2))

    best = holdout_mse()
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    train_losses: list[float] = []
    hold_losses: list[float] = []
    stale = 0
    bar = tqdm(range(max_epochs), desc="ensemble fit", disable=not progress, leave=False)
    for epoch in bar:
        # Per-member shuffle of the bootstrap rows, on the tensor side.
        idx = boot.gather(1, torch.argsort(torch.rand(E, n, generator=gen), dim=1))
        total = torch.zeros(())
        for xb, yb in _epoch_batches(x_tr, y_tr, idx, cfg.batch_size):
            with autocast:
                mean, lv = net(xb)
            mean, lv = mean.float(), lv.float()  # the loss in float32 (no-ops in float32)
            # Per-member loss (FitConfig.loss; Gaussian NLL by default), summed over members.
            nll = member_loss(mean, lv, yb, cfg.loss, cfg.beta, cfg.loss_dims).sum()
            loss = nll + cfg.logvar_penalty * (net.max_logvar.sum() - net.min_logvar.sum())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += nll.detach() * xb.shape[1]
        train_losses.append(float(total) / (n * E))
        last = epoch == max_epochs - 1
        if (epoch + 1) % cfg.eval_every and not last:
            continue
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
            stale += cfg.eval_every
        bar.set_postfix(train=f"{train_losses[-1]:.3f}", holdout_mse=f"{hold_losses[-1]:.4f}")
        if stale >= patience:
            break
    net.load_state_dict(best_state)
    report = FitReport(
        train_loss=tuple(train_losses),
        holdout_loss=tuple(hold_losses),
        num_transitions=len(train) + (len(hold) if hold is not train else 0),
        seconds=time.perf_counter() - start,
        extra={"epochs": len(train_losses), "holdout_mse": best.tolist()},
    )
    return report, best.numpy()

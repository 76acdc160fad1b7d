"""PETS probabilistic ensemble (Chua et al. 2018): E Gaussian MLPs in one batched pass.

Each member e maps the normalised input [x, u] to a diagonal Gaussian over the normalised
delta (x' - x - mu_d) / sd_d. All members run as one batched GEMM per layer over weights
of shape (E, d_in, d_out). Log-variances are kept inside learned soft bounds (Chua et al.
2018, appendix A.1): lv = max - softplus(max - lv); lv = min + softplus(lv - min).
For the planner's inner loop (`step`) the input/output normalisation is folded into the
first and last layers once after fit/load, so a step is only GEMMs plus the activation.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mbrl.data.dataset import NormStats, TransitionDataset
from mbrl.models.base import FitReport, ModelFileError, PropagationMode
from mbrl.models.ensemble_fit import (
    FitConfig,
    make_optimizer,
    stable_split,
    stats_drift,
    train_ensemble,
)
from mbrl.models.io import expect_shape, load_model_file, save_model_file

_MODES = ("ts1", "tsinf", "expectation", "mean")


def _soft_bound(lv: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    lv = hi - F.softplus(hi - lv)
    return lo + F.softplus(lv - lo)


class EnsembleNet(torch.nn.Module):
    """Raw parameters: weights[l] (E, d_in, d_out), biases[l] (E, 1, d_out), log-var bounds.

    Works in normalised units; `forward` takes (E, M, dx+du) and returns mean and bounded
    log-variance, each (E, M, dx).
    """

    def __init__(self, E: int, d_in: int, dx: int, hidden: tuple[int, ...], gen: torch.Generator):
        super().__init__()
        sizes = [d_in, *hidden, 2 * dx]
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            w = torch.empty(E, a, b)
            # Truncated normal with std 1/(2 sqrt(d_in)), as in the PETS reference code.
            torch.nn.init.trunc_normal_(
                w,
                std=1.0 / (2 * math.sqrt(a)),
                a=-2 / math.sqrt(a),
                b=2 / math.sqrt(a),
                generator=gen,
            )
            self.weights.append(torch.nn.Parameter(w))
            self.biases.append(torch.nn.Parameter(torch.zeros(E, 1, b)))
        self.max_logvar = torch.nn.Parameter(torch.full((1, 1, dx), 0.5))
        self.min_logvar = torch.nn.Parameter(torch.full((1, 1, dx), -10.0))
        self.dx = dx

    def forward(self, inp: Tensor) -> tuple[Tensor, Tensor]:
        h = inp
        last = len(self.weights) - 1
        inplace = not torch.is_grad_enabled()  # holdout evaluation: no activations kept
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            # bmm then an in-place broadcast add: baddbmm first copies the expanded bias into
            # the output (a slow strided copy, ~10 % of a training step at batch 256).
            h = torch.bmm(h, w)
            # (under bfloat16 autocast h is bfloat16: a mixed-dtype in-place add is 3x slower)
            h = h.add_(b if b.dtype == h.dtype else b.to(h.dtype))
            if i < last:
                h = F.silu(h, inplace=inplace)
        mean, lv = h[..., : self.dx], h[..., self.dx :]
        return mean, _soft_bound(lv, self.min_logvar, self.max_logvar)

    @torch.no_grad()
    def renormalise(self, old: NormStats, new: NormStats) -> None:
        """Re-express the weights for `new` statistics so the network computes the same
        function of the raw input and predicts the same raw delta distribution.

        Input: z_old = (z_new sd' + mu' - mu) / sd, so W0 <- diag(sd'/sd) W0 and
        b0 <- b0 + ((mu' - mu)/sd) W0. Mean head: m_new = (m_old sd_d + mu_d - mu_d') / sd_d'.
        Log-variance head: lv_new = lv_old + 2 log(sd_d / sd_d'); the soft bounds commute with
        a common shift of lv, min and max, so the shift goes into the head's bias and both
        bounds.
        """
        f32 = dict(dtype=torch.float32)
        mu, sd, mu2, sd2 = (
            torch.as_tensor(a, **f32) for a in (old.in_mean, old.in_std, new.in_mean, new.in_std)
        )
        dmu, dsd, dmu2, dsd2 = (
            torch.as_tensor(a, **f32)
            for a in (old.delta_mean, old.delta_std, new.delta_mean, new.delta_std)
        )
        W0, b0 = self.weights[0], self.biases[0]
        b0.add_(((mu2 - mu) / sd)[None, None, :] @ W0)
        W0.mul_((sd2 / sd)[None, :, None])
        WL, bL, dx = self.weights[-1], self.biases[-1], self.dx
        WL[..., :dx] *= dsd / dsd2
        bL[..., :dx] = (bL[..., :dx] * dsd + dmu - dmu2) / dsd2
        shift = 2.0 * torch.log(dsd / dsd2)
        bL[..., dx:] += shift
        self.min_logvar.add_(shift)
        self.max_logvar.add_(shift)


class ProbabilisticEnsemble:
    """Global neural dynamics model; implements DynamicsModel, Linearizable, TorchDynamics.

    Args:
        dx, du: state and action dimensions.
        ensemble_size: E members (PETS uses 5; 5-7 is typical).
        hidden: widths of the hidden layers (SiLU activations).
        num_elites: members used by predict/expectation and mapped onto the E ts1 slots
            (None = all). Chosen by held-out MSE after each fit.
        fit_config: optimisation settings (see FitConfig).
        seed: seeds the weight init and the default fit rng.
    """

    def __init__(
        self,
        dx: int,
        du: int,
        ensemble_size: int = 5,
        hidden: tuple[int, ...] = (200, 200, 200, 200),
        *,
        num_elites: int | None = None,
        fit_config: FitConfig | None = None,
        seed: int = 0,
    ) -> None:
        if ensemble_size < 1 or not hidden:
            raise ValueError(
                f"need ensemble_size >= 1 and hidden layers; got {ensemble_size}, {hidden}"
            )
        self.dx, self.du, self.ensemble_size = int(dx), int(du), int(ensemble_size)
        self.hidden = tuple(int(h) for h in hidden)
        self.num_elites = self.ensemble_size if num_elites is None else int(num_elites)
        if not 1 <= self.num_elites <= self.ensemble_size:
            raise ValueError(f"num_elites must be in [1, {ensemble_size}], got {num_elites}")
        self.fit_config = fit_config or FitConfig()
        self.seed = seed
        gen = torch.Generator().manual_seed(seed)
        self.net = EnsembleNet(self.ensemble_size, self.dx + self.du, self.dx, self.hidden, gen)
        self.stats = NormStats(
            np.zeros(self.dx + self.du),
            np.ones(self.dx + self.du),
            np.zeros(self.dx),
            np.ones(self.dx),
        )
        self.elites = np.arange(self.num_elites)
        self.fits = 0  # fits done; decides cold vs warm refits (FitConfig.refit)
        self._train_ids: set[int] = set()  # episode ids on each side of the last split
        self._hold_ids: set[int] = set()
        # refit="warm": the AdamW whose moments a warm refit continues with (in memory only;
        # a reloaded model's first warm refit starts a fresh one).
        self._optimizer: torch.optim.Optimizer | None = None
        self._refresh_cache()

    # ---- fitting --------------------------------------------------------------------------
    def fit(
        self,
        dataset: TransitionDataset,
        rng: np.random.Generator | None = None,
        progress: bool = True,
    ) -> FitReport:
        """Train on `dataset` (split by episode into train/holdout); picks the elites.

        The first fit starts from the initial weights. Later fits follow FitConfig.refit:
        "continue" (default) trains on from the current weights with new normalisation
        statistics; "warm" re-expresses the weights for the new statistics, keeps each old
        episode on its side of the split and uses the short budget, unless the reinit rule
        (reinit_every, reinit_drift) asks for a cold fit; "cold" re-initialises. The report's
        extra["refit"] and extra["refit_reason"] say which one ran and why.
        """
        if dataset.dx != self.dx or dataset.du != self.du:
            raise ValueError(
                f"dataset has dx={dataset.dx}, du={dataset.du}; model expects "
                f"dx={self.dx}, du={self.du}"
            )
        rng = np.random.default_rng(self.seed) if rng is None else rng
        cfg = self.fit_config
        stats = dataset.norm_stats()
        kind, reason = self._refit_kind(stats)
        if kind == "cold" and self.fits > 0:
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            self.net = EnsembleNet(self.ensemble_size, self.dx + self.du, self.dx, self.hidden, gen)
        elif kind == "warm":
            self.net.renormalise(self.stats, stats)
        self.stats = stats
        if cfg.refit == "warm":
            train, hold = stable_split(
                dataset, cfg.holdout_fraction, rng, self._train_ids, self._hold_ids
            )
            self._train_ids = {int(i) for i in train.episode_ids}
            self._hold_ids = {int(i) for i in hold.episode_ids}
        else:
            train, hold = dataset.split(cfg.holdout_fraction, rng)
        budget = (cfg.warm_max_epochs, cfg.warm_patience) if kind == "warm" else (None, None)
        if cfg.refit == "warm" and (kind != "warm" or self._optimizer is None):
            self._optimizer = make_optimizer(self.net, cfg)  # kept for the next warm refit
        report, scores = train_ensemble(
            self.net, train, hold, self.stats, cfg, rng, progress, *budget, self._optimizer
        )
        if cfg.refit != "warm":
            self._optimizer = None
        self.fits += 1
        self.elites = np.sort(np.argsort(scores)[: self.num_elites])
        self._refresh_cache()
        extra = dict(report.extra, elites=self.elites.tolist(), refit=kind, refit_reason=reason)
        return FitReport(
            report.train_loss, report.holdout_loss, report.num_transitions, report.seconds, extra
        )

    def _refit_kind(self, stats: NormStats) -> tuple[str, str]:
        """("cold" | "warm" | "continue", why) for the next fit under FitConfig.refit."""
        cfg = self.fit_config
        if self.fits == 0:
            return "cold", "first fit"
        if cfg.refit != "warm":
            return cfg.refit, f"refit={cfg.refit}"
        if cfg.reinit_every and self.fits % cfg.reinit_every == 0:
            return "cold", f"fit {self.fits + 1}: every {cfg.reinit_every} fits"
        drift = stats_drift(self.stats, stats)
        if drift > cfg.reinit_drift:
            return "cold", f"normalisation drift {drift:.2f} > reinit_drift {cfg.reinit_drift}"
        return "warm", f"drift {drift:.2f}"

    # ---- inference cache: normalisation folded into first/last layers -------------------------
    @torch.no_grad()
    def _refresh_cache(self) -> None:
        """Fold normalisation into the weights; build the ts1-slot and elite weight stacks."""
        dx = self.dx
        f32 = dict(dtype=torch.float32)
        in_mu, in_sd = (torch.as_tensor(a, **f32) for a in (self.stats.in_mean, self.stats.in_std))
        d_mu, d_sd = (
            torch.as_tensor(a, **f32) for a in (self.stats.delta_mean, self.stats.delta_std)
        )
        Ws = [w.detach().float() for w in self.net.weights]
        bs = [b.detach().float() for b in self.net.biases]
        # First layer on raw inputs: W0 (x - mu)/sd + b0 = (W0/sd) x + (b0 - (mu/sd) W0).
        W0 = Ws[0] / in_sd[None, :, None]
        bs[0] = bs[0] - (in_mu / in_sd)[None, None, :] @ Ws[0]
        Ws[0] = W0
        # Last layer: mean columns in delta units (sd_d * m + mu_d); log-var stays normalised.
        WL, bL = Ws[-1].clone(), bs[-1].clone()
        WL[..., :dx] *= d_sd
        bL[..., :dx] = bL[..., :dx] * d_sd + d_mu
        Ws[-1], bs[-1] = WL, bL
        slot_member = torch.as_tensor(self.elites)[
            torch.arange(self.ensemble_size) % len(self.elites)
        ]
        elite = torch.as_tensor(self.elites)

        def stack(idx: Tensor) -> list[tuple[Tensor, Tensor]]:
            layers = [
                (W[idx].contiguous(), b[idx].contiguous()) for W, b in zip(Ws, bs, strict=True)
            ]
            # Split the first layer by input block (no cat of [x, u] per call) and the last by
            # output block (mean and log-var come out contiguous; "mean" mode skips log-var).
            W0, b0 = layers[0]
            WL, bL = layers[-1]
            return [
                (W0[:, :dx].contiguous(), W0[:, dx:].contiguous(), b0),
                *layers[1:-1],
                (WL[..., :dx].contiguous(), bL[..., :dx].contiguous()),
                (WL[..., dx:].contiguous(), bL[..., dx:].contiguous()),
            ]

        self._slots = stack(slot_member)
        self._elite = stack(elite)
        self._lv_lo = self.net.min_logvar.detach().float().clone()
        self._lv_hi = self.net.max_logvar.detach().float().clone()
        self._log_dsd2 = 2.0 * torch.log(d_sd)

    def _run(
        self, layers: list, x: Tensor, u: Tensor, need_var: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """x (G, M, dx), u (G, M, du) -> delta mean (G, M, dx), log-var in state units."""
        Wx, Wu, b0 = layers[0]
        inplace = not torch.is_grad_enabled()
        h = torch.baddbmm(b0, x, Wx)
        # In-place accumulate in the planner loop; functorch (linearize) lacks baddbmm_.
        h = h.baddbmm_(u, Wu) if inplace else torch.baddbmm(h, u, Wu)
        for W, b in layers[1:-2]:
            h = torch.baddbmm(b, F.silu(h, inplace=inplace), W)
        h = F.silu(h, inplace=inplace)
        (Wm, bm), (Wl, bl) = layers[-2], layers[-1]
        mean = torch.baddbmm(bm, h, Wm)
        if not need_var:
            return mean, None
        lv = _soft_bound(torch.baddbmm(bl, h, Wl), self._lv_lo, self._lv_hi) + self._log_dsd2
        return mean, lv

    # ---- TorchDynamics ------------------------------------------------------------------------
    def step(
        self,
        x: Tensor,
        u: Tensor,
        mode: PropagationMode = "ts1",
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One batched model step for N particles.

        Args:
            x: (N, dx) float32 states; u: (N, du) float32 actions. N must be a multiple of E
                for "ts1", "tsinf" and "mean" (row i -> slot i // (N // E)).
            mode: see mbrl.models.base.PropagationMode.
            generator: torch.Generator for the Gaussian noise and the tsinf re-assignment.
        Returns:
            (N, dx) next states.
        """
        N, E = x.shape[0], self.ensemble_size
        if x.dtype != torch.float32 or u.dtype != torch.float32:
            raise TypeError(f"step expects float32 x and u; got {x.dtype} and {u.dtype}")
        if mode == "expectation":
            G = len(self.elites)
            mean, _ = self._run(
                self._elite,
                x.unsqueeze(0).expand(G, N, self.dx),
                u.unsqueeze(0).expand(G, N, self.du),
                need_var=False,
            )
            return x + mean.mean(0)
        if mode not in _MODES:
            raise ValueError(f"unknown propagation mode {mode!r}; expected one of {_MODES}")
        if N % E:
            raise ValueError(f"N={N} particles is not a multiple of ensemble_size E={E}")
        perm = None
        if mode == "tsinf":
            perm = torch.randperm(N, generator=generator)
            x, u = x[perm], u[perm]
        mean, lv = self._run(
            self._slots,
            x.reshape(E, N // E, self.dx),
            u.reshape(E, N // E, self.du),
            need_var=mode != "mean",
        )
        if lv is not None:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
            if torch.is_grad_enabled():
                mean = mean + noise * torch.exp(0.5 * lv)
            else:
                mean = mean.addcmul_(noise, lv.mul_(0.5).exp_())
        nxt = x + mean.view(N, self.dx)
        if perm is not None:
            out = torch.empty_like(nxt)
            out[perm] = nxt
            return out
        return nxt

    # ---- numpy DynamicsModel ---------------------------------------------------------------
    def member_predict(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every elite on every row: x (N, dx), u (N, du) -> mean, var (G, N, dx) of x'."""
        xt, ut = _t(x), _t(u)
        G, N = len(self.elites), xt.shape[0]
        with torch.no_grad():
            mean, lv = self._run(self._elite, xt.expand(G, N, self.dx), ut.expand(G, N, self.du))
        return (xt + mean).double().numpy(), lv.exp().double().numpy()

    def predict(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Moment-matched mixture of the elites: mean (N, dx), var (N, dx) of x'.

        var = E_e[var_e] + Var_e[mean_e] (aleatoric + epistemic), Chua et al. 2018 sec. 4.
        """
        m, v = self.member_predict(x, u)
        return m.mean(0), v.mean(0) + m.var(0)

    def sample(self, x: np.ndarray, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One next state per row from a uniformly chosen elite: (N, dx)."""
        m, v = self.member_predict(x, u)
        pick = rng.integers(len(self.elites), size=m.shape[1])
        rows = np.arange(m.shape[1])
        return m[pick, rows] + np.sqrt(v[pick, rows]) * rng.standard_normal(m.shape[1:])

    def linearize(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Jacobians of the elite-mean prediction: A (N, dx, dx), B (N, dx, du), c (N, dx)."""
        G = len(self.elites)

        def f(xi: Tensor, ui: Tensor) -> Tensor:
            mean, _ = self._run(
                self._elite, xi.expand(G, 1, self.dx), ui.expand(G, 1, self.du), need_var=False
            )
            return xi + mean.mean(0)[0]

        xt, ut = _t(x), _t(u)
        A, B = torch.func.vmap(torch.func.jacrev(f, argnums=(0, 1)))(xt, ut)
        f0 = torch.func.vmap(f)(xt, ut).detach()  # grad mode on: functorch lacks baddbmm_
        A, B = A.detach(), B.detach()
        c = f0 - (A @ xt[..., None])[..., 0] - (B @ ut[..., None])[..., 0]
        return A.double().numpy(), B.double().numpy(), c.double().numpy()

    # ---- files ------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write raw parameters, normalisation and elites (npz + JSON header, no pickle)."""
        arrays = {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        arrays.update({f"stats.{k}": np.asarray(v) for k, v in vars(self.stats).items()})
        arrays["elites"] = np.asarray(self.elites, np.int64)
        arrays["split.train_ids"] = np.asarray(sorted(self._train_ids), np.int64)
        arrays["split.hold_ids"] = np.asarray(sorted(self._hold_ids), np.int64)
        meta = dict(
            dx=self.dx,
            du=self.du,
            ensemble_size=self.ensemble_size,
            hidden=list(self.hidden),
            num_elites=self.num_elites,
            seed=self.seed,
            fit_config=dataclasses.asdict(self.fit_config),
            fits=self.fits,
        )
        save_model_file(path, "ProbabilisticEnsemble", meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> ProbabilisticEnsemble:
        """Inverse of `save`; ModelFileError names the file and any mismatch."""
        meta, arrays = load_model_file(path, "ProbabilisticEnsemble")
        _check_size(path, meta, arrays)
        try:
            model = cls(
                meta["dx"],
                meta["du"],
                meta["ensemble_size"],
                tuple(meta["hidden"]),
                num_elites=meta["num_elites"],
                seed=meta["seed"],
                fit_config=FitConfig(**meta["fit_config"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: bad ensemble metadata {meta!r} ({e})") from e
        state = model.net.state_dict()
        split = {"split.train_ids", "split.hold_ids"}  # absent from files of older versions
        expected = set(state) | {f"stats.{k}" for k in vars(model.stats)} | {"elites"}
        if expected != set(arrays) - split:
            raise ModelFileError(
                f"{path}: arrays {sorted(arrays)} do not match an ensemble "
                f"with hidden={model.hidden}"
            )
        for k, v in state.items():
            expect_shape(path, k, arrays[k], tuple(v.shape))
        model.net.load_state_dict({k: torch.from_numpy(arrays[k]) for k in state})
        model.stats = NormStats(**{k: arrays[f"stats.{k}"] for k in vars(model.stats)})
        model.elites = arrays["elites"]
        # Files written before refit modes existed were saved after a fit.
        model.fits = int(meta.get("fits", 1))
        model._train_ids = {int(i) for i in arrays.get("split.train_ids", ())}
        model._hold_ids = {int(i) for i in arrays.get("split.hold_ids", ())}
        if len(model.elites) != model.num_elites:
            raise ModelFileError(f"{path}: {len(model.elites)} elites; expected {model.num_elites}")
        elites = np.asarray(model.elites)
        if (
            elites.ndim != 1
            or len(set(elites.tolist())) != len(elites)
            or (elites.size and not (0 <= elites.min() and elites.max() < model.ensemble_size))
        ):
            raise ModelFileError(
                f"{path}: elites {elites.tolist()[:20]} must be distinct members in "
                f"[0, {model.ensemble_size})"
            )
        bad = [k for k, v in arrays.items() if v.dtype.kind == "f" and not np.all(np.isfinite(v))]
        if bad:  # a NaN weight plans NaN forever (the arm would freeze while "running")
            raise ModelFileError(f"{path}: non-finite values in {sorted(bad)[:10]}")
        model._refresh_cache()
        return model


def _check_size(path, meta: Any, arrays: dict[str, np.ndarray]) -> None:
    """Refuse metadata that would build a network larger than the file's arrays (a crafted
    `hidden: [10**9]` must fail here, not allocate gigabytes)."""
    try:
        dims = [int(meta["dx"]) + int(meta["du"]), *(int(h) for h in meta["hidden"])]
        dims.append(2 * int(meta["dx"]))
        members = int(meta["ensemble_size"])
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ModelFileError(f"{path}: bad ensemble metadata ({e})") from e
    if members < 1 or min(dims) < 1:
        raise ModelFileError(f"{path}: ensemble_size and layer widths must be >= 1")
    needed = members * sum((a + 1) * b for a, b in zip(dims[:-1], dims[1:], strict=True))
    stored = sum(int(v.size) for v in arrays.values())
    if needed > stored:
        raise ModelFileError(
            f"{path}: metadata describes {needed} weights, the file stores {stored} numbers"
        )


def _t(a: np.ndarray) -> Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float32)

"""Policies for Algorithm 4 (mbrl.agents.policy) and the goals they are trained on.

`MLPPolicy` maps the observation to an action; `TargetPolicy` servos the joints to a joint
target an MLP picks from the goal. Observations: the reach layout [q, qdot, ee, goal].
Both save to and load from the safe model format (mbrl.models.io, kind "policy"): the
constructor arguments as JSON, the weights and buffers as named arrays; no pickle and no
TorchScript, so the controller node can run a policy file it received over the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mbrl.costs.kinematics import ForwardKinematics
from mbrl.models.base import ModelFileError
from mbrl.models.io import load_model_file, save_model_file

POLICY_KIND = "policy"


def tanh_mlp(sizes: list[int], gen: torch.Generator) -> torch.nn.Sequential:
    """Linear layers of `sizes` with tanh between them; weights U(+-1/sqrt(fan_in)) drawn
    from `gen` (reproducible), biases zero."""
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        lin = torch.nn.Linear(a, b)
        bound = 1.0 / np.sqrt(a)
        with torch.no_grad():
            lin.weight.uniform_(-bound, bound, generator=gen)
            lin.bias.zero_()
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


class MLPPolicy(torch.nn.Module):
    """pi(obs (N, dobs)) -> actions (N, du) in [-1, 1]; inputs standardised by fixed stats.

    The input is the observation plus the goal offset goal - ee (3,) m, read from the
    `ee` and `goal` (start, stop) slices: the reach direction is then one feature instead
    of a difference the first layer has to learn.
    """

    def __init__(
        self,
        dobs: int,
        du: int,
        hidden: tuple[int, ...],
        gen: torch.Generator,
        ee: tuple[int, int],
        goal: tuple[int, int],
    ):
        super().__init__()
        self.ee, self.goal = tuple(ee), tuple(goal)
        self.dx, self.du, self.hidden = int(dobs), int(du), tuple(int(h) for h in hidden)
        self.net = tanh_mlp([dobs + 3, *hidden, du], gen)
        self.register_buffer("in_mean", torch.zeros(dobs + 3))
        self.register_buffer("in_std", torch.ones(dobs + 3))

    def features(self, obs: Tensor) -> Tensor:
        """(N, dobs) -> (N, dobs + 3): [obs, goal - ee]."""
        offset = obs[..., self.goal[0] : self.goal[1]] - obs[..., self.ee[0] : self.ee[1]]
        return torch.cat([obs, offset], -1)

    def set_input_stats(self, obs: np.ndarray) -> None:
        """Standardise inputs with the mean/std of the features of obs (N, dobs) (std floored
        at 1e-3)."""
        f = self.features(torch.as_tensor(obs, dtype=torch.float32))
        self.in_mean.copy_(f.mean(0))
        self.in_std.copy_(f.std(0).clamp_min(1e-3))

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net((self.features(obs) - self.in_mean) / self.in_std))

    def act(self, obs: np.ndarray, env: object = None) -> np.ndarray:
        """Controller for `evaluate`: obs (dobs,) -> action (du,)."""
        with torch.no_grad():
            return self(torch.as_tensor(obs, dtype=torch.float32)[None])[0].double().numpy()

    def save(self, path: str | Path) -> None:
        """The safe model file of this policy (save_policy)."""
        save_policy(self, path)


class TargetPolicy(torch.nn.Module):
    """pi(obs (N, dobs)) = tanh(k * (r(goal) - q)) in [-1, 1]^nj: a servo to a joint target.

    r(goal) = lower + (upper - lower) sigmoid(MLP(standardised goal)) (rad, inside the
    limits); k (nj,) > 0 per-joint gains (softplus, start `gain`). Actions are increments of
    the commanded position, so the command keeps moving until q = r(goal): the arm settles
    at the target on any plant where this loop is stable, and the imagined horizon only
    has to shape the way there (docs/pilco.md).
    """

    def __init__(
        self,
        nj: int,
        hidden: tuple[int, ...],
        gen: torch.Generator,
        goal: tuple[int, int],
        lower: Tensor,
        upper: Tensor,
        gain: float = 3.0,
    ):
        super().__init__()
        self.nj, self.goal = nj, tuple(goal)
        self.dx, self.du, self.hidden = int(goal[1]), int(nj), tuple(int(h) for h in hidden)
        self.net = tanh_mlp([3, *hidden, nj], gen)
        self.raw_gain = torch.nn.Parameter(torch.full((nj,), float(np.log(np.expm1(gain)))))
        self.register_buffer("lower", torch.as_tensor(lower, dtype=torch.float32).clone())
        self.register_buffer("upper", torch.as_tensor(upper, dtype=torch.float32).clone())
        self.register_buffer("in_mean", torch.zeros(3))
        self.register_buffer("in_std", torch.ones(3))

    def set_input_stats(self, obs: np.ndarray) -> None:
        """Standardise the goal with the mean/std of obs[:, goal] (N, dobs) (std >= 1e-3)."""
        g = torch.as_tensor(obs[:, self.goal[0] : self.goal[1]], dtype=torch.float32)
        self.in_mean.copy_(g.mean(0))
        self.in_std.copy_(g.std(0).clamp_min(1e-3))

    def target(self, goal: Tensor) -> Tensor:
        """goal (N, 3) m -> joint target r (N, nj) rad, inside the limits."""
        z = torch.sigmoid(self.net((goal - self.in_mean) / self.in_std))
        return self.lower + (self.upper - self.lower) * z

    def forward(self, obs: Tensor) -> Tensor:
        r = self.target(obs[..., self.goal[0] : self.goal[1]])
        gain = torch.nn.functional.softplus(self.raw_gain)
        return torch.tanh(gain * (r - obs[..., : self.nj]))

    def act(self, obs: np.ndarray, env: object = None) -> np.ndarray:
        """Controller for `evaluate`: obs (dobs,) -> action (du,)."""
        with torch.no_grad():
            return self(torch.as_tensor(obs, dtype=torch.float32)[None])[0].double().numpy()

    def save(self, path: str | Path) -> None:
        """The safe model file of this policy (save_policy)."""
        save_policy(self, path)


def sample_goals(fk: ForwardKinematics, n: int, gen: torch.Generator) -> Tensor:
    """(n, 3) m: FK of uniform joint configurations with the EE >= 2 cm above the table (the
    env's goal distribution without its collision check)."""
    out: list[Tensor] = []
    while sum(len(o) for o in out) < n:
        u = torch.rand(4 * n, len(fk.lower), generator=gen)
        ee = fk(fk.lower + u * (fk.upper - fk.lower))
        out.append(ee[ee[:, 2] >= 0.02])
    return torch.cat(out)[:n]


Policy = MLPPolicy | TargetPolicy


def _meta(policy: Policy) -> dict[str, Any]:
    if isinstance(policy, TargetPolicy):
        return {"form": "target", "nj": policy.nj, "hidden": list(policy.hidden),
                "goal": list(policy.goal)}  # fmt: skip
    return {"form": "mlp", "dobs": policy.dx, "du": policy.du, "hidden": list(policy.hidden),
            "ee": list(policy.ee), "goal": list(policy.goal)}  # fmt: skip


def save_policy(policy: Policy, path: str | Path) -> None:
    """Write `policy` to `path` in the safe model format (kind "policy")."""
    arrays = {k: v.detach().cpu().numpy() for k, v in policy.state_dict().items()}
    save_model_file(path, POLICY_KIND, _meta(policy), arrays)


def load_policy(path: str | Path) -> Policy:
    """A policy written by `save_policy`; ModelFileError names the file and what is wrong
    (not a policy file, an unknown form, weights of another shape, non-finite weights)."""
    meta, arrays = load_model_file(path, POLICY_KIND)
    gen = torch.Generator().manual_seed(0)
    try:
        if meta["form"] == "target":
            nj = int(meta["nj"])
            zeros = torch.zeros(nj)
            policy: Policy = TargetPolicy(nj, tuple(meta["hidden"]), gen, tuple(meta["goal"]),
                                          zeros, zeros)  # fmt: skip
        elif meta["form"] == "mlp":
            policy = MLPPolicy(int(meta["dobs"]), int(meta["du"]), tuple(meta["hidden"]), gen,
                               tuple(meta["ee"]), tuple(meta["goal"]))  # fmt: skip
        else:
            raise ModelFileError(f"{path}: unknown policy form {meta['form']!r}")
        state = {k: torch.as_tensor(v) for k, v in arrays.items()}
        policy.load_state_dict(state, strict=True)
    except (KeyError, TypeError, RuntimeError) as exc:  # missing meta, shape mismatch
        raise ModelFileError(f"{path}: not a loadable policy: {exc}") from exc
    if not all(bool(torch.isfinite(t).all()) for t in state.values()):
        raise ModelFileError(f"{path}: the policy has non-finite weights")
    policy.eval()
    return policy

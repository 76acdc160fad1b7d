"""PETS-style MPC (Chua et al. 2018, Alg. 1) as a learner and an actor.

Learner: recorded episodes (task observations and actions) -> a ProbabilisticEnsemble over
the *model state*, warm-started from the previous fit. Actor: (observation, artifact,
deadline) -> the first action of a sampling planner's plan on that model and the task cost.

Model state (what the ensemble predicts), from the task observation (mbrl.costs.tasks):
reach: q (nj) rad, the end effector comes from FK of q in the cost; with the preset's
`model_state: q_qd_pending`, [q, qdot (nj) rad/s, pending (nj) rad = previous command - q]:
what a servo with inertia and a tick of latency needs to be Markov, with the command relative
to q so that a small net learns it from a few hundred steps (docs/real_arm.md);
push: [q, qdot, ee (3),
cube (3), sin/cos cube yaw (2), cube velocity (3), yaw rate (1)] (`PUSH_FEATURES`: cube and
tip in the state so the model can learn contact, and the velocities because a sliding cube
keeps moving untouched and the arm's momentum decides how hard it hits; docs/models.md,
"Push"). The push ensemble fits its mean by MSE (the preset's `fit_loss`): the Gaussian NLL
explains the rare large cube moves as variance and predicts ~1 mm where the cube moves ~7.
The goal is constant in an episode and lives in the cost. Actions u (nj,) are joint-position
increments in [-1, 1] scaled by arm.max_increment rad (the env's and the controller's action).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mbrl.agents.arm import ArmModel
from mbrl.agents.registry import increment_base
from mbrl.control.anytime import AnytimeMPC
from mbrl.control.cem import CEMConfig, CEMPlanner
from mbrl.control.icem import ICEMConfig, ICEMPlanner
from mbrl.control.ilqr import ILQRConfig, ILQRPlanner
from mbrl.control.mppi import MPPIConfig, MPPIPlanner
from mbrl.control.plan import Plan
from mbrl.costs.push import PushCost, PushCostConfig
from mbrl.costs.reach import ReachCost, ReachCostConfig, StateLayout
from mbrl.costs.tasks import check_task, obs_layout, pending_span
from mbrl.data.dataset import TransitionDataset
from mbrl.models.base import FitReport
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.models.ensemble_fit import FitConfig
from mbrl.models.kinematic import KinematicArmModel, KinematicPendingModel
from mbrl.models.push_features import PushFeatures

PLANNERS = {
    "icem": (ICEMConfig, ICEMPlanner),
    "cem": (CEMConfig, CEMPlanner),
    "mppi": (MPPIConfig, MPPIPlanner),
}
Trajectory = tuple[np.ndarray, np.ndarray]  # obs (T+1, dobs), actions (T, nj)
# The push model state: qdot and the cube velocity on top of [q, ee, cube, yaw] (measured in
# docs/models.md "Push": contact 1-step nMSE of the cube 0.883 -> 0.33 with the MSE loss).
PUSH_FEATURES = PushFeatures(joint_velocities=True, object_velocity=True)


MODEL_STATES = ("q", "q_qd_pending")  # the preset's `model_state` (reach)


def model_state(params: dict[str, Any]) -> str:
    """The preset's model state: "q" or "q_qd_pending" (module docstring)."""
    state = params.get("model_state", "q")
    if state not in MODEL_STATES:
        raise ValueError(f"model_state {state!r}; expected one of {list(MODEL_STATES)}")
    return state


def pending_in_obs(params: dict[str, Any]) -> bool:
    """Whether the task observation carries the pending motion (the model state uses it)."""
    return model_state(params) == "q_qd_pending"


def model_columns(task: str, nj: int, state: str = "q") -> np.ndarray:
    """Indices of the task observation that form the model state (module docstring)."""
    if check_task(task) == "reach":
        if state == "q_qd_pending":
            start, stop = pending_span(task, nj)
            return np.r_[0 : 2 * nj, start:stop]
        return np.arange(nj)
    if state != "q":
        raise ValueError(f"model_state {state!r} is for reach; push uses its own state")
    return PUSH_FEATURES.columns(nj)


def model_layout(task: str, nj: int) -> StateLayout:
    """Where q (and for push the tip and the cube) sit in the model state."""
    if check_task(task) == "reach":
        return StateLayout(q=(0, nj))
    return PUSH_FEATURES.layout(nj)


def known_model(
    arm: ArmModel, params: dict[str, Any] | None = None
) -> KinematicArmModel | KinematicPendingModel:
    """The arm's known kinematic model over the preset's reach model state: a reach model
    before any data (version 0): over q, or over [q, qdot, pending] (an ideal servo)."""
    joints = KinematicArmModel(arm.lower, arm.upper, arm.velocity, arm.max_increment, arm.period)
    if model_state(params or {}) == "q_qd_pending":
        return KinematicPendingModel(joints, increment_base(params or {}))
    return joints


def trajectories_dataset(
    trajectories: Sequence[Trajectory], columns: np.ndarray
) -> TransitionDataset:
    """(obs, actions) trajectories -> transitions of the model state obs[:, columns]."""
    kept = [(o, a) for o, a in trajectories if len(a) > 0]
    if not kept:
        raise ValueError(f"no transitions in {len(trajectories)} trajectories")
    return TransitionDataset.from_episodes(
        [np.asarray(o, np.float32)[:, columns] for o, _ in kept],
        [np.asarray(a, float) for _, a in kept],
    )


class MPCLearner:
    """Fits the ensemble over the model state on every trajectory so far (warm-started).

    Args:
        task: "reach" or "push"; nj: joints.
        params: a preset (mbrl.loop.presets) with the ensemble keys.
        seed: seeds the ensemble init and the fits.
    """

    def __init__(self, task: str, nj: int, params: dict[str, Any], seed: int) -> None:
        self.task, self.nj, self.params, self.seed = check_task(task), int(nj), params, seed
        self.columns = model_columns(task, nj, model_state(params))
        fit = FitConfig(
            lr=params["fit_lr"],
            weight_decay=params["fit_weight_decay"],
            batch_size=params["fit_batch_size"],
            max_epochs=params["fit_max_epochs"],
            patience=params["fit_patience"],
            holdout_fraction=params["fit_holdout_fraction"],
            refit=params.get("fit_refit", "continue"),
            loss=params.get("fit_loss", "nll"),
            precision=params.get("fit_precision", "float32"),
        )
        self.model = ProbabilisticEnsemble(
            len(self.columns),
            self.nj,
            params["ensemble_size"],
            tuple(params["hidden"]),
            num_elites=params["num_elites"],
            fit_config=fit,
            seed=seed,
        )
        self.rng = np.random.default_rng(seed)
        self.fits = 0

    def dataset(self, trajectories: Sequence[Trajectory]) -> TransitionDataset:
        return trajectories_dataset(trajectories, self.columns)

    def fit(self, trajectories: Sequence[Trajectory]) -> FitReport:
        """Refit on all `trajectories`; the artifact is `self.model`.

        The minibatch grows with the data (n / fit_batches_per_epoch rows, at least
        fit_batch_size) so that an epoch costs about the same at 500 and at 10k transitions.
        """
        self.fits += 1
        data = self.dataset(trajectories)
        per_epoch = self.params.get("fit_batches_per_epoch", 0)
        if per_epoch > 0:
            batch = max(self.params["fit_batch_size"], len(data) // per_epoch)
            self.model.fit_config = dataclasses.replace(self.model.fit_config, batch_size=batch)
        return self.model.fit(data, rng=self.rng, progress=False)

    def layout(self) -> dict[str, Any]:
        """What the artifact's x and u mean (sent with it; the actor checks it agrees)."""
        return layout("mpc", self.task, self.nj, self.params)

    def artifacts(self) -> dict[str, Any]:
        """What a fit produced, by kind (mbrl.agents.registry): the ensemble."""
        return {"ensemble": self.model}

    def restore(self, artifacts: dict[str, Any]) -> None:
        """Continue from a checkpoint's ensemble (a restarted fitter)."""
        if "ensemble" in artifacts:
            self.model = artifacts["ensemble"]


class MPCActor:
    """Replans on every call with the preset's sampling planner on `model` and the task cost.

    Args:
        task: "reach" or "push"; arm: the ArmModel; model: a TorchDynamics model over the
            model state (the learner's ensemble, or known_model(arm) for reach).
        params: the preset (planner, planner_config, cost); seed / stream: seed the
            planner's torch Generator (seed * 1000 + stream).
        planner_overrides: planner settings that change what is reported, not what is
            planned (the controller asks for `nominal_rollout` to draw the plan).
    """

    # A real-time controller may send the plan made on the tick before (plan_next).
    plans_ahead = True

    def __init__(
        self,
        task: str,
        arm: ArmModel,
        model: Any,
        params: dict[str, Any],
        seed: int = 0,
        stream: int = 0,
        planner_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.task, self.arm, self.model, self.params = check_task(task), arm, model, params
        self._planner_overrides = dict(planner_overrides or {})
        nj = self.nj = arm.nj
        self.columns = model_columns(task, nj, model_state(params))
        self.goal_span = obs_layout(task, nj).goal
        if int(model.du) != nj or int(model.dx) != len(self.columns):
            raise ValueError(
                f"{task} model has dx={model.dx}, du={model.du}; the {task} actor on "
                f"{nj} joints needs dx={len(self.columns)}, du={nj}"
            )
        self.layout = model_layout(task, nj)
        if task == "reach":
            self.cost = ReachCost(
                self.layout, arm.fk, lower=arm.lower, upper=arm.upper,
                config=ReachCostConfig(**params.get("cost", {})),
            )  # fmt: skip
        else:
            config = PushCostConfig(**params.get("cost", {}))
            self.cost = PushCost(
                self.layout, arm.fk, lower=arm.lower, upper=arm.upper, config=config
            )
        self.goal = np.zeros(3)
        self.mpc = AnytimeMPC(self._planner(seed * 1000 + stream), nj)

    def _planner(self, seed: int):
        kind = self.params["planner"]
        if kind not in PLANNERS:
            raise ValueError(f"planner {kind!r} unknown; expected one of {sorted(PLANNERS)}")
        config_cls, planner_cls = PLANNERS[kind]
        overrides: dict[str, Any] = {}
        E = int(getattr(self.model, "ensemble_size", 1))
        if E == 1:  # a deterministic model: one particle, no ensemble propagation
            overrides = {"particles": 1, "propagation": "mean"}
        elif self.params["planner_config"].get("propagation") == "ts1":
            particles = self.params["planner_config"].get("particles", E)
            overrides = {"particles": E * math.ceil(particles / E)}  # ts1 needs P % E == 0
        config = config_cls(
            **{**self.params["planner_config"], **overrides, **self._planner_overrides}
        )
        gen = torch.Generator().manual_seed(seed)
        return planner_cls(self.model, self.cost, self.nj, config, generator=gen)

    def feedback_planner(self, horizon: int, iterations: int) -> AnytimeMPC:
        """iLQR on the same model and cost: time-varying linear feedback u = u_t + K_t (x -
        x_t) around its plan (the controller's mode lqr; Tassa et al. 2012)."""
        low, high = self.action_bounds
        config = ILQRConfig(
            horizon=horizon, iterations=iterations, action_low=low, action_high=high
        )
        return AnytimeMPC(ILQRPlanner(self.model, self.cost, self.nj, config), self.nj)

    @property
    def increment_base(self) -> str:
        """What an action's increment is added to: "command" (the previous command) or
        "measured" (the measured joints), as the preset's env says."""
        return increment_base(self.params)

    @property
    def action_bounds(self) -> tuple[float, float]:
        pc = self.params["planner_config"]
        return float(pc.get("action_low", -1.0)), float(pc.get("action_high", 1.0))

    def state(self, obs: np.ndarray) -> np.ndarray:
        """obs (..., dobs) -> model state (..., dx) float32."""
        return np.asarray(obs, dtype=np.float32)[..., self.columns]

    def reset(self) -> None:
        """New episode: forget the warm start."""
        self.mpc.reset()

    def set_goal(self, goal: np.ndarray) -> None:
        """Goal (3,) m; a changed goal changes the cost, so the warm start is forgotten."""
        goal = np.asarray(goal, dtype=float)
        if not np.array_equal(goal, self.goal):
            self.goal = goal.copy()
            self.cost.set_goal(goal)
            self.mpc.reset()

    def _goal_of(self, obs: np.ndarray) -> None:
        """Take the goal (3,) m from the task observation obs (dobs,)."""
        self.set_goal(np.asarray(obs, float)[self.goal_span[0] : self.goal_span[1]])

    def plan(self, obs: np.ndarray, deadline: float | None = None) -> Plan:
        """The plan from obs (dobs,) within `deadline` (perf_counter s; None = no limit)."""
        self._goal_of(obs)
        return self.mpc.plan(self.state(obs), deadline)

    def act(self, obs: np.ndarray, deadline: float | None = None) -> np.ndarray:
        """obs (dobs,) -> action (nj,) (zeros when no plan exists yet)."""
        plan = self.plan(obs, deadline)
        return plan.actions[0].copy() if plan.actions.shape[0] else np.zeros(self.nj)

    def plan_next(self, obs: np.ndarray, action: np.ndarray, deadline: float | None = None) -> Plan:
        """The plan for the NEXT tick, made now: from the model's mean prediction of the state
        that `action` (nj,), sent at obs (dobs,), leads to. A real-time controller runs this
        after sending a tick's command, so the next command is ready when the next state
        arrives (state -> command latency of a lookup, not of a plan). The goal is obs's."""
        self._goal_of(obs)
        x = self.state(obs)[None]
        mean, _ = self.model.predict(x, np.asarray(action, np.float32).reshape(1, self.nj))
        return self.mpc.plan(np.asarray(mean[0], np.float32), deadline)

    def warmup(self, obs: np.ndarray, times: int = 3) -> None:
        """Plan `times` without a deadline so the planner learns its iteration time (the first
        calls pay for torch's lazy initialisation), then forget the plans."""
        self._goal_of(obs)
        for _ in range(times):
            self.mpc.warmup(self.state(obs))
        self.mpc.reset()

    # -- for viewers ----------------------------------------------------------------------
    def ee_points(self, states: np.ndarray) -> np.ndarray:
        """Model states (T+1, dx) -> (T+1, 3) end-effector positions, m."""
        x = torch.as_tensor(np.asarray(states), dtype=self.arm.fk.dtype)
        with torch.no_grad():
            return self.cost.ee(x).double().numpy()

    def ee_spread(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray | None:
        """(T,) std (m) of the predicted EE along a plan: of the ensemble's EE where the model
        predicts it (push), else of FK over the predicted joints' spread (None: no spread)."""
        if not hasattr(self.model, "member_predict"):
            return None
        mean, var = self.model.predict(np.asarray(states[:-1]), np.asarray(actions))
        if self.layout.ee is not None:
            lo, hi = self.layout.ee
            return np.sqrt(np.maximum(var[:, lo:hi], 0.0).mean(-1))
        # reach: the EE moves ~ reach x the joint std; a first-order band
        q_std = np.sqrt(np.maximum(var[:, : self.nj], 0.0))
        return self.arm.fk.reach * np.linalg.norm(q_std, axis=-1) / np.sqrt(self.nj)


class OpenLoopActor:
    """Algorithms 1 and 2 (Levine, CS285 lecture 11): plan once from the first observation of
    an episode with the MPC actor's planner (the preset's longer horizon and larger budget),
    then replay the plan blindly; zero increments (hold the last command) after its horizon.

    `plan(obs, deadline)` returns the rest of the episode's plan from this tick on, so a
    controller that applies `plan.actions[0]` each tick replays it; `reset()` starts a new
    episode (the next call plans again, without a deadline: an open-loop plan is made once).
    """

    plans_ahead = False  # its plan is made once per episode; not delegated to the MPC actor

    def __init__(self, actor: MPCActor) -> None:
        self.actor = actor
        self.nj = actor.nj
        self._plan: Plan | None = None
        self._t = 0

    def __getattr__(self, name: str) -> Any:  # goal, model, cost, state, ee_points, ...
        return getattr(self.actor, name)

    def reset(self) -> None:
        self._plan, self._t = None, 0
        self.actor.reset()

    def plan(self, obs: np.ndarray, deadline: float | None = None) -> Plan:
        if self._plan is None:
            self._plan = self.actor.plan(obs, None)
        t, self._t = self._t, self._t + 1
        rest = self._plan.actions[t:]
        if len(rest) == 0:
            rest = np.zeros((1, self.nj))
        states = self._plan.states[t:] if self._plan.states is not None else None
        if states is not None and len(states) != len(rest) + 1:
            states = None  # past the horizon: nothing left to draw
        return Plan(rest, states, iterations=max(1, self._plan.iterations))

    def act(self, obs: np.ndarray, deadline: float | None = None) -> np.ndarray:
        return self.plan(obs, deadline).actions[0].copy()


OPEN_LOOP_ALGOS = ("alg1", "alg2")


def make_actor(
    algo: str,
    task: str,
    arm: ArmModel,
    model: Any,
    params: dict[str, Any],
    seed: int = 0,
    stream: int = 0,
    planner_overrides: dict[str, Any] | None = None,
) -> MPCActor | OpenLoopActor:
    """The actor of `algo` ("mpc": replan every tick; "alg1" / "alg2": plan once per episode)
    on `model`: the one factory the loop drivers and the controller node share."""
    actor = MPCActor(task, arm, model, params, seed, stream, planner_overrides)
    if algo in OPEN_LOOP_ALGOS:
        return OpenLoopActor(actor)
    if algo != "mpc":
        raise ValueError(f"algo {algo!r} has no MPC actor; expected 'mpc' or {OPEN_LOOP_ALGOS}")
    return actor


def make_learner(
    algo: str, task: str, arm: ArmModel, params: dict[str, Any], seed: int
) -> MPCLearner:
    """The registry's learner factory: one ensemble learner for MPC and Algorithms 1 and 2."""
    return MPCLearner(task, arm.nj, params, seed)


def layout(algo: str, task: str, nj: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """What an MPC agent's ensemble x and u mean: the model-state columns of the task
    observation and increments (the same for mpc, alg1 and alg2: they share the learner)."""
    columns = model_columns(task, nj, model_state(params or {}))
    return {"learner": "mpc", "task": task, "columns": columns.tolist(),
            "action": "increment"}  # fmt: skip

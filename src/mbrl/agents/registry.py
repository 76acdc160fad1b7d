"""Every agent by algorithm name: its learner, its actor and the artifact between them, the
one table both drivers read (mbrl.loop's drivers, the fitter and controller nodes).

A *learner* turns task trajectories (mbrl.agents.episodes) into artifacts:
    fit(trajectories) -> FitReport; artifacts() -> {kind: artifact}; layout() -> dict;
    restore({kind: artifact}) continues from a checkpoint.
An *actor* turns an observation into an action each tick:
    reset(); set_goal(goal); act(obs, deadline) -> u (nj,); warmup(obs);
    MPC actors also plan(obs, deadline) -> Plan (the controller draws and times plans).
An *artifact* is what travels from the fitter to the controller: an object with
save(path) in the safe model format (mbrl.models.io), read back by `load_artifact`.

Modules are imported lazily, so naming an agent never imports torch or another agent's
dependencies.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # (a type only: mbrl.agents.arm imports torch)
    from mbrl.agents.arm import ArmModel


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """Attributes:
    module: where `make_learner`, `make_actor` and `layout(algo, task, nj)` live.
    artifact: the artifact kind the fitter publishes and the actor runs.
    control_mode: the controller node's mode that runs the actor (mbrl.ros).
    known_start: the actor can run before the first fit on the arm's known kinematic
        model (reach with MPC); otherwise the controller holds until an artifact arrives.
    """

    module: str
    artifact: str
    control_mode: str
    known_start: bool = False


AGENTS: dict[str, AgentSpec] = {
    "mpc": AgentSpec("mbrl.agents.mpc", "ensemble", "mpc", known_start=True),
    "alg1": AgentSpec("mbrl.agents.mpc", "ensemble", "mpc", known_start=True),
    "alg2": AgentSpec("mbrl.agents.mpc", "ensemble", "mpc", known_start=True),
    "policy": AgentSpec("mbrl.agents.policy", "policy", "policy"),
    # GPS: the fitter publishes the local controllers; the controller runs them as a policy
    # (u_t = K_t x_t + k_t + noise, t from the episode start). The global policy is the
    # "gps_policy" artifact (publish_kind) and runs in the loop's evaluation.
    "gps": AgentSpec("mbrl.agents.gps", "gps_local", "policy"),
    "pilco": AgentSpec("mbrl.agents.pilco", "pilco_policy", "policy"),
}

# artifact kind -> "module:loader" (loader(path) -> artifact; ModelFileError names the file)
ARTIFACT_LOADERS: dict[str, str] = {
    "ensemble": "mbrl.models.ensemble:ProbabilisticEnsemble.load",
    "local_lg": "mbrl.models.local_lg:TimeVaryingLinearGaussian.load",
    "policy": "mbrl.agents.policy_nets:load_policy",
    "gps_local": "mbrl.agents.gps:LocalControllers.load",
    "gps_policy": "mbrl.agents.gps_policy:GlobalPolicy.load",
    "pilco_policy": "mbrl.agents.pilco:GoalPolicies.load",
}


def spec(algo: str) -> AgentSpec:
    """The agent of `algo`; ValueError names the known ones."""
    if algo not in AGENTS:
        raise ValueError(f"algo {algo!r} has no agent; expected one of {sorted(AGENTS)}")
    return AGENTS[algo]


def _module(algo: str) -> Any:
    return importlib.import_module(spec(algo).module)


def make_learner(algo: str, task: str, arm: ArmModel, params: dict[str, Any], seed: int) -> Any:
    """The learner of `algo` on `task` with the merged preset `params`."""
    return _module(algo).make_learner(algo, task, arm, params, seed)


def make_actor(
    algo: str,
    task: str,
    arm: ArmModel,
    artifact: Any,
    params: dict[str, Any],
    seed: int = 0,
    stream: int = 0,
    planner_overrides: dict[str, Any] | None = None,
) -> Any:
    """The actor of `algo` running `artifact` (the kind spec(algo).artifact names)."""
    return _module(algo).make_actor(
        algo, task, arm, artifact, params, seed, stream, planner_overrides
    )


def layout(algo: str, task: str, nj: int, params: dict[str, Any]) -> dict[str, Any]:
    """What the artifact's inputs and outputs mean for `algo` on `task` (the fitter sends it
    with each artifact; the controller refuses one whose layout differs from its own)."""
    return _module(algo).layout(algo, task, nj, params)


def increment_base(params: dict[str, Any]) -> str:
    """What an action's increment is added to, as the preset's env says: "command" (the
    previous command) or "measured" (the measured joints; mbrl.costs.tasks.next_command)."""
    return params.get("env", {}).get("increment_from", "command")


def artifact_layout(algo: str, task: str, arm: ArmModel, params: dict[str, Any]) -> dict[str, Any]:
    """`layout` plus the arm facts an artifact is only valid for: the joints (by name, in
    order), the action scale, what increments are added to and the control rate. The fitter
    sends it with every artifact; the controller computes its own and refuses one that
    differs."""
    return {
        **layout(algo, task, arm.nj, params),
        "joint_names": list(arm.joint_names),
        "max_increment": arm.max_increment,
        "action_base": increment_base(params),
        "control_rate_hz": float(arm.config.control_rate_hz),  # one action = one such tick
    }


def load_artifact(kind: str, path: str | Path) -> Any:
    """Read an artifact file of `kind`; ValueError for an unknown kind, ModelFileError
    (a ValueError) naming the file for a bad one."""
    if kind not in ARTIFACT_LOADERS:
        raise ValueError(f"artifact kind {kind!r}; expected one of {sorted(ARTIFACT_LOADERS)}")
    module, name = ARTIFACT_LOADERS[kind].split(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj(path)


def explore_episodes(algo: str, params: dict[str, Any], num_episodes: int) -> int:
    """How many of the first training episodes explore: all for Algorithm 1 (it never acts
    with its model while learning), else the preset's random_episodes."""
    return num_episodes if algo == "alg1" else int(params.get("random_episodes", 1))

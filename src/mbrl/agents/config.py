"""Which agent a driver runs: the algorithm, the task and the overrides of its preset, in
one frozen dataclass that the CLI, the experiment node, the fitter and the controller all
read (a `/**:` block of the graph's parameter files sets it for every node at once)."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from mbrl.agents.presets import PRESETS, ParamError, preset
from mbrl.agents.registry import AGENTS
from mbrl.config import ConfigError
from mbrl.costs.tasks import TASKS

# Algorithms whose learner and actor the ROS nodes host: every agent of the registry.
GRAPH_ALGOS = tuple(AGENTS)


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Attributes:
    algo: the algorithm ("mpc"; mbrl.agents.presets has the others' presets).
    task: "reach" or "push".
    params: YAML mapping of overrides of the (algo, task) preset, as `mbrl experiment
        --set` takes them, e.g. "{planner_config: {horizon: 15}}"; "" = none.
    """

    algo: str = "mpc"
    task: str = "reach"
    params: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"agent.task must be one of {list(TASKS)}, got {self.task!r}")
        if (self.algo, self.task) not in PRESETS:
            algos = sorted({a for a, _ in PRESETS})
            raise ConfigError(f"agent.algo {self.algo!r} unknown; expected one of {algos}")
        if self.algo not in GRAPH_ALGOS:
            raise ConfigError(
                f"agent.algo {self.algo!r} has no agent the nodes can host yet; the graph runs "
                f"{list(GRAPH_ALGOS)} (mbrl experiment runs the others)"
            )
        self.preset()  # unknown or malformed overrides fail here, at start-up

    def overrides(self) -> dict[str, Any]:
        try:
            data = yaml.safe_load(self.params) if self.params.strip() else {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"agent.params is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"agent.params must be a mapping, got {self.params!r}")
        return data

    def preset(self) -> dict[str, Any]:
        """The effective parameters: the shipped preset merged with the overrides."""
        try:
            return preset(self.algo, self.task, self.overrides())
        except ParamError as exc:
            raise ConfigError(f"agent.params: {exc}") from exc

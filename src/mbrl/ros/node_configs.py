"""The configuration of each node of the graph, one frozen dataclass per node, ROS-free (no
rclpy import), so configs are built and checked without a middleware: the sim, collector and
model_fitter here; mpc_controller in controller_core, experiment in experiment_core. Each
field is a parameter of its node (mbrl.ros.params declares them; test/ros/test_topics.py
checks every parameter file key is one).
"""

from __future__ import annotations

import dataclasses
import re

from mbrl.agents.config import AgentConfig
from mbrl.agents.registry import ARTIFACT_LOADERS
from mbrl.config import ArmConfig, ConfigError

# The graph's one timing switch (graph.yaml `timing`): "realtime" (the arm, or the sim on a
# wall-clock timer, does not wait) or "lockstep" (the sim advances one period per command and
# the controller plans each tick to completion: the fast, load-independent test path).
TIMINGS = ("realtime", "lockstep")
MODES = TIMINGS  # the sim's timing, as `mbrl demo --scripted --mode` names it

MODEL_KINDS = tuple(ARTIFACT_LOADERS)  # what a fitter can publish on /mbrl/model


@dataclasses.dataclass(frozen=True)
class LocalModelSettings:
    """The time-varying linear-Gaussian local models fitted beside the learner's artifact.

    Attributes:
        enabled: fit them at all.
        min_length: shortest trajectory (transitions) used for them.
        gmm_components: components of their GMM prior.
    """

    enabled: bool = True
    min_length: int = 10
    gmm_components: int = 4


@dataclasses.dataclass(frozen=True)
class SimNodeConfig:
    """Settings of the sim node (parameters of node `sim`, see docs/ros_interface.md).

    Attributes:
        arm: the simulated arm.
        timing: the graph's timing switch (graph.yaml): "realtime" (the sim steps on a
            wall-clock timer at arm.control_rate_hz) or "lockstep" (the sim advances one
            control period per received command).
        controller_name: commands arrive on /<controller_name>/commands.
        trajectory_controller_name: trajectories arrive on /<name>/joint_trajectory.
        joints: the controllers' joint order; empty means arm.joint_names.
        with_cube: load the cube of the push task and publish its pose.
        seed: seed of the simulator's noise; -1 means unseeded.
        publish_robot_description: publish the URDF on /robot_description (off when a
            robot_state_publisher does it).
        idle_publish_rate_hz: in lockstep mode, republish the unchanged joint state at this
            wall-clock rate so late joiners see the arm (0 = off).
        frame_id: frame of the published cube pose.
        state_rate_hz: real time: publish /joint_states at this rate, reading the arm
            between control ticks as a ros2_control joint_state_broadcaster does (the
            SO-101 drivers: 50 Hz); 0 = one state per control tick. arm.physics_rate_hz
            must be a multiple of it (e.g. 300 Hz physics for 50 Hz states at 20 Hz control).
    """

    arm: ArmConfig = dataclasses.field(default_factory=ArmConfig)
    timing: str = "realtime"
    controller_name: str = "forward_position_controller"
    trajectory_controller_name: str = "joint_trajectory_controller"
    joints: tuple[str, ...] = ()
    with_cube: bool = False
    seed: int = -1
    publish_robot_description: bool = True
    idle_publish_rate_hz: float = 10.0
    frame_id: str = "world"
    state_rate_hz: float = 0.0

    def __post_init__(self) -> None:
        if self.timing not in TIMINGS:
            raise ConfigError(f"timing must be one of {list(TIMINGS)}, got {self.timing!r}")
        if self.state_rate_hz:
            substeps = self.arm.physics_rate_hz / self.state_rate_hz
            if self.timing != "realtime" or self.state_rate_hz < 0:
                raise ConfigError(
                    f"state_rate_hz {self.state_rate_hz:g} needs timing realtime and a rate "
                    f"> 0 (lockstep publishes one state per command); 0 = the control rate"
                )
            if abs(substeps - round(substeps)) > 1e-9 or round(substeps) < 1:
                raise ConfigError(
                    f"arm.physics_rate_hz {self.arm.physics_rate_hz:g} is not a multiple of "
                    f"state_rate_hz {self.state_rate_hz:g}: each state must follow whole "
                    f"physics steps (e.g. 300 Hz physics for 50 Hz states)"
                )
        unknown = [j for j in self.joints if j not in self.arm.joint_names]
        if unknown:
            raise ConfigError(
                f"joints names unknown joint(s) {unknown}; expected a subset of "
                f"arm.joint_names {list(self.arm.joint_names)}"
            )
        if len(set(self.joints)) != len(self.joints):
            raise ConfigError(f"joints has duplicates: {list(self.joints)}")
        for name in ("controller_name", "trajectory_controller_name"):
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", getattr(self, name)):
                raise ConfigError(
                    f"{name} must be a valid topic token, got {getattr(self, name)!r}"
                )

    @property
    def controller_joints(self) -> tuple[str, ...]:
        """The command order of the controllers."""
        return self.joints or self.arm.joint_names

    @property
    def state_substeps(self) -> int:
        """Physics steps between two published states (real time)."""
        rate = self.state_rate_hz or self.arm.control_rate_hz
        return int(round(self.arm.physics_rate_hz / rate))


@dataclasses.dataclass(frozen=True)
class CollectorConfig:
    """Settings of the collector node (parameters of node `collector`).

    Attributes:
        arm: the graph's arm (config/graph.yaml): its joint names are the recorded joints,
            and its driver names (arm.driver_joint_names) the names they are read under.
        data_dir: this node's own directory; episodes go to <data_dir>/episodes/.
        joints: the recorded joints, in the order of every recorded array (read by NAME
            from /joint_states; the command order of the controllers); empty = arm.joint_names.
        driver_joints: the arm driver's names for `joints`, same order (e.g.
            `shoulder_pan_joint`): /joint_states and trajectories are read under these and
            recorded under `joints`; empty = the arm's driver names (or `joints` themselves).
        controller_name: position commands are read from /<controller_name>/commands.
        trajectory_controller_name: trajectories from /<name>/joint_trajectory (the first
            point is recorded as the command).
        chunk_bytes: write an MCAP chunk once this many bytes are buffered.
        flush_period: s, the open chunk reaches the OS at least this often: the most a
            `kill -9` can lose.
        republish_on_start: publish every episode file already in data_dir on start.
        diagnostics_period: s between /diagnostics reports.
        end_grace: s after an end event to finish its episode when no later joint state
            and command arrive (see mbrl.ros.recording).
        end_timeout: s after an end event that counts the episode's commands to wait for
            the ones not yet recorded; the episode is then rejected as a stream with a gap.
        queue_depth: history depth of the joint state and command subscriptions: a backlog
            (lockstep runs faster than real time) waits in DDS instead of being dropped.
    """

    arm: ArmConfig = dataclasses.field(default_factory=ArmConfig)
    data_dir: str = "collector_data"
    joints: tuple[str, ...] = ()
    driver_joints: tuple[str, ...] = ()
    controller_name: str = "forward_position_controller"
    trajectory_controller_name: str = "joint_trajectory_controller"
    chunk_bytes: int = 64 * 1024
    flush_period: float = 0.5
    republish_on_start: bool = True
    diagnostics_period: float = 1.0
    end_grace: float = 0.3
    end_timeout: float = 5.0
    queue_depth: int = 5000

    def __post_init__(self) -> None:
        if not self.joints:  # the arm's: one arm description for every node
            object.__setattr__(self, "joints", tuple(self.arm.joint_names))
            if not self.driver_joints and self.arm.driver_joint_names:
                object.__setattr__(self, "driver_joints", tuple(self.arm.driver_joint_names))
        if self.end_grace <= 0 or self.queue_depth < 10 or not self.end_timeout >= self.end_grace:
            raise ConfigError(
                f"end_grace must be > 0 s, end_timeout >= end_grace and queue_depth >= 10; "
                f"got {self.end_grace}, {self.end_timeout}, "
                f"{self.queue_depth}"
            )
        if not self.joints or len(set(self.joints)) != len(self.joints):
            raise ConfigError(f"joints must be non-empty and unique, got {list(self.joints)}")
        if self.driver_joints and (
            len(self.driver_joints) != len(self.joints)
            or len(set(self.driver_joints)) != len(self.driver_joints)
        ):
            raise ConfigError(
                f"driver_joints {list(self.driver_joints)} must name each of joints "
                f"{list(self.joints)} once, in the same order"
            )
        if self.flush_period <= 0 or self.diagnostics_period <= 0 or self.chunk_bytes < 1:
            raise ConfigError(
                "flush_period and diagnostics_period must be > 0 s and chunk_bytes >= 1; got "
                f"{self.flush_period}, {self.diagnostics_period}, {self.chunk_bytes}"
            )
        for name in ("controller_name", "trajectory_controller_name"):
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", getattr(self, name)):
                raise ConfigError(f"{name} must be a topic token, got {getattr(self, name)!r}")


@dataclasses.dataclass(frozen=True)
class ModelFitterConfig:
    """Settings of the model_fitter node (parameters of node `model_fitter`).

    Attributes:
        arm: the arm (joint names looked up by name in the episodes, FK, max_increment);
            the graph's one arm file.
        agent: which learner runs (algorithm, task, preset overrides; mbrl.agents.config):
            the same preset `mbrl experiment` uses.
        seed: seeds the learner (ensemble init and fits) and the local models.
        data_dir: this node's own directory: episodes/ (received copies), models/.
        max_gap: a pause of the command stream longer than this many periods (with that
            many more joint states) cuts a trajectory (TransitionLayout.max_gap).
        fit_on_new_data: fit when a new episode arrives (else only on ~/fit).
        min_episodes: episodes needed before the first fit.
        fit_local_lg: also fit time-varying linear-Gaussian local models.
        local_lg_min_length: shortest trajectory (ticks) used for them.
        gmm_components: components of their GMM prior.
        publish_kind: the artifact published on /mbrl/model (mbrl.agents.registry
            ARTIFACT_LOADERS: ensemble | local_lg | policy); "" = the agent's own (what its
            actor runs: ensemble for mpc/alg1/alg2, policy for policy).
        torch_threads: threads of the fit (CPU is shared with the controller).
        republish_on_start: publish the latest checkpoint on start.
        diagnostics_period: s between /diagnostics reports.
    """

    arm: ArmConfig = dataclasses.field(default_factory=ArmConfig)
    agent: AgentConfig = dataclasses.field(default_factory=AgentConfig)
    seed: int = 0
    data_dir: str = "model_fitter_data"
    max_gap: float = 3.0
    fit_on_new_data: bool = True
    min_episodes: int = 1
    fit_local_lg: bool = True
    local_lg_min_length: int = 10
    gmm_components: int = 4
    publish_kind: str = ""
    torch_threads: int = 1
    republish_on_start: bool = True
    diagnostics_period: float = 1.0

    def __post_init__(self) -> None:
        if self.publish_kind and self.publish_kind not in MODEL_KINDS:
            raise ConfigError(f"publish_kind {self.publish_kind!r}; expected one of {MODEL_KINDS}")
        if self.publish_kind == "local_lg" and not self.fit_local_lg:
            raise ConfigError("publish_kind is local_lg but fit_local_lg is false")
        for name in ("min_episodes", "local_lg_min_length", "gmm_components", "torch_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.max_gap > 1 or self.diagnostics_period <= 0:
            raise ConfigError("need max_gap > 1 (periods) and diagnostics_period > 0")

    def local_settings(self) -> LocalModelSettings:
        return LocalModelSettings(self.fit_local_lg, self.local_lg_min_length, self.gmm_components)

"""One arm file for the whole graph (`mbrl demo --arm FILE --servo PROFILE`): the runner's
parameter file carries every arm field to every node, rcl accepts it (no YAML aliases), and
a node reads back the same ArmConfig: an empty gripper list stays empty, a pybullet_data://
URDF and a servo profile arrive intact."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from mbrl.config import SERVO_PROFILES, arm_from_options  # noqa: E402
from mbrl.ros.demo import learning_overrides  # noqa: E402
from mbrl.ros.params import (  # noqa: E402
    SimNodeConfig,
    declare_config_parameters,
    read_config_parameters,
)
from mbrl.ros.runner import _nest, _NoAliasDumper  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _read_back(tmp_path: Path, flat: dict) -> SimNodeConfig:
    """Node `sim` with the runner's parameter files: graph.yaml, sim.yaml, then `flat`."""
    path = tmp_path / "sim_overrides.yaml"
    text = yaml.dump({"sim": {"ros__parameters": _nest(flat)}}, Dumper=_NoAliasDumper)
    assert "&id" not in text and "*id" not in text  # rcl refuses YAML aliases
    path.write_text(text)
    files = [CONFIG / "graph.yaml", CONFIG / "sim.yaml", path]
    args = ["--ros-args"] + [a for f in files for a in ("--params-file", str(f))]
    node = rclpy.create_node("sim", cli_args=args)
    try:
        declare_config_parameters(node)
        return read_config_parameters(node)
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    "arm_file, servo", [("arm_iiwa.yaml", "realistic"), ("arm_so101.yaml", None)]
)
def test_every_node_gets_the_arm_file_and_reads_it_back(ros_context, tmp_path, arm_file, servo):
    arm = arm_from_options(CONFIG / arm_file, servo)
    overrides = learning_overrides(
        tmp_path / "run", budget_steps=100, episode_steps=50, eval_goals=1, eval_every=1,
        seed=0, timeout=60.0, arm=arm,
    )  # fmt: skip
    for node, flat in overrides.items():  # the same arm on every node of the graph
        assert flat["arm.urdf"] == arm.urdf and flat["arm.joint_names"] == list(arm.joint_names)
    # CollectorConfig()'s default joints are the bundled arm's: the arm's must be given
    assert overrides["collector"]["joints"] == list(arm.joint_names)
    cfg = _read_back(tmp_path, overrides["sim"])  # after graph.yaml's arm and sim.yaml
    assert cfg.arm == arm
    assert cfg.controller_joints == arm.joint_names  # not sim.yaml's bundled-arm order
    if arm_file == "arm_iiwa.yaml":
        assert cfg.arm.gripper_joints == () and len(cfg.arm.joint_names) == 7
        assert cfg.arm.urdf.startswith("pybullet_data://")
        assert cfg.arm.servo == SERVO_PROFILES["realistic"]

"""The feetech_bridge node against the emulated Feetech bus (a pseudo-terminal; NOT hardware):
the /joint_states rate it keeps (target: the configured 50 Hz, the reference in the same
run), the rate with dropped and corrupt status packets (retried), and how long a dead bus
takes to be reported as held. Prints one JSON line (docs/real_arm.md).

  python bench/feetech_bridge.py --seconds 10

Runs the bridge as its own process (embedded runner) over DDS; the emulator runs in this
process (test/real/feetech_emulator.py). Set ROS_DOMAIN_ID to keep it apart from other runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "test" / "real"), str(ROOT / "test" / "ros")]
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
import yaml  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from feetech_emulator import FeetechBusEmulator  # noqa: E402
from ros_helpers import Client, Output  # noqa: E402
from test_calibration import CALIBRATION  # noqa: E402

from mbrl.config import ArmConfig, from_dict, load_yaml  # noqa: E402
from mbrl.real.calibration import calibration_from_dict  # noqa: E402
from mbrl.real.cli import arm_file  # noqa: E402
from mbrl.ros.msgs import to_seconds  # noqa: E402
from mbrl.ros.real_arm import BRIDGE  # noqa: E402
from mbrl.ros.runner import GraphRunner  # noqa: E402


def _rate(client: Client, seconds: float) -> tuple[float, float]:
    """(mean Hz, interval p99 ms) of the joint states over `seconds` of wall time."""
    client.states.clear()
    client.spin_for(seconds)
    stamps = np.array([to_seconds(m.header.stamp) for m in client.states])
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]), float(
        np.percentile(np.diff(stamps), 99) * 1e3
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    args = parser.parse_args()
    cal = calibration_from_dict(CALIBRATION)
    base = from_dict(ArmConfig, load_yaml(ROOT / "config" / "arm_so101.yaml")["arm"], "arm")
    raw = {m.id: round(m.mid) + m.homing_offset for m in cal.motors}
    rclpy.init()
    with FeetechBusEmulator(raw) as emu, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "arm.yaml"
        path.write_text(yaml.safe_dump(arm_file(base, cal, "mbrl", emu.port)))
        runner = GraphRunner(
            (BRIDGE,), overrides={"feetech_bridge": {"arm_file": str(path)}}, output=Output()
        )
        runner.start()
        client = Client(rclpy.create_node("bench_feetech_bridge"))
        diagnostics: list[dict] = []
        client.node.create_subscription(
            DiagnosticArray,
            "/diagnostics",
            lambda m: diagnostics.extend(
                {v.key: v.value for v in s.values} for s in m.status if s.name.endswith("bridge")
            ),
            50,
        )
        try:
            assert client.spin_until(lambda: len(client.states) > 10, timeout=60.0)
            hz, p99 = _rate(client, args.seconds)
            emu.drop_every, emu.corrupt_every = 37, 29
            faulty_hz, faulty_p99 = _rate(client, args.seconds)
            emu.drop_every = emu.corrupt_every = 0
            n, start = len(diagnostics), time.monotonic()
            emu.dead = True
            client.spin_until(lambda: any(d.get("state") == "held" for d in diagnostics[n:]))
            held_after = time.monotonic() - start
        finally:
            client.node.destroy_node()
            runner.shutdown()
            rclpy.try_shutdown()
    print(
        json.dumps(
            {
                "bench": "feetech_bridge (emulated bus on a pty, not hardware)",
                "reference_hz": 50.0,
                "joint_states_hz": round(hz, 1),
                "interval_p99_ms": round(p99, 1),
                "faulty_bus_hz": round(faulty_hz, 1),
                "faulty_bus_interval_p99_ms": round(faulty_p99, 1),
                "faults": {"dropped": emu.dropped, "corrupt": emu.corrupted},
                "dead_bus_to_held_s": round(held_after, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

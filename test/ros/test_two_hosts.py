"""The graph across two hosts (issue 16, part 6): the fitter on a GPU workstation, the
controller on the robot's computer. The test makes the second host: a network namespace
joined to this one by a veth pair, with a private /dev/shm (so DDS cannot take its
shared-memory shortcut between the two), and starts the model_fitter in it. Every node
discovers the other host through ROS_STATIC_PEERS, as docs/real_arm.md tells a two-machine
setup to; a lockstep learning run must then complete, with its models crossing the link.

Needs root and iproute2 (CI runs as root); skipped otherwise."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mbrl.ros.demo import learn

pytestmark = pytest.mark.ros


@dataclasses.dataclass(frozen=True)
class Host:
    """A second host: run a command on it with `prefix`; `address` is its IP on the link
    to this host (`local`); `link` is this host's end of the veth pair."""

    prefix: list[str]
    address: str
    local: str
    link: str


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


@pytest.fixture
def second_host():
    if os.geteuid() != 0 or not (shutil.which("ip") and shutil.which("unshare")):
        pytest.skip("needs root and iproute2 to make a network namespace (CI runs as root)")
    k = 20 + os.getpid() % 200  # one /24 and interface pair per test process
    ns, here, there = f"mbrl-host2-{os.getpid()}", f"mbrlh{k}", f"mbrln{k}"
    local, address = f"10.213.{k}.1", f"10.213.{k}.2"
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", here, "type", "veth", "peer", "name", there)
        _ip("link", "set", there, "netns", ns)
        _ip("addr", "add", f"{local}/24", "dev", here)
        _ip("link", "set", here, "up")
        for args in (("addr", "add", f"{address}/24", "dev", there),
                     ("link", "set", there, "up"), ("link", "set", "lo", "up")):  # fmt: skip
            _ip("netns", "exec", ns, "ip", *args)
        # exec all the way down (ip netns exec, unshare, sh): the node keeps the pid the
        # runner signals; its /dev/shm is its own, as on another machine
        prefix = ["ip", "netns", "exec", ns, "unshare", "--mount", "sh", "-c",
                  'mount -t tmpfs tmpfs /dev/shm && exec "$0" "$@"']  # fmt: skip
        yield Host(prefix, address, local, here)
    finally:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        for pid in pids.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        with contextlib.suppress(RuntimeError):
            _ip("link", "del", here)
        _ip("netns", "del", ns)


def _bytes(link: str) -> int:
    stats = Path("/sys/class/net") / link / "statistics"
    return int((stats / "rx_bytes").read_text()) + int((stats / "tx_bytes").read_text())


def test_second_host_is_unreachable_without_static_peers(second_host, tmp_path):
    """The control: with no peer configured, a node on the second host finds nobody here
    (so the run below crosses the link, not shared memory or localhost)."""
    probe = (
        "import rclpy, time; rclpy.init(); n = rclpy.create_node('probe'); t = time.time()\n"
        "while time.time() - t < 4 and len(n.get_node_names()) < 2:\n"
        "    rclpy.spin_once(n, timeout_sec=0.2)\n"
        "print(sorted(set(n.get_node_names()) - {'probe'}))"
    )
    import sys

    here = subprocess.Popen(
        [sys.executable, "-c", probe.replace("'probe'", "'here'")], stdout=subprocess.PIPE,
        text=True, env={**os.environ, "ROS_STATIC_PEERS": ""},
    )  # fmt: skip
    there = subprocess.run(
        [*second_host.prefix, sys.executable, "-c", probe], capture_output=True, text=True,
        timeout=60, env={**os.environ, "ROS_STATIC_PEERS": ""},
    )  # fmt: skip
    here.wait(timeout=60)
    assert there.returncode == 0, there.stderr[-2000:]
    assert there.stdout.strip() == "[]", there.stdout


# Expensive tier: it failed once in four clean-clone runs (2026-12-01): the fitter's first
# fit found "no transitions in 0 trajectories" in the one explore episode it received. The
# cause is not found (the other three runs and two runs alone passed); until it is, it
# must not fail make test at random.
@pytest.mark.expensive
def test_learning_run_completes_with_the_fitter_on_a_second_host(
    second_host, tmp_path, monkeypatch
):
    monkeypatch.setenv("ROS_STATIC_PEERS", second_host.address)  # every node here
    before = _bytes(second_host.link)
    run_dir = tmp_path / "two_hosts"
    summary = learn(
        run_dir, budget_steps=100, eval_goals=1, eval_every=1, seed=0, timeout=600,
        prefixes={"model_fitter": second_host.prefix},
        additional_env={"model_fitter": {"ROS_STATIC_PEERS": second_host.local}},
    )  # fmt: skip
    assert summary["real_steps"] == 100
    # the fitter (over there) saved models it fitted on episodes it received over the link
    assert sorted((run_dir / "model_fitter").rglob("ensemble_*.npz")), list(run_dir.rglob("*"))
    crossed = _bytes(second_host.link) - before
    assert crossed > 1_000_000, f"only {crossed} bytes crossed the link"

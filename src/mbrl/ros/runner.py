"""The embedded runner: start the graph's nodes as OS processes, as `ros2 launch` would.

launch/launch_ros are not on PyPI, so `make demo` starts each node of mbrl.ros.graph with
`python -m <module> --ros-args --params-file ...`, prefixes its output with the node name,
stops all of them on exit or Ctrl-C, and fails loudly when one dies.
Run the graph by hand: `python -m mbrl.ros.runner [--node sim] [-p sim:timing:=lockstep]`.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from mbrl.ros.graph import TIMED_NODES, NodeSpec, get_nodes, param_file_paths

_PR_SET_PDEATHSIG = 1


class NodeDied(RuntimeError):
    """A node of the graph exited while the graph was meant to be running."""


def _die_with_parent() -> None:
    # Children get SIGTERM if the runner itself is killed (even by SIGKILL), so a crashed
    # runner never leaves a sim publishing in the background. Linux only; harmless elsewhere.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"arm.home": v} -> {"arm": {"home": v}}, the layout of a ros__parameters block."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        target = out
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = list(value) if isinstance(value, tuple) else value
    return out


class _NoAliasDumper(yaml.SafeDumper):
    """YAML without anchors/aliases (`&id001` / `*id001`): rcl's parameter parser refuses
    them, and one list object used twice (the same joint names in two blocks) makes them."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


class _Process:
    def __init__(self, spec: NodeSpec, popen: subprocess.Popen, tail: int) -> None:
        self.spec = spec
        self.popen = popen
        self.tail: collections.deque[str] = collections.deque(maxlen=tail)
        self.reader: threading.Thread | None = None


def _file_timing(spec: NodeSpec) -> str | None:
    """The `timing` a node's parameter files give it (the last file that sets it)."""
    timing = None
    for path in param_file_paths(spec):
        for block in (yaml.safe_load(path.read_text()) or {}).values():
            timing = ((block or {}).get("ros__parameters") or {}).get("timing", timing)
    return timing


class GraphRunner:
    """Run nodes of the graph as child processes; use as a context manager.

    Args:
        specs: the nodes to start (see mbrl.ros.graph.get_nodes).
        overrides: per node name, parameters {dotted.name: value} applied after its files.
        output: where prefixed child output goes.
        python: interpreter for the children.
        tail_lines: lines of each child's output kept for the error report.
        prefixes: per node name, a command put before its interpreter (launch_ros's
            `prefix`), e.g. ["ip", "netns", "exec", "fitter_host"] to run it on another
            network; the prefix must exec the node, not fork it (signals reach its pid).
        additional_env: per node name, environment variables set for it alone (launch_ros's
            `additional_env`), e.g. its ROS_STATIC_PEERS.
    """

    def __init__(
        self,
        specs: Sequence[NodeSpec],
        *,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        output: TextIO | None = None,
        python: str = sys.executable,
        tail_lines: int = 40,
        prefixes: Mapping[str, Sequence[str]] | None = None,
        additional_env: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.specs = tuple(specs)
        self.overrides = dict(overrides or {})
        self.prefixes = {k: list(v) for k, v in (prefixes or {}).items()}
        self.additional_env = {k: dict(v) for k, v in (additional_env or {}).items()}
        names = {s.name for s in self.specs}
        for what, given in (("overrides", self.overrides), ("prefixes", self.prefixes),
                            ("additional_env", self.additional_env)):  # fmt: skip
            unknown = sorted(set(given) - names)
            if unknown:
                raise KeyError(f"{what} for node(s) {unknown} that are not being started")
        timed = [s for s in self.specs if s.name in TIMED_NODES]
        timings = {s.name: self.overrides.get(s.name, {}).get("timing") for s in timed}
        if len(set(timings.values())) > 1:
            timings = {s.name: timings[s.name] or _file_timing(s) for s in timed}
        if len(set(timings.values())) > 1:
            # graph.yaml's one switch: a lockstep sim beside a real-time controller pairs
            # no command with the state it was made from
            raise ValueError(
                f"timing is one switch for the whole graph; these overrides split it: "
                f"{timings} (set it for every one of {[s.name for s in timed]}, or for none)"
            )
        self.output = output or sys.stdout
        self.python = python
        self.tail_lines = tail_lines
        self._procs: list[_Process] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._lock = threading.Lock()
        self._stopping = False

    def command(self, spec: NodeSpec, override_file: Path | None = None) -> list[str]:
        """The argv that starts `spec`."""
        argv = [*self.prefixes.get(spec.name, ()), self.python, "-m", spec.module]
        argv += ["--ros-args", "-r", f"__node:={spec.name}"]
        for path in param_file_paths(spec):
            argv += ["--params-file", str(path)]
        if override_file is not None:
            argv += ["--params-file", str(override_file)]
        return argv

    def start(self) -> GraphRunner:
        """Start every node; returns self. Raises if a parameter file is missing."""
        self._tmp = tempfile.TemporaryDirectory(prefix="mbrl-graph-")
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
        for spec in self.specs:
            override_file = None
            if spec.name in self.overrides:
                override_file = Path(self._tmp.name) / f"{spec.name}_overrides.yaml"
                block = {spec.name: {"ros__parameters": _nest(self.overrides[spec.name])}}
                override_file.write_text(yaml.dump(block, Dumper=_NoAliasDumper))
            argv = self.command(spec, override_file)
            popen = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                bufsize=1,
                env={**env, **self.additional_env.get(spec.name, {})},
                # Own session: a terminal Ctrl-C reaches only the runner, which then stops the
                # children in order instead of all of them racing.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            proc = _Process(spec, popen, self.tail_lines)
            proc.reader = threading.Thread(target=self._forward, args=(proc,), daemon=True)
            proc.reader.start()
            self._procs.append(proc)
            shown = " ".join(argv[len(self.prefixes.get(spec.name, ())) + 1 :])
            self._say(f"started node '{spec.name}' (pid {popen.pid}): {shown}")
        return self

    def _say(self, line: str) -> None:
        with self._lock:
            self.output.write(f"[runner] {line}\n")
            self.output.flush()

    def _forward(self, proc: _Process) -> None:
        assert proc.popen.stdout is not None
        for line in proc.popen.stdout:
            line = line.rstrip("\n")
            proc.tail.append(line)
            with self._lock:
                self.output.write(f"[{proc.spec.name}] {line}\n")
                self.output.flush()

    def check(self) -> None:
        """Raise NodeDied (with the node's last output) if any node has exited."""
        for proc in self._procs:
            code = proc.popen.poll()
            if code is not None and not self._stopping:
                if proc.reader is not None:
                    proc.reader.join(timeout=2.0)  # collect its last words
                tail = "\n".join(f"    {line}" for line in proc.tail)
                raise NodeDied(
                    f"node '{proc.spec.name}' (pid {proc.popen.pid}) exited with code {code}; "
                    f"its last output:\n{tail}"
                )

    def wait(self, poll_s: float = 0.2) -> None:
        """Block until a node dies (raises NodeDied) or KeyboardInterrupt."""
        while True:
            self.check()
            time.sleep(poll_s)

    def shutdown(self, timeout: float = 10.0) -> dict[str, int | None]:
        """Stop all nodes (SIGINT, then SIGTERM, then SIGKILL); returns their exit codes."""
        self._stopping = True
        steps = ((signal.SIGINT, 0.6 * timeout), (signal.SIGTERM, 0.3 * timeout))
        for sig, grace in steps:
            alive = [p for p in self._procs if p.popen.poll() is None]
            for proc in alive:
                proc.popen.send_signal(sig)
            deadline = time.monotonic() + grace
            for proc in alive:
                try:
                    proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        for proc in self._procs:
            if proc.popen.poll() is None:
                self._say(f"node '{proc.spec.name}' ignored SIGINT/SIGTERM; killing it")
                proc.popen.kill()
                proc.popen.wait()
            if proc.reader is not None:
                proc.reader.join(timeout=2.0)
        codes = {p.spec.name: p.popen.returncode for p in self._procs}
        if self._procs:
            self._say(f"stopped: {codes}")
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return codes

    def __enter__(self) -> GraphRunner:
        try:
            return self.start()
        except BaseException:
            self.shutdown()
            raise

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _parse_override(text: str) -> tuple[str, str, Any]:
    """'node:param:=value' -> (node, param, YAML-parsed value)."""
    try:
        node_and_param, value = text.split(":=", 1)
        node, param = node_and_param.split(":", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NODE:PARAM:=VALUE, got {text!r}") from None
    return node, param, yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    """Run (part of) the graph until Ctrl-C; exit code 1 if a node dies."""
    parser = argparse.ArgumentParser(prog="python -m mbrl.ros.runner", description=__doc__)
    parser.add_argument("--node", action="append", help="start only these nodes (repeatable)")
    parser.add_argument(
        "-p", dest="params", action="append", default=[], type=_parse_override,
        metavar="NODE:PARAM:=VALUE", help="parameter override, e.g. sim:timing:=lockstep",
    )  # fmt: skip
    args = parser.parse_args(argv)
    overrides: dict[str, dict[str, Any]] = {}
    for node, param, value in args.params:
        overrides.setdefault(node, {})[param] = value
    # SIGTERM (e.g. from a CI timeout) stops the children in order, like Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with GraphRunner(get_nodes(args.node), overrides=overrides) as runner:
            runner.wait()
    except KeyboardInterrupt:
        return 0
    except NodeDied as exc:
        print(f"[runner] {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""mbrl-lib 0.2.0 as a benchmark peer: builds its pinned virtualenv on demand and drives a
worker process in it (bench/peers/mbrl_lib_worker.py) over JSON lines on stdin/stdout.

The worker waits on its stdin between commands, so while our side of an interleaved
benchmark runs, the peer uses no CPU (and the other way round).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REQUIREMENTS = HERE / "mbrl-lib-0.2.0.txt"
VENV = ROOT / ".bench-venv" / "mbrl-lib-0.2.0"
WORKER = HERE / "mbrl_lib_worker.py"


def ensure_venv(log=print) -> Path:
    """The peer venv's python, building the venv first if it is missing or its pins changed.

    Installs with --no-deps from mbrl-lib-0.2.0.txt only (see that file for why each pin).
    """
    python = VENV / "bin" / "python"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    marker = VENV / ".installed"
    if python.exists() and marker.exists() and marker.read_text() == digest:
        return python
    base = getattr(sys, "_base_executable", sys.executable)
    log(f"building the mbrl-lib 0.2.0 peer venv in {VENV} (once; ~1 min)")
    subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True)
    cmd = [str(python), "-m", "pip", "install", "-q", "--no-deps", "-r", str(REQUIREMENTS)]
    subprocess.run(cmd, check=True)
    subprocess.run([str(python), "-c", "import mbrl.models, mbrl.planning"], check=True)
    marker.write_text(digest)
    return python


class MbrlLibPeer:
    """One worker process in the peer venv; `call(cmd, **args)` returns its JSON reply."""

    def __init__(self, threads: int, log=print) -> None:
        python = ensure_venv(log)
        # cwd outside the repo and -I: the peer must import ITS `mbrl`, never ours.
        self.proc = subprocess.Popen(
            [str(python), "-I", str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(VENV),
        )
        self.info = self.call("hello", threads=threads)

    def call(self, cmd: str, **args) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"mbrl-lib worker exited (code {self.proc.wait()}) on {cmd!r}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"mbrl-lib worker, {cmd!r}: {reply['error']}")
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)

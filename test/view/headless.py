"""A real headless Chromium (Debian's package) driven over the DevTools protocol.

`chromium --headless --screenshot` takes its picture as soon as the page's load event
fires, before the Rerun viewer's wasm has started, so the tests keep one browser open and
ask it for screenshots over the DevTools websocket when they choose.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import websocket

# WebGL without a GPU: ANGLE on SwiftShader (software). Chromium 156 refuses SwiftShader for
# WebGL unless --enable-unsafe-swiftshader is given.
GL_FLAGS = ("--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist")


def chromium_path() -> str | None:
    """The chromium binary on PATH, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class HeadlessChromium:
    """One headless Chromium showing `url`; `screenshot()` returns PNG bytes.

    Args:
        url: the page to open.
        size: (width, height) px of the window.
    """

    def __init__(self, url: str, size: tuple[int, int] = (1280, 800)) -> None:
        binary = chromium_path()
        if binary is None:
            raise FileNotFoundError("chromium is not installed (Debian package 'chromium')")
        # (chromium's helpers can still write to the profile as it goes: cleanup never fails)
        self._profile = tempfile.TemporaryDirectory(
            prefix="mbrl-chromium-", ignore_cleanup_errors=True
        )
        args = [binary, "--headless", "--no-sandbox", "--no-first-run", "--mute-audio",
                "--remote-debugging-port=0", f"--user-data-dir={self._profile.name}",
                f"--window-size={size[0]},{size[1]}", *GL_FLAGS, url]  # fmt: skip
        # its own process group: close() stops the renderer and GPU helpers with it
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     start_new_session=True)  # fmt: skip
        port = self._devtools_port(timeout=30.0)
        self._ws = websocket.create_connection(self._page_socket(port, timeout=30.0), timeout=60)
        self._next_id = 0

    def _devtools_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        seen = b""
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            seen += line
            found = re.search(rb"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if found:
                return int(found.group(1))
            if not line and self.proc.poll() is not None:
                break
        self.close()
        raise RuntimeError(f"chromium did not open its DevTools port: {seen[-2000:]!r}")

    @staticmethod
    def _page_socket(port: int, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.2)
        raise RuntimeError("chromium opened no page")

    def call(self, method: str, **params) -> dict:
        """One DevTools command; returns its result (events in between are skipped)."""
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._ws.recv())
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def screenshot(self) -> bytes:
        """PNG bytes of the window as it is now."""
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def save(self, path: Path) -> bytes:
        png = self.screenshot()
        Path(path).write_bytes(png)
        return png

    def close(self) -> None:
        try:
            if getattr(self, "_ws", None) is not None:
                self._ws.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            with contextlib.suppress(ProcessLookupError):  # helpers that outlived it
                os.killpg(self.proc.pid, signal.SIGKILL)
            self._profile.cleanup()

    def __enter__(self) -> HeadlessChromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def pixels(png: bytes) -> np.ndarray:
    """(H, W, 3) int16 RGB of a PNG."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def view3d(img: np.ndarray) -> np.ndarray:
    """The 3D view: the left part of the page under the top bar (the blueprint's 3:2 split)."""
    h, w, _ = img.shape
    return img[int(0.1 * h) : int(0.9 * h), int(0.02 * w) : int(0.58 * w)]


def arm_pixels(region: np.ndarray) -> int:
    """Pixels of the URDF's 'printed' material (rgba 1.0 0.82 0.12), shaded or not."""
    r, g, b = region[..., 0], region[..., 1], region[..., 2]
    return int(np.sum((r > 150) & (g > 0.6 * r) & (g < 0.95 * r) & (b < 0.5 * r)))


def changed(a: np.ndarray, b: np.ndarray) -> int:
    """Pixels that differ by more than 40 in some channel."""
    return int(np.sum(np.abs(a - b).max(axis=-1) > 40))

"""Every node boundary total: an exception escaping a subscription, timer or service callback
is caught, counted per cause on /diagnostics, logged once per cause (then throttled, the
message truncated), and the node keeps running on what it had (issue 16, part 2).

`guard_node(node)` wraps every callback a built node has; `run_node` calls it for every mbrl
node, so no node can be ended by one crafted message.
"""

from __future__ import annotations

import collections
import inspect
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from mbrl.ros import topics

MAX_TEXT = 300  # characters of an exception message kept in logs and /diagnostics
LOG_EVERY = 10.0  # s between log lines of one cause after its first
REPORT_PERIOD = 1.0  # s between /diagnostics reports once anything was caught


def truncate(text: str, limit: int = MAX_TEXT) -> str:
    """`text` cut to `limit` characters, saying how much was cut (a crafted payload can be
    megabytes)."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more chars)"


class CallbackGuard:
    """Counts and logs the exceptions of one node's callbacks.

    Args:
        log_error: called with one log line (the node logger's error).
        now: monotonic clock, s.
    """

    def __init__(self, log_error: Callable[[str], None], now: Callable[[], float] = time.monotonic):
        self._log, self._now = log_error, now
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.last: dict[str, str] = {}  # cause -> the latest (truncated) message
        self._logged: dict[str, float] = {}
        self.new_cause = threading.Event()  # set when a cause is seen the first time

    def caught(self, where: str, exc: BaseException) -> None:
        """Record exception `exc` raised by callback `where` (e.g. "subscription /mbrl/model")."""
        cause = f"{where}: {type(exc).__name__}"
        text = truncate(f"{exc}")
        with self._lock:
            self.counts[cause] += 1
            count = self.counts[cause]
            self.last[cause] = text
            first = cause not in self._logged
            due = first or self._now() - self._logged[cause] >= LOG_EVERY
            if due:
                self._logged[cause] = self._now()
        if first:
            self.new_cause.set()
            frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
            at = f" at {frame[0].filename}:{frame[0].lineno}" if frame else ""
            self._log(f"{cause}{at}: {text}; the node keeps running (counted on /diagnostics)")
        elif due:
            self._log(f"{cause} again ({count} times so far): {text}")

    def values(self) -> dict[str, str]:
        """/diagnostics key/values: the total, and per cause its count and latest message."""
        with self._lock:
            out = {"callback_errors": str(sum(self.counts.values()))}
            for cause, count in self.counts.items():
                out[f"error[{cause}]"] = f"{count}x: {self.last[cause]}"
        return out

    def wrap(self, where: str, callback: Callable, default: Callable[..., Any] | None = None):
        """`callback` that records instead of raising; returns `default(*args)` (or None)
        when it raised. Coroutine callbacks stay coroutines; the arity is kept (rclpy
        inspects it)."""
        if getattr(callback, "_mbrl_guarded", False):
            return callback
        guard = self

        def fallback(args):
            return default(*args) if default is not None else None

        if inspect.iscoroutinefunction(callback):

            async def guarded_async(*args):
                try:
                    return await callback(*args)
                except Exception as exc:  # noqa: BLE001 - the point: nothing escapes
                    guard.caught(where, exc)
                    return fallback(args)

            wrapped = guarded_async
        else:
            try:
                arity = len(inspect.signature(callback).parameters)
            except (TypeError, ValueError):
                arity = -1

            def call(args):
                try:
                    return callback(*args)
                except Exception as exc:  # noqa: BLE001 - the point: nothing escapes
                    guard.caught(where, exc)
                    return fallback(args)

            if arity == 0:
                wrapped = lambda: call(())  # noqa: E731
            elif arity == 1:
                wrapped = lambda a: call((a,))  # noqa: E731
            elif arity == 2:
                wrapped = lambda a, b: call((a, b))  # noqa: E731
            else:
                wrapped = lambda *a: call(a)  # noqa: E731
        wrapped._mbrl_guarded = True  # type: ignore[attr-defined]
        return wrapped


def _failed_response(request: Any, response: Any) -> Any:
    """A service's answer when its callback raised: success false where the type has it."""
    if hasattr(response, "success"):
        response.success = False
    if hasattr(response, "message"):
        response.message = "internal error (see the node's log and /diagnostics)"
    return response


def guard_node(node: Node, status_name: str | None = None) -> CallbackGuard:
    """Wrap every subscription, timer and service callback of `node` (built, not spinning
    yet) and report what was caught on /diagnostics as status `status_name` (default
    "mbrl/<node name>/callbacks"), every REPORT_PERIOD s once anything was caught."""
    guard = CallbackGuard(node.get_logger().error)
    for sub in node.subscriptions:
        sub.callback = guard.wrap(f"subscription {sub.topic_name}", sub.callback)
    for timer in node.timers:
        timer.callback = guard.wrap("timer", timer.callback)
    for srv in node.services:
        srv.callback = guard.wrap(f"service {srv.srv_name}", srv.callback, _failed_response)
    name = status_name or f"mbrl/{node.get_name()}/callbacks"
    pub = node.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)

    def report() -> None:
        if not guard.counts:
            return
        status = DiagnosticStatus(name=name, hardware_id="mbrl", level=DiagnosticStatus.WARN)
        status.message = f"{sum(guard.counts.values())} callback exception(s) caught"
        status.values = [KeyValue(key=k, value=v) for k, v in guard.values().items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = node.get_clock().now().to_msg()
        pub.publish(array)

    steady = Clock(clock_type=ClockType.STEADY_TIME)
    node.create_timer(REPORT_PERIOD, report, clock=steady)
    return guard

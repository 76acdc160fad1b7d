"""The shared `main()` of every mbrl node: init, build, spin, and shut down in try/finally.

A node that cannot be built from its parameters exits with code 2 and a message naming the
parameter, which the embedded runner and launch report as a configuration error; so does a
parameter file that does not parse, or a key or node block nobody declares (a misspelling:
mbrl.ros.strict_params). Once built,
every callback is guarded (mbrl.ros.boundary): an exception is counted and logged, never fatal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import rclpy
import rclpy.executors
from rclpy.exceptions import ParameterException
from rclpy.executors import (
    ConditionReachedException,
    Executor,
    ExternalShutdownException,
    ShutdownException,
    SingleThreadedExecutor,
    TimeoutException,
)
from rclpy.node import Node

from mbrl.config import ConfigError
from mbrl.ros.boundary import guard_node
from mbrl.ros.strict_params import (
    DECLARING_NODES,
    check_node_parameters,
    check_parameter_files,
    declared_by,
)

# What building a node from bad parameters raises: our config checks, rclpy's declaration
# checks (ranges, types), and files named by parameters that cannot be read.
CONFIG_ERRORS = (ConfigError, ParameterException, ValueError, OSError)


class MultiThreadedExecutor(rclpy.executors.MultiThreadedExecutor):
    """rclpy's MultiThreadedExecutor without its busy loop.

    In rclpy 7.1 (Jazzy wheels) a callback handed to the thread pool but not yet started is
    yielded again by every wait, so `spin()` re-submits it in a tight loop that holds the GIL
    and starves the worker threads (ros2/rclpy#1452, fixed upstream in #1547). Measured here:
    the spinning thread at 100 % of a core and the controller's planner iterations 5-20x
    slower. This subclass remembers which callbacks wait in the pool's queue and, when the wait
    hands one back, yields the GIL briefly instead of submitting it again.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._queued: set[int] = set()  # ids of callbacks submitted but not yet started

    def _start(self, handler) -> None:
        self._queued.discard(id(handler))
        handler()

    def _spin_once_impl(self, timeout_sec=None, wait_condition=lambda: False) -> None:
        try:
            handler, _, _ = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
        except (
            ExternalShutdownException,
            ShutdownException,
            TimeoutException,
            ConditionReachedException,
        ):
            return
        if id(handler) in self._queued:
            # Still in the pool's queue: let a worker take the GIL and start it. (A coroutine
            # callback that paused on a future is not queued and is submitted again to resume.)
            time.sleep(0.0005)
            return
        self._queued.add(id(handler))
        self._executor.submit(self._start, handler)
        self._futures.append(handler)
        for future in self._futures[:]:
            if future.done():
                self._futures.remove(future)
                future.result()  # raise any exception from the callback


def run_node(
    name: str,
    factory: Callable[[], Node],
    args: list[str] | None = None,
    executor: Callable[[], Executor] = SingleThreadedExecutor,
) -> int:
    """Run the node `factory()` until shutdown; returns the process exit code.

    `executor` builds the executor after rclpy.init (default SingleThreadedExecutor); nodes
    with parallel callback groups pass e.g. `lambda: MultiThreadedExecutor(num_threads=3)`.
    The node's `close()` (if it has one) releases its resources, else `destroy_node()`.
    """
    argv = list(sys.argv if args is None else args)
    try:  # before rclpy.init, which fails on a bad file with a traceback
        check_parameter_files(argv)
        if name in DECLARING_NODES:  # (fast: before the node is built and warmed up)
            check_node_parameters(name, declared_by(name), argv)
    except ConfigError as exc:
        print(f"{name}: invalid parameters: {exc}", file=sys.stderr)
        return 2
    rclpy.init(args=args)
    node: Node | None = None
    spinner = executor()
    try:
        try:
            node = factory()
            # Strict: what rclpy would silently ignore (a misspelt key or node block).
            check_node_parameters(node.get_name(), node.list_parameters([], 0).names, argv)
        except CONFIG_ERRORS as exc:
            print(f"{name}: invalid parameters: {exc}", file=sys.stderr)
            return 2
        guard_node(node)  # no exception escapes a callback (mbrl.ros.boundary)
        spinner.add_node(node)
        spinner.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        spinner.shutdown(timeout_sec=2.0)  # let running callbacks finish before destroying
        if node is not None:
            getattr(node, "close", node.destroy_node)()
        rclpy.try_shutdown()
    return 0

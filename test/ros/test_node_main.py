"""mbrl.ros.node_main: the shared node main and the executor without rclpy 7.1's busy loop."""

from __future__ import annotations

import collections
import threading
import time

import pytest
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from std_msgs.msg import String

from mbrl.ros.node_main import MultiThreadedExecutor

pytestmark = pytest.mark.ros


def _wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        time.sleep(0.01)
    return predicate()


def test_queued_callback_is_submitted_once_and_every_message_arrives():
    """While the only worker is busy, a ready callback waits in the pool's queue. rclpy 7.1's
    executor hands it to the pool again on every wait (a busy loop that holds the GIL); ours
    submits each callback once, and nothing is lost or left waiting."""
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(num_threads=1, context=context)
    node = Node("executor_probe", context=context)
    talker = Node("executor_talker", context=context)
    group = ReentrantCallbackGroup()
    release = threading.Event()
    received: list[str] = []
    node.create_subscription(String, "/probe_block", lambda m: release.wait(5.0), 10,
                             callback_group=group)  # fmt: skip
    node.create_subscription(String, "/probe_data", lambda m: received.append(m.data), 10,
                             callback_group=group)  # fmt: skip
    block_pub = talker.create_publisher(String, "/probe_block", 10)
    data_pub = talker.create_publisher(String, "/probe_data", 10)

    submitted: list = []  # strong references, so no two handlers share an id()
    submit = executor._executor.submit

    def counting_submit(fn, *args):
        submitted.append(args[0] if args else fn)
        return submit(fn, *args)

    executor._executor.submit = counting_submit
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert _wait_for(lambda: block_pub.get_subscription_count() == 1)
        assert _wait_for(lambda: data_pub.get_subscription_count() == 1)
        block_pub.publish(String(data="block"))  # occupies the only worker
        time.sleep(0.2)
        for i in range(5):
            data_pub.publish(String(data=str(i)))
        time.sleep(0.3)  # the data callback now waits in the queue behind the blocked one
        release.set()
        assert _wait_for(lambda: len(received) == 5), received
        assert received == [str(i) for i in range(5)]
        counts = collections.Counter(id(h) for h in submitted)
        assert len(submitted) >= 6 and max(counts.values()) == 1, counts
    finally:
        release.set()
        executor.shutdown(timeout_sec=2.0)
        spinner.join(timeout=5.0)
        node.destroy_node()
        talker.destroy_node()
        rclpy.try_shutdown(context=context)

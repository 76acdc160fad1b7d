"""No unbounded wait, no silent gap (issue 16, part 5): a recorded episode missing a stream
is rejected by the collector (never published) and reported; a service call whose answer is
lost costs one try, not the whole timeout; an episode starts only when the DDS graph shows
every node matched what it needs."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from test_collector import Driver, _start

from mbrl.data.episodes import read_episode
from mbrl.ros.status import decode as decode_status

pytestmark = pytest.mark.ros


def test_episode_without_joint_states_is_rejected_not_published(ros_context, tmp_path) -> None:
    """The issue's episode of 101 commands and 0 joint states: not published (the fit would
    fail with "no transitions"); counted in the collector's status for the experiment."""
    runner, output = _start(tmp_path)
    driver = Driver("test_gap_driver")
    statuses: list = []
    from std_msgs.msg import String

    from mbrl.ros import topics

    driver.node.create_subscription(
        String, topics.STATUS, lambda m: statuses.append(decode_status(m)), topics.STATUS_QOS
    )
    try:
        driver.wait_for_collector()
        driver.event("start", 7)
        assert driver.spin_until(lambda: "episode 7 started" in output.text()), output.text()
        for _ in range(20):  # commands only: the joint states never arrive
            driver.commands.publish(driver.commands.msg_type(data=list(np.zeros(5))))
            rclpy.spin_once(driver.node, timeout_sec=0.005)
        driver.event("end", 7)
        assert driver.spin_until(
            lambda: any(k == "collector" and s.rejected == 1 for k, s in statuses)
        ), output.text()[-2000:]
        # (the log line is forwarded by the runner's reader thread, maybe after the status)
        rejected = "episode 7 rejected, not published: no joint states recorded"
        assert driver.spin_until(lambda: rejected in output.text()), output.text()[-2000:]
        driver.spin_until(lambda: False, timeout=1.0)
        assert not driver.episodes  # never published to the fitter
        assert (tmp_path / "c" / "episodes" / "episode_000007.mcap.rejected").exists()
        runner.check()
    finally:
        driver.node.destroy_node()
        runner.shutdown()


def test_episode_with_a_gap_in_its_commands_is_rejected_not_published(ros_context, tmp_path):
    """A soak of the demo's schedule once recorded 1 of an explore episode's 50 commands
    (the experiment, on the same topic, saw all 50) and the fit then failed with "no
    transitions". The end event now counts the commands its sender saw, and the collector
    rejects an episode that recorded fewer: the experiment runs it again."""
    runner, output = _start(tmp_path, end_timeout=1.0)
    driver = Driver("test_gap_commands_driver")
    try:
        driver.wait_for_collector()
        driver.event("start", 3)
        assert driver.spin_until(lambda: "episode 3 started" in output.text()), output.text()
        q = np.zeros((10, 5))
        driver.ticks(q, q)  # 10 states and 10 commands recorded...
        driver.event("end", 3, commands=12)  # ...of the 12 the experiment saw go out
        rejected = "episode 3 rejected, not published: no complete commands (10 of the 12 sent)"
        assert driver.spin_until(lambda: rejected in output.text()), output.text()[-2000:]
        assert not driver.episodes
        assert (tmp_path / "c" / "episodes" / "episode_000003.mcap.rejected").exists()
        # an end whose count was met is published at once, past end_grace; a resent start
        # of the open episode (its sender had not seen the status yet) changes nothing
        driver.event("start", 4)
        assert driver.spin_until(lambda: "episode 4 started" in output.text()), output.text()
        driver.ticks(q[:4], q[:4])
        driver.event("start", 4)
        driver.ticks(q[4:], q[4:])
        driver.event("end", 4, commands=10)
        assert driver.spin_until(lambda: bool(driver.episodes)), output.text()[-2000:]
        assert "'end' of episode" not in output.text()  # resent ends are no news
        assert output.text().count("episode 4 started") == 1, output.text()[-2000:]
        assert not (tmp_path / "c" / "episodes" / "episode_000004_1.mcap").exists()
        assert len(read_episode(tmp_path / "c" / "episodes" / "episode_000004.mcap").commands) == 10
        runner.check()
    finally:
        driver.node.destroy_node()
        runner.shutdown()


def driver_sees(node, topic: str, publishers: int, timeout: float = 10.0) -> bool:
    """Wait until `node`'s graph shows `publishers` publishers of `topic`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len(node.get_publishers_info_by_topic(topic)) >= publishers:
            return True
        time.sleep(0.05)
    return False


def test_a_lost_answer_costs_one_try_and_the_graph_check_names_what_is_missing(ros_context):
    from mbrl.ros.experiment import ExperimentNode

    server = rclpy.create_node("slow_service_under_test")
    calls: list[float] = []

    def answer(request, response):
        calls.append(time.monotonic())
        if len(calls) == 1:
            time.sleep(2.5)  # the first answer comes too late: as if lost
        response.success, response.message = True, f"call {len(calls)}"
        return response

    server.create_service(Trigger, "/slow/fit", answer, callback_group=ReentrantCallbackGroup())
    rclpy_args = ["--ros-args", "-p", "call_timeout:=0.5", "-p", "call_tries:=3"]
    context_node = ExperimentNode(cli_args=rclpy_args)
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(server)
    executor.add_node(context_node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        client = context_node.create_client(Trigger, "/slow/fit")
        start = time.monotonic()
        response = context_node._call(client, Trigger.Request(), "fit")
        assert response.success and response.message == "call 2"
        assert time.monotonic() - start < 2.4  # did not wait for the lost first answer
        # nothing else runs in this test's domain: every need is named
        missing = context_node._graph_missing()
        assert "collector subscribed to /joint_states" in missing
        assert "mpc_controller publishing /forward_position_controller/commands" in missing
        assert "sim publishing /joint_states" in missing
        # the collector's own view counts too: every reliable publisher the graph shows
        # must be matched by its subscriptions (a best-effort one cannot be)
        server.create_publisher(JointState, "/joint_states", 10)
        server.create_publisher(JointState, "/joint_states", qos_profile_sensor_data)
        assert driver_sees(context_node, "/joint_states", 2)
        missing = context_node._graph_missing()
        assert "collector matched 0 of the 1 publishers of /joint_states" in missing, missing
    finally:
        executor.shutdown(timeout_sec=3.0)
        context_node.destroy_node()
        server.destroy_node()

"""A seeded hostile publisher for the graph's input topics (issue 16): crafted joint states,
goals, cube poses, episode events, episodes and models, sent over real DDS from its own node
and thread. Command topics are left alone: what is checked is what the controller sends.
"""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import rclpy
from geometry_msgs.msg import PointStamped, PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import String, UInt8MultiArray

from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.ros import topics
from mbrl.ros.transport import encode_episode_msg, encode_model_msg

ABSURD = [math.nan, math.inf, -math.inf, 1e300, -1e300, 1e9, -7.0, 0.0]


class Fuzzer:
    """Publishes `count` crafted messages at about `rate_hz` from a thread (seeded by `seed`).

    Args:
        joints: the controlled joints (crafted states name them, a subset, or others).
        good_q: (nj,) a plausible pose to mix crafted values into.
        layout: the controller's model layout (so some crafted models pass the layout check
            and reach the file / gate checks).
        model_dir: where the fuzzer writes the model files it sends.
    """

    def __init__(self, joints, good_q, layout: dict, model_dir, seed: int) -> None:
        self.node = rclpy.create_node(f"fuzzer_{seed}")
        self.joints, self.good_q, self.layout = list(joints), np.asarray(good_q, float), layout
        self.rng = np.random.default_rng(seed)
        qos = {
            "states": (JointState, topics.JOINT_STATES, 10),
            "goal": (PointStamped, topics.GOAL, topics.GOAL_QOS),
            "cube": (PoseStamped, topics.OBJECT_POSE, topics.OBJECT_QOS),
            "control": (String, topics.EPISODE_CONTROL, topics.EPISODE_CONTROL_QOS),
            "episodes": (UInt8MultiArray, topics.EPISODES, topics.EPISODES_QOS),
            "model": (UInt8MultiArray, topics.MODEL, topics.MODEL_QOS),
            "status": (String, topics.STATUS, topics.STATUS_QOS),
        }
        self.pubs = {k: self.node.create_publisher(t, n, q) for k, (t, n, q) in qos.items()}
        self.models = self._model_files(model_dir)
        self.sent: dict[str, int] = {k: 0 for k in qos}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _model_files(self, directory) -> list[bytes]:
        directory.mkdir(parents=True, exist_ok=True)
        out = []
        for k, edit in enumerate(("ok", "nan")):
            model = ProbabilisticEnsemble(5, 5, ensemble_size=2, hidden=(8,), seed=k)
            if edit == "nan":
                import torch

                with torch.no_grad():
                    next(iter(model.net.parameters())).data[0, 0, 0] = math.nan
            path = directory / f"fuzz{k}.npz"
            model.save(path)
            out.append(path.read_bytes())
        return out

    # -- crafted messages -----------------------------------------------------------------
    def _state(self) -> JointState:
        r = self.rng
        kind = int(r.integers(9))
        names = list(self.joints)
        q = self.good_q.copy()
        if kind == 0:  # absurd values in some joints
            for j in r.choice(len(q), size=int(r.integers(1, len(q) + 1)), replace=False):
                q[j] = r.choice(ABSURD)
        elif kind == 1:  # a jump
            q[int(r.integers(len(q)))] += r.choice([-2.0, 2.0, 0.5, -0.7])
        elif kind == 2:  # a subset, or another device's joints
            keep = sorted(r.choice(len(q), size=int(r.integers(0, len(q))), replace=False))
            names, q = [names[j] for j in keep] + ["gripper"], np.append(q[keep], 0.1)
        elif kind == 3:  # names and positions disagree
            q = q[: int(r.integers(len(q)))]
        elif kind == 4:  # duplicated names
            names = names[:-1] + names[:1]
        elif kind == 5:  # a huge message
            names = [f"j{k}" for k in range(5000)] + names
            q = np.concatenate([np.zeros(5000), q])
        elif kind == 6:  # plausible noise (indistinguishable from a real arm)
            q = q + r.normal(0, 0.005, len(q))
        elif kind == 7:  # misnamed joints
            names = [n.upper() for n in names]
        msg = JointState(name=names, position=[float(v) for v in q])
        if kind != 8 and r.random() < 0.5:
            msg.velocity = [float(r.choice(ABSURD)) for _ in names]
        msg.header.stamp.sec = int(r.integers(-(2**31), 2**31 - 1))
        msg.header.stamp.nanosec = int(r.integers(0, 2**32 - 1))
        return msg

    def _goal(self) -> PointStamped:
        msg = PointStamped()
        p = self.rng.choice(ABSURD, size=3) if self.rng.random() < 0.6 else self.rng.normal(0, 5, 3)
        msg.point.x, msg.point.y, msg.point.z = (float(v) for v in p)
        return msg

    def _cube(self) -> PoseStamped:
        msg = PoseStamped()
        v = self.rng.choice(ABSURD, size=7)
        pos, ori = msg.pose.position, msg.pose.orientation
        pos.x, pos.y, pos.z, ori.x, ori.y, ori.z, ori.w = (float(x) for x in v)
        return msg

    def _control(self) -> String:
        r = self.rng
        choices = [
            '{"event": "start", "episode_id": Infinity}',
            '{"event": "end", "episode_id": NaN}',
            json.dumps({"event": "start", "episode_id": int(r.integers(0, 10**6))}),
            json.dumps({"event": "end", "episode_id": int(r.integers(0, 10**6))}),
            json.dumps({"event": "start", "episode_id": -5, "task": ["x"] * 100}),
            "[" * int(r.integers(1, 20000)),
            "x" * int(r.integers(0, 100000)),
            json.dumps([1, 2, 3]),
            json.dumps({"event": None, "episode_id": "7"}),
        ]
        return String(data=choices[int(r.integers(len(choices)))])

    def _bytes_msg(self, topic: str) -> UInt8MultiArray:
        r = self.rng
        data = self.models[int(r.integers(len(self.models)))]
        kind = int(r.integers(7))
        if topic == "episodes":
            msg = encode_episode_msg(bytes(r.integers(0, 256, 300, dtype=np.uint8)), 3, 10, True)
        else:
            metrics = {"num_transitions": int(r.choice([3, 10**6]))}
            msg = encode_model_msg(data, int(r.integers(1, 10**6)), "ensemble", 5, 5, metrics,
                                   layout=self.layout)  # fmt: skip
        if kind == 0:  # crafted header fields
            header = json.loads(msg.layout.dim[0].label)
            field = "version" if topic == "model" else "episode_id"
            header[field] = [math.inf, math.nan, 1e300, -1, 2.5][int(r.integers(5))]
            header["layout"] = [None, [1, 2], "x", {"joint_names": 7}][int(r.integers(4))]
            msg.layout.dim[0].label = json.dumps(header)
        elif kind == 1:  # flipped byte (hash mismatch)
            data = bytearray(msg.data)
            data[int(r.integers(len(data)))] ^= 0xFF
            msg.data = bytes(data)
        elif kind == 2:  # truncated
            msg.data = bytes(msg.data)[: int(r.integers(len(msg.data)))]
        elif kind == 3:  # no header
            msg.layout.dim = []
        elif kind == 4:  # garbage with a correct hash
            junk = bytes(r.integers(0, 256, 500, dtype=np.uint8))
            metrics = {"num_transitions": 10**6}
            msg = encode_model_msg(junk, 9, "ensemble", 5, 5, metrics, layout=self.layout)
        return msg

    def _status(self) -> String:
        return String(
            data=self.rng.choice(['{"node": "collector", "published": 1e999}', "{", "[]"])
        )

    def one(self) -> None:
        """Publish one crafted message on a topic drawn by weight."""
        topics_, weights = zip(
            *[("states", 50), ("goal", 8), ("cube", 8), ("control", 10), ("model", 6),
              ("episodes", 4), ("status", 4)], strict=True,
        )  # fmt: skip
        p = np.asarray(weights, float) / sum(weights)
        topic = topics_[int(self.rng.choice(len(topics_), p=p))]
        make = {"states": self._state, "goal": self._goal, "cube": self._cube,
                "control": self._control, "status": self._status}  # fmt: skip
        msg = make[topic]() if topic in make else self._bytes_msg(topic)
        self.pubs[topic].publish(msg)
        self.sent[topic] += 1

    def start(self, count: int, rate_hz: float) -> None:
        def run() -> None:
            period = 1.0 / rate_hz
            next_time = time.monotonic()
            for _ in range(count):
                if self._stop.is_set():
                    return
                self.one()
                next_time += period
                self._stop.wait(max(0.0, next_time - time.monotonic()))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def total(self) -> int:
        return sum(self.sent.values())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.node.destroy_node()

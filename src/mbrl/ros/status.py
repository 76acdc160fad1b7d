"""The typed status each node publishes on /mbrl/status (latched), that the experiment
node's schedule waits on: the fields are defined here once, as dataclasses, never as string
keys parsed out of /diagnostics (a renamed key there would hang a schedule silently).

On the wire a std_msgs/String holding {"node": <kind>, **fields} as JSON; `decode` checks
the kind and every field's type, and raises StatusError naming what was wrong.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from std_msgs.msg import String


class StatusError(ValueError):
    """A /mbrl/status message is not JSON, names an unknown node kind, or has a bad field."""


@dataclasses.dataclass(frozen=True)
class CollectorStatus:
    """recording: an episode file is open; episode_id: the open (or last) episode, -1 none;
    published: finished episodes published on /mbrl/episodes since start; rejected:
    finished episodes not published because a stream was missing (no joint states or no
    commands), since start; state_publishers / command_publishers: the publishers its
    /joint_states and command subscriptions have matched (its own DDS view: the experiment
    compares them with the graph it sees before an episode starts)."""

    recording: bool = False
    episode_id: int = -1
    published: int = 0
    rejected: int = 0
    state_publishers: int = 0
    command_publishers: int = 0


@dataclasses.dataclass(frozen=True)
class FitterStatus:
    """episodes: episodes held; model_version: the latest published model (0 none);
    fitting: a fit is running or queued; last_error: the latest error ("" none);
    failed_fits: fits that ended in an error since the node started (a waiter compares it
    with the count before its request)."""

    episodes: int = 0
    model_version: int = 0
    fitting: bool = False
    last_error: str = ""
    failed_fits: int = 0


@dataclasses.dataclass(frozen=True)
class ControllerStatus:
    """model_version: the model the actor runs (-1 none, 0 the known model); mode;
    enabled; ticks: commands sent since start; refused_version: the newest model version the
    model gate refused (0 none): a waiter for that version stops waiting."""

    model_version: int = -1
    mode: str = ""
    enabled: bool = False
    ticks: int = 0
    refused_version: int = 0


KINDS: dict[str, type] = {
    "collector": CollectorStatus,
    "model_fitter": FitterStatus,
    "mpc_controller": ControllerStatus,
}


def encode(kind: str, status: Any) -> String:
    """The /mbrl/status message of node kind `kind` (a key of KINDS)."""
    if KINDS.get(kind) is not type(status):
        raise StatusError(f"status of kind {kind!r} must be a {KINDS.get(kind)}, got {status!r}")
    return String(data=json.dumps({"node": kind, **dataclasses.asdict(status)}))


def decode(msg: String) -> tuple[str, Any]:
    """(kind, status dataclass) from a /mbrl/status message; StatusError names the problem."""
    try:
        body = json.loads(msg.data)
        kind = body.pop("node")
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as exc:
        raise StatusError(f"/mbrl/status message {msg.data[:200]!r} unreadable: {exc}") from exc
    if kind not in KINDS:
        raise StatusError(f"/mbrl/status: unknown node kind {kind!r}; known {sorted(KINDS)}")
    cls = KINDS[kind]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if set(body) != set(fields):
        raise StatusError(f"/mbrl/status {kind}: fields {sorted(body)}, expected {sorted(fields)}")
    for name, value in body.items():
        expected = {"bool": bool, "int": int, "str": str}[str(fields[name].type)]
        if type(value) is not expected:
            raise StatusError(
                f"/mbrl/status {kind}.{name} = {value!r} is not a {expected.__name__}"
            )
    return kind, cls(**body)

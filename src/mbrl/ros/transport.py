"""Files as ROS messages: bytes <-> std_msgs/UInt8MultiArray with a JSON header and a sha256.

Episodes (/mbrl/episodes) and models (/mbrl/model) travel between machines as the bytes of
their files; `layout.dim[0].label` carries a JSON header whose "sha256" the receiver checks
before it trusts a single byte. Every decoder raises TransportError naming the topic, the
episode id / model version when known, and what was wrong. Also the QoS profiles of mbrl's
own topics and the /diagnostics status builder every mbrl node uses.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import MultiArrayDimension, UInt8MultiArray

from mbrl.ros import topics

# Aliases of mbrl.ros.topics (the one definition), under the names the nodes use.
EPISODES_TOPIC, MODEL_TOPIC = topics.EPISODES, topics.MODEL
EPISODE_CONTROL_TOPIC, DIAGNOSTICS_TOPIC = topics.EPISODE_CONTROL, topics.DIAGNOSTICS
EPISODES_QOS, MODEL_QOS = topics.EPISODES_QOS, topics.MODEL_QOS
EPISODE_CONTROL_QOS = topics.EPISODE_CONTROL_QOS

from mbrl.ros.node_configs import MODEL_KINDS  # noqa: E402 - the kinds a fitter publishes


class TransportError(ValueError):
    """A file message is malformed, truncated or fails its hash; the message says which."""


MAX_HEADER_INT = 2**53  # JSON numbers beyond this are not exact integers


def header_int(
    header: dict[str, Any], key: str, what: str, low: int = 0, high: int = MAX_HEADER_INT
) -> int:
    """header[key] as an int in [low, high]; TransportError names the field otherwise.

    JSON allows Infinity, NaN, 1e300, true and "7": none of them is an episode id or a
    version, and int() of some of them raises OverflowError, which no caller expects.
    """
    value = header.get(key)
    ok = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        ok, value = True, int(value)
    if not ok or not low <= value <= high:
        raise TransportError(
            f"{what}: header field {key!r} = {truncate_repr(value)}; expected an integer in "
            f"[{low}, {high}]"
        )
    return int(value)


def truncate_repr(value: Any, limit: int = 120) -> str:
    """repr(value) cut to `limit` characters (a crafted header can be megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more chars)"


def sha256_hex(data: bytes) -> str:
    """Hex sha256 digest of `data`."""
    return hashlib.sha256(data).hexdigest()


def encode_bytes_msg(data: bytes, header: dict[str, Any]) -> UInt8MultiArray:
    """A UInt8MultiArray holding `data`, with `header` + its sha256 as JSON in dim[0].label.

    Args:
        data: the file's bytes.
        header: JSON-serialisable fields; "sha256" is added (overwritten) here.
    """
    header = dict(header, sha256=sha256_hex(data))
    msg = UInt8MultiArray()
    msg.layout.dim = [
        MultiArrayDimension(label=json.dumps(header, sort_keys=True), size=len(data), stride=1)
    ]
    # rclpy stores uint8[] as array.array('B'); bytes convert without a Python-level loop
    msg.data = bytes(data)
    return msg


def decode_bytes_msg(msg: UInt8MultiArray, what: str = "message") -> tuple[dict[str, Any], bytes]:
    """(header, data) of a message from `encode_bytes_msg`, hash-checked.

    Args:
        what: names the message in errors (e.g. "/mbrl/model").
    Raises:
        TransportError: no layout/header, header not a JSON object, size mismatch
            (truncation) or a sha256 that differs from the data's.
    """
    if not msg.layout.dim:
        raise TransportError(f"{what}: no layout.dim[0]; expected a JSON header in its label")
    try:
        header = json.loads(msg.layout.dim[0].label)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise TransportError(f"{what}: header label is not JSON ({exc})") from exc
    if not isinstance(header, dict) or not isinstance(header.get("sha256"), str):
        raise TransportError(f"{what}: header {truncate_repr(header)} lacks a 'sha256' string")
    data = bytes(msg.data)
    declared = msg.layout.dim[0].size
    if declared != len(data):
        raise TransportError(
            f"{what}: {len(data)} bytes but the layout declares {declared} (truncated?)"
        )
    digest = sha256_hex(data)
    if digest != header["sha256"]:
        raise TransportError(
            f"{what}: sha256 mismatch: data hashes to {digest[:12]}..., header says "
            f"{header['sha256'][:12]}... (corrupt in transit or tampered)"
        )
    return header, data


# ---- episodes ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class EpisodePayload:
    """A finished episode received on /mbrl/episodes.

    Attributes:
        episode_id: the id from /mbrl/episode_control.
        sha256: hex digest of `data` (checked).
        num_messages: messages in the MCAP file.
        complete: False when the recording ended without an "end" event (e.g. shutdown).
        data: the MCAP file's bytes.
    """

    episode_id: int
    sha256: str
    num_messages: int
    complete: bool
    data: bytes


def encode_episode_msg(
    data: bytes, episode_id: int, num_messages: int, complete: bool
) -> UInt8MultiArray:
    """The /mbrl/episodes message for one finished episode's MCAP bytes."""
    header = {
        "episode_id": int(episode_id),
        "num_messages": int(num_messages),
        "complete": bool(complete),
    }
    return encode_bytes_msg(data, header)


def decode_episode_msg(msg: UInt8MultiArray) -> EpisodePayload:
    """Verify and unpack an /mbrl/episodes message; TransportError names the episode."""
    what = EPISODES_TOPIC
    if msg.layout.dim:
        try:  # name the episode in every later error when the header says which it is
            label = json.loads(msg.layout.dim[0].label)["episode_id"]
            what = f"{EPISODES_TOPIC} episode {truncate_repr(label, 40)}"
        except (json.JSONDecodeError, KeyError, TypeError, IndexError, RecursionError):
            pass
    header, data = decode_bytes_msg(msg, what)
    complete = header.get("complete")
    if not isinstance(complete, bool):
        raise TransportError(
            f"{what}: header field 'complete' = {truncate_repr(complete)}; expected true or false"
        )
    return EpisodePayload(
        episode_id=header_int(header, "episode_id", what),
        sha256=header["sha256"],
        num_messages=header_int(header, "num_messages", what),
        complete=complete,
        data=data,
    )


# ---- models --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ModelPayload:
    """A model received on /mbrl/model.

    Attributes:
        version: increasing model version of the publishing fitter (1, 2, ...).
        sha256: hex digest of `data` (checked).
        kind: an artifact kind (mbrl.agents.registry.ARTIFACT_LOADERS): "ensemble", "local_lg",
            "policy", ...
        dx, du: state and action dimensions.
        created: ISO-8601 UTC time of the fit.
        metrics: fit metrics (e.g. holdout_mse, num_transitions, fit_seconds).
        data: the model file's bytes (mbrl.models.io format).
        layout: what x and u mean (optional header field "layout"; see
            mbrl.data.episode_transitions.TransitionLayout.to_dict): joint_names, state
            ("q" or "q_qd"), action ("increment", "relative" or "position"), max_increment.
    """

    version: int
    sha256: str
    kind: str
    dx: int
    du: int
    created: str
    metrics: dict[str, Any]
    data: bytes
    layout: dict[str, Any] = dataclasses.field(default_factory=dict)


def _json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics with non-finite floats as None: JSON has no NaN, and a receiver must parse it."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[str(key)] = value
    return out


def encode_model_msg(
    data: bytes,
    version: int,
    kind: str,
    dx: int,
    du: int,
    metrics: dict[str, Any] | None = None,
    created: str | None = None,
    layout: dict[str, Any] | None = None,
) -> UInt8MultiArray:
    """The /mbrl/model message for a model file's bytes.

    Args:
        kind: one of MODEL_KINDS.
        created: ISO time; None means now (UTC).
        layout: what x and u mean (ModelPayload.layout); omitted from the header when None.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind {kind!r}; expected one of {list(MODEL_KINDS)}")
    header = {
        "version": int(version),
        "kind": kind,
        "dx": int(dx),
        "du": int(du),
        "created": created or datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "metrics": _json_safe(metrics or {}),
    }
    if layout is not None:
        header["layout"] = dict(layout)
    return encode_bytes_msg(data, header)


def decode_model_msg(msg: UInt8MultiArray) -> ModelPayload:
    """Verify and unpack an /mbrl/model message.

    Raises:
        TransportError naming the model version (when readable) and what was wrong: bad or
        missing header fields, unknown kind, truncated data or a sha256 mismatch.
    """
    what = MODEL_TOPIC
    if msg.layout.dim:
        try:
            label = json.loads(msg.layout.dim[0].label)["version"]
            what = f"{MODEL_TOPIC} version {truncate_repr(label, 40)}"
        except (json.JSONDecodeError, KeyError, TypeError, IndexError, RecursionError):
            pass
    header, data = decode_bytes_msg(msg, what)
    for key in ("metrics", "layout"):
        if not isinstance(header.get(key) or {}, dict):
            raise TransportError(
                f"{what}: header field {key!r} = {truncate_repr(header.get(key))}; expected "
                "a JSON object"
            )
    if not isinstance(header.get("kind"), str):
        raise TransportError(f"{what}: header field 'kind' = {truncate_repr(header.get('kind'))}")
    payload = ModelPayload(
        version=header_int(header, "version", what),
        sha256=header["sha256"],
        kind=header["kind"],
        dx=header_int(header, "dx", what, 1, 100_000),
        du=header_int(header, "du", what, 1, 100_000),
        created=str(header.get("created", ""))[:64],
        metrics=dict(header.get("metrics") or {}),
        data=data,
        layout=dict(header.get("layout") or {}),
    )
    if payload.kind not in MODEL_KINDS:
        raise TransportError(f"{what}: kind {payload.kind!r}; expected one of {list(MODEL_KINDS)}")
    return payload


def load_model_bytes(payload: ModelPayload, directory: str | Path) -> Any:
    """Load the model in `payload` via a file in `directory` (the receiver's own disk).

    The bytes go to a fresh temporary file (the model loaders read files, and the safe
    format checks magic, kind and shapes there), are loaded, and the file is removed.

    Returns:
        the artifact (mbrl.agents.registry.load_artifact of payload.kind): a
        ProbabilisticEnsemble, a TimeVaryingLinearGaussian, a policy, ...
    Raises:
        mbrl.models.base.ModelFileError naming the model version when the file is invalid,
        or TransportError when dx/du in the file differ from the header.
    """
    # imported here so message-only users (collector, tests) do not pay for torch
    from mbrl.agents.registry import load_artifact
    from mbrl.models.base import ModelFileError

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"model-v{payload.version}-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload.data)
        try:
            model = load_artifact(payload.kind, name)
        except ModelFileError as exc:
            raise ModelFileError(f"{MODEL_TOPIC} version {payload.version}: {exc}") from exc
    finally:
        os.unlink(name)
    if (model.dx, model.du) != (payload.dx, payload.du):
        raise TransportError(
            f"{MODEL_TOPIC} version {payload.version}: file holds dx={model.dx}, du={model.du}; "
            f"header says dx={payload.dx}, du={payload.du}"
        )
    return model


# ---- diagnostics ---------------------------------------------------------------------------
def diagnostics_msg(
    stamp: Any, name: str, level: bytes, message: str, values: dict[str, Any]
) -> DiagnosticArray:
    """A /diagnostics array with one status `name` (e.g. "mbrl/collector").

    Args:
        stamp: builtin_interfaces/Time of the report.
        level: DiagnosticStatus.OK / WARN / ERROR / STALE.
        values: key -> value, sent as strings (floats with 6 significant digits).
    """
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id="mbrl")
    status.values = [
        KeyValue(key=str(k), value=f"{v:.6g}" if isinstance(v, float) else str(v))
        for k, v in values.items()
    ]
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array

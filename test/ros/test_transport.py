"""Files as messages: round trip, and every corruption is rejected naming the message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbrl.models.base import ModelFileError
from mbrl.models.ensemble import ProbabilisticEnsemble
from mbrl.ros.transport import (
    TransportError,
    decode_episode_msg,
    decode_model_msg,
    encode_episode_msg,
    encode_model_msg,
    load_model_bytes,
)

torch.set_num_threads(1)


def test_episode_round_trip_and_corruption() -> None:
    data = bytes(range(256)) * 10
    payload = decode_episode_msg(encode_episode_msg(data, 7, 42, True))
    assert (payload.episode_id, payload.num_messages, payload.complete) == (7, 42, True)
    assert payload.data == data

    flipped = encode_episode_msg(data, 7, 42, True)
    flipped.data[100] ^= 0xFF
    with pytest.raises(TransportError, match="episode 7: sha256 mismatch"):
        decode_episode_msg(flipped)

    truncated = encode_episode_msg(data, 8, 42, True)
    truncated.data = truncated.data[:-10]
    with pytest.raises(TransportError, match="episode 8: .*truncated"):
        decode_episode_msg(truncated)

    no_header = encode_episode_msg(data, 9, 1, True)
    no_header.layout.dim[0].label = "not json"
    with pytest.raises(TransportError, match="not JSON"):
        decode_episode_msg(no_header)


def test_model_round_trip_loads_in_another_directory(tmp_path) -> None:
    model = ProbabilisticEnsemble(3, 2, ensemble_size=2, hidden=(8,), num_elites=1, seed=0)
    model.save(tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    layout = {"joint_names": ["a"], "state": "q_qd", "action": "increment"}
    msg = encode_model_msg(
        data, 3, "ensemble", 3, 2, {"holdout_mse": float("nan"), "n": 5}, layout=layout
    )
    payload = decode_model_msg(msg)
    assert payload.layout == layout
    assert (payload.version, payload.kind, payload.dx, payload.du) == (3, "ensemble", 3, 2)
    assert payload.metrics == {"holdout_mse": None, "n": 5}
    loaded = load_model_bytes(payload, tmp_path / "receiver")
    x, u = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    np.testing.assert_allclose(loaded.predict(x, u)[0], model.predict(x, u)[0], rtol=1e-6)
    assert list((tmp_path / "receiver").iterdir()) == []  # the temporary file is gone

    bad = encode_model_msg(data, 4, "ensemble", 3, 2)
    bad.data[-1] ^= 0x01
    with pytest.raises(TransportError, match="version 4: sha256 mismatch"):
        decode_model_msg(bad)

    # a consistent hash over bytes that are not a model: the loader names the version
    junk = decode_model_msg(encode_model_msg(b"junk" * 10, 5, "ensemble", 3, 2))
    with pytest.raises(ModelFileError, match="version 5"):
        load_model_bytes(junk, tmp_path / "receiver")

    wrong_dims = decode_model_msg(encode_model_msg(data, 6, "ensemble", 4, 2))
    with pytest.raises(TransportError, match="version 6: file holds dx=3"):
        load_model_bytes(wrong_dims, tmp_path / "receiver")

    with pytest.raises(ValueError, match="model kind 'gp'"):
        encode_model_msg(data, 1, "gp", 3, 2)

"""Safe model files: one .npz of named arrays plus a JSON header, never a pickle.

The header carries a magic string, a format version, the model kind and every array's
shape and dtype, so a truncated, foreign or mismatched file fails with ModelFileError
naming the file and what differed, before any number reaches a model.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mbrl.models.base import ModelFileError

MAGIC = "mbrl-model"
VERSION = 1


def save_model_file(
    path: str | Path, kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]
) -> None:
    """Write arrays + JSON metadata atomically (temp file, fsync, rename).

    Args:
        path: destination; written exactly as given (no suffix added).
        kind: model class tag checked on load (e.g. "ProbabilisticEnsemble").
        meta: JSON-serialisable constructor arguments and scalars.
        arrays: name -> array (numeric dtypes only).
    """
    path = Path(path)
    header = {
        "magic": MAGIC,
        "version": VERSION,
        "kind": kind,
        "meta": meta,
        "arrays": {k: [list(v.shape), str(v.dtype)] for k, v in arrays.items()},
    }
    blob = np.frombuffer(json.dumps(header).encode(), np.uint8)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, __header__=blob, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_model_file(path: str | Path, kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and validate a file from `save_model_file`; returns (meta, arrays).

    Raises:
        ModelFileError: missing/truncated/corrupt file, wrong magic/version/kind, or an
            array whose shape/dtype differs from the header. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__header__" not in z.files:
                raise ModelFileError(f"{path}: no mbrl header; not an mbrl model file")
            header = json.loads(bytes(z["__header__"]).decode())
            arrays = {k: z[k] for k in z.files if k != "__header__"}
    except ModelFileError:
        raise
    except (OSError, zipfile.BadZipFile, ValueError, KeyError, EOFError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: unreadable or truncated model file ({e})") from e
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise ModelFileError(f"{path}: bad magic; expected {MAGIC!r}")
    if header.get("version") != VERSION:
        raise ModelFileError(
            f"{path}: format version {header.get('version')!r}; expected {VERSION}"
        )
    if header.get("kind") != kind:
        raise ModelFileError(f"{path}: holds a {header.get('kind')!r}; expected a {kind!r}")
    declared = header.get("arrays", {})
    if set(declared) != set(arrays):
        raise ModelFileError(
            f"{path}: arrays {sorted(arrays)} do not match header {sorted(declared)}"
        )
    for name, (shape, dtype) in declared.items():
        a = arrays[name]
        if list(a.shape) != list(shape) or str(a.dtype) != dtype:
            raise ModelFileError(
                f"{path}: array {name!r} is {a.shape} {a.dtype}; header says {tuple(shape)} {dtype}"
            )
    return header["meta"], arrays


def expect_shape(path: str | Path, name: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
    """Check a loaded array against the shape the model's metadata implies."""
    if tuple(array.shape) != tuple(shape):
        raise ModelFileError(
            f"{path}: array {name!r} has shape {tuple(array.shape)}; expected {tuple(shape)} "
            "from the file's metadata"
        )


def check_arrays(
    path: str | Path, arrays: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]]
) -> None:
    """Every expected array is present with the shape the metadata implies."""
    missing = sorted(set(expected) - set(arrays))
    if missing:
        raise ModelFileError(f"{path}: arrays {missing} missing; file has {sorted(arrays)}")
    for name, shape in expected.items():
        expect_shape(path, name, arrays[name], shape)

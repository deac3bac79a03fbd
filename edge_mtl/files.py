"""File helpers every writer shares: content hashes, atomic writes and strict JSON (no torch imported)."""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` next to ``path``, flush it to disk, then rename over ``path``: readers never
    see half a file, and a failed write (a full disk, a kill) leaves the old file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats (Python or numpy) as None and numpy scalars/arrays as
    Python values; dicts, lists and tuples are copied, anything else is returned as is."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars (np.bool_ is not a numbers.Integral)
        return json_safe(value.tolist())
    return value


def to_json(obj: Any, **kw: Any) -> str:
    """Strict JSON text of ``obj``: NaN and infinities become null (`json_safe`), never bare
    ``NaN``; ``kw`` go to `json.dumps` (``allow_nan`` is always False)."""
    return json.dumps(json_safe(obj), **{**kw, "allow_nan": False})

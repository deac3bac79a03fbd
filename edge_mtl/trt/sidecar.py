"""The JSON sidecar ``<engine>.json`` that every engine carries (schema ``edge_mtl.engine/1``).

A TensorRT engine runs only with the TensorRT version and GPU that built it, and says nothing
about the model inside. The sidecar records both, plus the ONNX it came from (path + sha256),
the build flags and the model metadata the runtime needs (input size, normalisation, class
names), so a backend can refuse a stale or foreign engine with a clear message.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge_mtl.files import sha256, write_atomic

SCHEMA = "edge_mtl.engine/1"
PRECISIONS: tuple[str, ...] = ("fp16", "int8", "best")


def sidecar_path(engine: str | os.PathLike) -> Path:
    return Path(f"{engine}.json")


def make_sidecar(engine: Path, *, tensorrt_version: str, device: dict[str, str], precision: str,
                 input_name: str, input_shape: list[int], output_names: list[str], onnx: Path,
                 build: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """The sidecar of the engine file just written at ``engine``, as it reads back from JSON."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {list(PRECISIONS)}")
    data = {
        "schema": SCHEMA,
        "engine": {"file": engine.name, "sha256": sha256(engine)},
        "tensorrt_version": tensorrt_version,
        "device": device,
        "precision": precision,
        "input": {"name": input_name, "shape": list(input_shape)},
        "outputs": list(output_names),
        "onnx": {"path": str(onnx.resolve()), "sha256": sha256(onnx)},
        "build": build,
        "model": model,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return json.loads(json.dumps(data))  # tuples -> lists: the same dict the file holds


def write_sidecar(engine: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write atomically next to the engine."""
    return write_atomic(sidecar_path(engine), json.dumps(data, indent=1) + "\n")


def read_sidecar(engine: str | os.PathLike) -> dict[str, Any]:
    """Load and schema-check the sidecar of ``engine`` (no staleness checks)."""
    path = sidecar_path(engine)
    if not path.is_file():
        raise ValueError(f"{engine}: no sidecar {path.name} next to it, so nothing says which TensorRT, "
                         "GPU and ONNX built it; rebuild it with `edge-mtl build-engine`")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable engine sidecar ({e})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else None
        raise ValueError(f"{path}: not an edge_mtl engine sidecar (schema {found!r}, expected {SCHEMA!r})")
    return data


def check_sidecar(engine: str | os.PathLike, trt_version: str, device_name: str,
                  onnx_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The sidecar of ``engine``, refused (ValueError) when the engine is not the one it describes,
    was built by another TensorRT version or GPU, or the ONNX changed since the build.

    The ONNX checked is ``onnx_path``, else the recorded path when that file still exists (an
    engine copied to a Jetson without its ONNX is not refused for that).
    """
    data = read_sidecar(engine)
    side = sidecar_path(engine).name
    digest = sha256(engine)
    if digest != data["engine"]["sha256"]:
        raise ValueError(f"{engine}: the engine is not the one {side} describes (sha256 {digest[:12]}…, "
                         f"recorded {data['engine']['sha256'][:12]}…); rebuild it")
    if data["tensorrt_version"] != trt_version:
        raise ValueError(f"{engine}: built with TensorRT {data['tensorrt_version']}, this is TensorRT "
                         f"{trt_version}; engines are not portable across versions, rebuild it here")
    built_on = data["device"]["name"]
    if built_on != device_name:
        raise ValueError(f"{engine}: built on {built_on!r}, this GPU is {device_name!r}; engines are "
                         "not portable across GPUs, rebuild it here")
    onnx = Path(onnx_path) if onnx_path is not None else Path(data["onnx"]["path"])
    if onnx_path is not None and not onnx.is_file():
        raise FileNotFoundError(f"ONNX model {onnx} not found")
    onnx_digest = sha256(onnx) if onnx.is_file() else None
    if onnx_digest is not None and onnx_digest != data["onnx"]["sha256"]:
        raise ValueError(f"{engine}: stale, {onnx} changed since the engine was built from it "
                         f"(sha256 {onnx_digest[:12]}…, recorded {data['onnx']['sha256'][:12]}…); rebuild it")
    return data

"""Read run folders: the eval / bench / camera JSONs in them and the model files they name.

Every top-level ``*.json`` of a run folder is read. Files whose ``"schema"`` is
``edge_mtl.eval/1``, ``edge_mtl.bench/1`` or ``edge_mtl.camera/1`` are measurements; engine
sidecars (``edge_mtl.engine/1``) describe an engine for the size table; anything else is skipped
with a note. A file that is not valid JSON is an error that names it (a truncated measurement
must not vanish from a report silently).

Fields are read defensively (`field`): backend-specific extras may sit at the top level or under
a ``"runtime"`` key, and a missing field reads as None, which the report shows as "not measured".
Accuracy metrics are read with `measured`, which keeps a broken measurement (a key that holds
NaN, null or a non-number) apart from a missing one: the report shows it as "invalid (NaN)".
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

EVAL, BENCH, CAMERA = "edge_mtl.eval/1", "edge_mtl.bench/1", "edge_mtl.camera/1"
ENGINE_SIDECAR = "edge_mtl.engine/1"
MEASUREMENTS = {EVAL: "eval", BENCH: "bench", CAMERA: "camera"}
MODEL_SUFFIXES = (".onnx", ".engine", ".plan", ".pt")


@dataclass(frozen=True)
class Record:
    """One measurement JSON: its kind (``eval``/``bench``/``camera``), file and content."""

    kind: str
    path: Path
    run_dir: Path
    data: dict[str, Any]

    @property
    def backend(self) -> str | None:
        return field(self.data, "backend")

    @property
    def precision(self) -> str | None:
        return field(self.data, "precision")

    @property
    def device(self) -> str | None:
        return field(self.data, "device")


@dataclass
class Collected:
    """Everything found in the run folders."""

    records: list[Record] = dc_field(default_factory=list)
    sidecars: dict[Path, dict[str, Any]] = dc_field(default_factory=dict)  # engine path -> sidecar
    model_files: list[Path] = dc_field(default_factory=list)
    notes: list[str] = dc_field(default_factory=list)
    skipped: list[dict[str, str]] = dc_field(default_factory=list)

    def of(self, kind: str) -> list[Record]:
        return [r for r in self.records if r.kind == kind]


def field(data: Any, *keys: str) -> Any:
    """``data[k0][k1]...``, looked up at the top level and then under ``"runtime"``; None when
    any step is missing or not a dict."""
    for root in (data, data.get("runtime") if isinstance(data, dict) else None):
        node = root
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                node = None
                break
            node = node[key]
        if node is not None:
            return node
    return None


def number(value: Any) -> float | None:
    """A finite float, or None (missing, NaN, not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def invalid_reason(value: Any) -> str | None:
    """Why a value that is present is not a measurement (``NaN``, ``Infinity``, ``null``, a
    non-number shown as JSON); None for a finite number."""
    if number(value) is not None:
        return None
    if isinstance(value, float):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:39] + "…"


def measured(data: Any, *keys: str) -> tuple[float | None, str | None]:
    """``(value, None)`` for a finite number at ``data[k0][k1]...``; ``(None, why)`` when the key
    is there but holds no number (`invalid_reason`); ``(None, None)`` when a key is missing."""
    node = data
    for i, key in enumerate(keys):
        if not isinstance(node, dict):
            return None, f"{'.'.join(keys[:i])} is {invalid_reason(node)}"
        if key not in node:
            return None, None
        node = node[key]
    why = invalid_reason(node)
    return (None, why) if why else (number(node), None)


def read_json(path: Path) -> Any:
    """Parse ``path``; a ValueError naming the file (and where) when it is not valid JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read it ({e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
                         "re-run the command that wrote it or move it out of the run folder") from None


def resolve_model(path_text: Any, run_dir: Path) -> Path | None:
    """The model file a JSON's ``model.path`` names: as given (absolute, or relative to the
    working directory), else relative to the run folder, else its name inside the run folder."""
    if not isinstance(path_text, str) or not path_text:
        return None
    given = Path(path_text)
    for candidate in (given, run_dir / given, run_dir / given.name):
        if candidate.is_file():
            return candidate.resolve()
    return None


def collect(run_dirs: list[Path]) -> Collected:
    """Read every run folder (in order; files sorted by name)."""
    out = Collected()
    seen_models: dict[Path, None] = {}
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise FileNotFoundError(f"run folder {run_dir} not found")
        found = 0
        for path in sorted(run_dir.glob("*.json")):
            if not path.is_file():
                continue
            data = read_json(path)
            schema = data.get("schema") if isinstance(data, dict) else None
            if schema in MEASUREMENTS:
                out.records.append(Record(MEASUREMENTS[schema], path, run_dir, data))
                found += 1
                model = resolve_model(field(data, "model", "path"), run_dir)
                if model is not None:
                    seen_models.setdefault(model)
            elif schema == ENGINE_SIDECAR and path.name.endswith(".json"):
                engine = path.with_name(path.name[: -len(".json")])
                out.sidecars[engine.resolve()] = data
            else:
                why = f"schema {schema!r}" if schema is not None else "no \"schema\" key"
                out.skipped.append({"path": str(path), "why": f"{why}; not an eval, bench or camera JSON"})
        for path in sorted(run_dir.iterdir()):
            if path.suffix.lower() in MODEL_SUFFIXES and path.is_file():
                seen_models.setdefault(path.resolve())
        if not found:
            out.notes.append(f"{run_dir}: no eval, bench or camera JSON found")
    out.model_files = list(seen_models)
    return out


def describe_host(data: dict[str, Any]) -> str:
    """Where a measurement ran, e.g. ``cpu, x86_64, 2 CPUs`` or ``cuda (Orin), aarch64, 6 CPUs``."""
    device = field(data, "device")
    gpu = field(data, "gpu")
    providers = field(data, "providers")
    parts = []
    if device:
        where = str(device)
        if gpu:
            where += f" ({gpu})"
        elif isinstance(providers, list) and providers and device == "cuda":
            where += f" ({providers[0]})"
        parts.append(where)
    machine = field(data, "host", "machine")
    cpus = field(data, "host", "cpus")
    if machine:
        parts.append(str(machine))
    if cpus:
        parts.append(f"{cpus} CPUs")
    trt = field(data, "tensorrt_version")
    if trt:
        parts.append(f"TensorRT {trt}")
    return ", ".join(parts) if parts else "not recorded"


def model_facts(path: Path, records: list[Record], sidecars: dict[Path, dict[str, Any]]) -> dict[str, Any]:
    """Size, parameters and how it runs, for one model file (from the JSONs that name it, the
    engine sidecar, or the ONNX metadata)."""
    size = path.stat().st_size
    params, runs_as = None, []
    for r in records:
        if resolve_model(field(r.data, "model", "path"), r.run_dir) == path:
            params = params if params is not None else field(r.data, "model", "params")
            tag = f"{r.backend} {r.precision}"
            if r.backend and r.precision and tag not in runs_as:
                runs_as.append(tag)
    suffix = path.suffix.lower()
    fmt = {".onnx": "onnx", ".engine": "engine", ".plan": "engine", ".pt": "checkpoint"}[suffix]
    side = sidecars.get(path)
    if fmt == "engine" and side is not None:
        params = params if params is not None else field(side, "model", "params")
        if not runs_as and field(side, "precision"):
            runs_as.append(f"tensorrt {field(side, 'precision')}")
    if fmt == "onnx" and (params is None or not runs_as):
        p, precision = _onnx_facts(path)
        params = params if params is not None else p
        if not runs_as and precision:
            runs_as.append(f"onnxruntime {precision}")
    return {"path": str(path), "file": path.name, "format": fmt, "bytes": size,
            "mb": round(size / 1e6, 2), "params": params, "runs_as": runs_as}


def _onnx_facts(path: Path) -> tuple[int | None, str | None]:
    """(params from the edge_mtl metadata, fp32/fp16/int8 as
    `edge_mtl.runtime.onnx_backend.onnx_precision` tells it), None where unreadable."""
    from edge_mtl.runtime.onnx_backend import onnx_metadata, onnx_precision

    try:
        props = onnx_metadata(path)
        params = int(props["edge_mtl.params"]) if "edge_mtl.params" in props else None
        return params, onnx_precision(path)
    except Exception:  # onnx / onnxruntime raise their own types for a broken file; the size still stands
        return None, None


def as_paths(run_dirs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The run folders as paths (one folder given alone is accepted too)."""
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    paths = [Path(d) for d in run_dirs]
    if not paths:
        raise ValueError("no run folder given")
    return paths

"""Python 3.8 support for the runtime: JetPack 5 (Xavier NX, JetPack-5 Orins) ships Python 3.8.

The runtime (eval, bench, camera, calibrate, build-engine and report of an ONNX model or a
TensorRT engine: edge_mtl.cli.PY38_COMMANDS) runs on Python 3.8; training, export and torch
models need 3.10 (`require_python310`). `PY38_MODULES` names where the 3.8 part starts: these
modules and everything they import inside edge_mtl, short of `PY38_STOP`, must run on 3.8.
tests/runtime/test_python38.py checks that closure with vermin, and on a real 3.8 interpreter
where one is installed; pyproject.toml lints those files with ruff's py38 target.

What 3.8 lacks and these modules therefore avoid: ``zip(strict=True)`` (`zip_strict`),
``dict | dict`` (``{**a, **b}``, ``update``), ``X | Y`` and ``list[int]`` outside annotations
(annotations are never evaluated under ``from __future__ import annotations``; ``isinstance``
takes a tuple, a type alias is ``typing.Tuple[...]``), ``str.removeprefix`` (`removeprefix`),
``functools.cache``, ``itertools.pairwise``, parenthesised context managers, ``match``.
"""

from __future__ import annotations

import itertools
import platform
import sys
from collections.abc import Iterable, Iterator
from typing import Any

PY38_MODULES: tuple[str, ...] = (
    "edge_mtl.cli",  # its module-level imports and those of the commands in cli.PY38_COMMANDS
    "edge_mtl.compat",
    "edge_mtl.runtime.backend",
    "edge_mtl.runtime.onnx_backend",
    "edge_mtl.runtime.tensorrt_backend",
    "edge_mtl.runtime.preprocess",
    "edge_mtl.runtime.postprocess",
    "edge_mtl.runtime.geometry",
    "edge_mtl.runtime.timing",
    "edge_mtl.camera.loop",
    "edge_mtl.camera.bench_loop",
    "edge_mtl.camera.calib",
    "edge_mtl.camera.overlay",
    "edge_mtl.camera.pipeline",
    "edge_mtl.camera.present",
    "edge_mtl.camera.sources",
    "edge_mtl.trt.api",
    "edge_mtl.trt.build",
    "edge_mtl.trt.calibrator",
    "edge_mtl.trt.sidecar",
    "edge_mtl.evaluate",
    "edge_mtl.metrics",
    "edge_mtl.lane_eval",
    "edge_mtl.bench",
    "edge_mtl.report",
    "edge_mtl.quantize.qdq",  # INT8 calibration (onnxruntime.quantization)
)
# The torch side, which the runtime reaches only for a .pt model (refused below 3.10): not followed.
PY38_STOP: tuple[str, ...] = ("edge_mtl.runtime.torch_backend",)


def require_python310(what: str) -> None:
    """A RuntimeError naming ``what`` below Python 3.10: the training side (torch models,
    training, export) is not written for 3.8."""
    if sys.version_info < (3, 10):
        raise RuntimeError(f"{what} needs Python 3.10 or newer (this is Python {platform.python_version()}); "
                           "on Python 3.8 edge_mtl runs the runtime only: eval, bench, camera, calibrate, "
                           "build-engine and report of an ONNX model or a TensorRT engine")


def removeprefix(text: str, prefix: str) -> str:
    """``text.removeprefix(prefix)`` (Python 3.9) on Python 3.8 too."""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


_MISSING = object()


def zip_strict(*iterables: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
    """``zip(*iterables, strict=True)`` (Python 3.10) on Python 3.8 too: a ValueError once one
    iterable ends before the others."""
    for items in itertools.zip_longest(*iterables, fillvalue=_MISSING):
        if any(item is _MISSING for item in items):
            short = next(i for i, item in enumerate(items) if item is _MISSING)
            raise ValueError(f"zip_strict: argument {short + 1} is shorter than the others")
        yield items

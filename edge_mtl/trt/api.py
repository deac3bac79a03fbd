"""Lazy access to TensorRT and cuda-python, and the few gates between TensorRT versions.

One code path serves TensorRT 8.5 to 10.x (name-based I/O, ``execute_async_v3``). What differs:
8.x needs ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` (10.x ignores it: networks are
always explicit-batch), and 11.x removes the FP16/INT8 builder flags and the calibrator that
engine builds rely on (its networks are strongly typed).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

MIN_VERSION = (8, 5)  # num_io_tensors / set_tensor_address / execute_async_v3 arrived in 8.5
MAX_BUILD_MAJOR = 10  # 11.x removed BuilderFlag.FP16/INT8 and int8_calibrator


def import_tensorrt() -> ModuleType:
    """``import tensorrt``, or a RuntimeError that says how to get it."""
    try:
        import tensorrt
    except ImportError as e:
        raise RuntimeError(
            "TensorRT Python bindings not found: on Jetson they come with JetPack "
            "(python3-libnvinfer; a virtualenv needs --system-site-packages to see them); on x86 "
            "pip install tensorrt (needs an NVIDIA GPU, its driver and CUDA 12) "
            f"[{type(e).__name__}: {e}]") from None
    return tensorrt


def import_cudart() -> ModuleType:
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (cuda-python 12.6.1 and later; 13.x
    has only that), else ``cuda.cudart`` (12.6.0 and older, where it is the only layout); a
    RuntimeError that says how to get it when neither imports."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as e:
            raise RuntimeError(
                "cuda-python not found (needed for TensorRT device buffers): pip install "
                "cuda-python, matching the CUDA major version of your TensorRT "
                f"[{type(e).__name__}: {e}]") from None
    return cudart


def trt_version(trt: ModuleType) -> tuple[int, int]:
    """(major, minor) of the imported TensorRT."""
    major, minor = str(trt.__version__).split(".")[:2]
    return int(major), int(minor)


def trt_major(trt: ModuleType) -> int:
    return trt_version(trt)[0]


def require_version(trt: ModuleType, build: bool = False) -> None:
    """TensorRT >= 8.5 runs engines; building also needs <= 10.x (the weakly typed builder)."""
    if trt_version(trt) < MIN_VERSION:
        raise RuntimeError(f"TensorRT {trt.__version__} is too old: edge_mtl needs 8.5 or newer "
                           "(JetPack 5.1+) for the name-based tensor API")
    if build and trt_major(trt) > MAX_BUILD_MAJOR:
        raise RuntimeError(f"TensorRT {trt.__version__} removed the FP16/INT8 builder flags and the "
                           "INT8 calibrator that build-engine uses; build with TensorRT 8.5-10.x")


def network_flags(trt: ModuleType) -> int:
    """``create_network`` flags: EXPLICIT_BATCH on 8.x (ONNX needs it), nothing on 10.x."""
    if trt_major(trt) < 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def cuda_call(result: tuple, what: str) -> Any:
    """Unpack a cuda-python ``(cudaError_t, *values)`` tuple; raise on any error."""
    err, *values = result
    if int(err) != 0:  # cudaSuccess
        raise RuntimeError(f"{what} failed: {getattr(err, 'name', err)}")
    return values[0] if len(values) == 1 else tuple(values) or None


@dataclass(frozen=True)
class Device:
    name: str
    compute_capability: str  # "8.7"


def device_info(cudart: ModuleType) -> Device:
    """The current CUDA device, or a RuntimeError when none is usable."""
    try:
        index = cuda_call(cudart.cudaGetDevice(), "cudaGetDevice")
        prop = cuda_call(cudart.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    except RuntimeError as e:
        raise RuntimeError(f"no usable CUDA GPU ({e}); TensorRT needs an NVIDIA GPU and driver") from None
    name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
    return Device(name.rstrip("\x00").strip(), f"{prop.major}.{prop.minor}")


# trt.DataType member name -> numpy type. Not trt.nptype: in TensorRT 8.5.1-8.5.3 (JetPack 5.1)
# it builds its table with np.bool, which NumPy 1.24 removed (NVIDIA/TensorRT#2557).
_NUMPY_TYPES: dict[str, type] = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8,
                                 "INT32": np.int32, "BOOL": np.bool_, "UINT8": np.uint8, "INT64": np.int64}


def numpy_dtype(trt: ModuleType, data_type: Any) -> np.dtype | None:
    """The numpy dtype of a ``trt.DataType``, or None for one without a numpy twin (FP8, BF16, INT4).
    Members are looked up by name, so versions without UINT8 or INT64 work."""
    for name, numpy_type in _NUMPY_TYPES.items():
        member = getattr(trt.DataType, name, None)
        if member is not None and data_type == member:
            return np.dtype(numpy_type)
    return None


_logger: tuple[ModuleType, Any] | None = None  # (the tensorrt module, its logger)


def shared_logger(trt: ModuleType) -> Any:
    """The one ``trt.ILogger`` of this process, shared by every Builder and Runtime.

    TensorRT treats the logger as a process-wide singleton: the first one handed to a Builder or
    Runtime receives every later message, so a logger per object would miss the errors of all
    but the first. It prints warnings and errors to stderr and keeps the errors; read the ones of
    one step with ``mark = logger.mark()`` before it and ``logger.errors_since(mark)`` after.
    """
    global _logger
    if _logger is None or _logger[0] is not trt:  # one tensorrt module per process (tests swap it)

        class Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors: list[str] = []

            def log(self, severity: Any, msg: str) -> None:
                if int(severity) <= int(trt.ILogger.Severity.ERROR):
                    self.errors.append(msg)
                if int(severity) <= int(trt.ILogger.Severity.WARNING):
                    print(f"[TensorRT {severity.name}] {msg}", file=sys.stderr)

            def mark(self) -> int:
                return len(self.errors)

            def errors_since(self, mark: int, last: int = 5) -> str:
                """The last ``last`` errors logged since ``mark``, joined, or "no error logged"."""
                return "; ".join(self.errors[mark:][-last:]) or "no error logged"

        _logger = (trt, Logger())
    return _logger[1]

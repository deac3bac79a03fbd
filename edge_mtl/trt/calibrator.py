"""Implicit INT8: TensorRT's entropy calibrator fed from a calibration set, with a cache file.

Used when an FP32 ONNX (no Q/DQ nodes) is built in INT8 — for DLA and older JetPacks. The class
derives from ``trt.IInt8EntropyCalibrator2``, so it is defined when the factory runs and this
module imports without TensorRT.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edge_mtl.files import write_atomic
from edge_mtl.quantize.calibset import CalibrationSet
from edge_mtl.trt.api import cuda_call


def make_entropy_calibrator(trt: ModuleType, cudart: ModuleType, calib_set: CalibrationSet,
                            input_size: tuple[int, int], cache_path: str | os.PathLike,
                            limit: int | None = None, mode: str = "letterbox") -> Any:
    """An ``IInt8EntropyCalibrator2`` that feeds batch-1 inputs of ``calib_set`` (at most ``limit``)
    through one device buffer and reads/writes the calibration cache at ``cache_path``.

    A cache that exists is returned to TensorRT, which then skips the images. Call ``free()``
    after the build to release the device buffer.
    """
    shape = (1, 3, *input_size)
    nbytes = int(np.prod(shape)) * np.dtype(np.float32).itemsize
    cache = Path(cache_path)

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)  # pybind11 needs the explicit base call
            self.batches = calib_set.batches(input_size, limit, mode)
            self.device = cuda_call(cudart.cudaMalloc(nbytes), "cudaMalloc (calibration batch)")
            self.images = 0
            self.cache_read = False

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            x = next(self.batches, None)
            if x is None:
                return None
            if x.shape != shape:
                raise ValueError(f"calibration set {calib_set.name}: batch of shape {list(x.shape)}, "
                                 f"the network takes {list(shape)}")
            x = np.ascontiguousarray(x, dtype=np.float32)
            cuda_call(cudart.cudaMemcpy(self.device, x.ctypes.data, nbytes,
                                        cudart.cudaMemcpyKind.cudaMemcpyHostToDevice),
                      "cudaMemcpy (calibration batch)")
            self.images += 1
            return [int(self.device)]

        def read_calibration_cache(self) -> bytes | None:
            if not cache.is_file():
                return None
            self.cache_read = True
            return cache.read_bytes()

        def write_calibration_cache(self, data: Any) -> None:
            write_atomic(cache, bytes(data))

        def free(self) -> None:
            if self.device is not None:
                cuda_call(cudart.cudaFree(self.device), "cudaFree (calibration batch)")
                self.device = None

    return EntropyCalibrator()

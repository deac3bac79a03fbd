"""Implicit INT8: TensorRT's entropy calibrator fed from a calibration set, with a cache file.

Used when an FP32 ONNX (no Q/DQ nodes) is built in INT8 — for DLA and older JetPacks. The class
derives from ``trt.IInt8EntropyCalibrator2``, so it is defined when the factory runs and this
module imports without TensorRT.

TensorRT calls these methods from C++, and its Python bindings catch any exception they raise,
print it and carry on as if there were no more batches (or no cache). So every callback keeps
its first error in ``error`` instead, and the build raises it once TensorRT returns.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edge_mtl.files import write_atomic
from edge_mtl.quantize.calibset import CalibrationSet
from edge_mtl.trt.api import cuda_call


def make_entropy_calibrator(trt: ModuleType, cudart: ModuleType, calib_set: CalibrationSet,
                            input_shape: list[int], cache_path: str | os.PathLike,
                            limit: int | None = None, mode: str = "letterbox") -> Any:
    """An ``IInt8EntropyCalibrator2`` that feeds ``calib_set`` (its first ``limit`` images) to a
    network whose static input is ``input_shape`` ``[B, 3, H, W]`` (float: `build_engine` refuses
    implicit INT8 of a uint8-input model): B images per batch through
    one device buffer (a last incomplete batch is left out), with the calibration cache at
    ``cache_path``.

    A cache that exists is returned to TensorRT, which then skips the images. After the build,
    call ``free()`` to release the device buffer, then raise ``error`` when it is set (and do not
    keep the cache). A ValueError when the set has fewer than B images.
    """
    shape = tuple(int(d) for d in input_shape)
    batch, size = shape[0], (shape[2], shape[3])
    available = len(calib_set.images[:limit])
    if available < batch:
        raise ValueError(f"calibration set {calib_set.name}: {available} image(s) to use, fewer than "
                         f"one batch of the network input {list(shape)}")
    nbytes = int(np.prod(shape)) * np.dtype(np.float32).itemsize
    cache = Path(cache_path)

    def batches() -> Iterator[np.ndarray]:
        images = calib_set.batches(size, limit, mode)
        while len(group := list(itertools.islice(images, batch))) == batch:
            yield np.concatenate(group)

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)  # pybind11 needs the explicit base call
            self.batches = batches()
            self.device = cuda_call(cudart.cudaMalloc(nbytes), "cudaMalloc (calibration batch)")
            self.images = 0
            self.cache_read = False
            self.error: BaseException | None = None

        def get_batch_size(self) -> int:
            return 1  # explicit-batch networks: the batch is the input shape's first dimension

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.error is not None:
                return None
            try:
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
            except BaseException as e:  # Ctrl-C too: the bindings would swallow it
                self.error = e
                return None
            self.images += batch
            return [int(self.device)]

        def read_calibration_cache(self) -> bytes | None:
            try:
                if not cache.is_file():
                    return None
                data = cache.read_bytes()
            except BaseException as e:
                self.error = e
                return None
            self.cache_read = True
            return data

        def write_calibration_cache(self, data: Any) -> None:
            if self.error is not None:
                return  # scales from a calibration cut short: never cache them
            try:
                write_atomic(cache, bytes(data))
            except BaseException as e:
                self.error = e

        def free(self) -> None:
            if self.device is not None:
                cuda_call(cudart.cudaFree(self.device), "cudaFree (calibration batch)")
                self.device = None

    return EntropyCalibrator()

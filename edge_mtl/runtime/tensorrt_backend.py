"""TensorRT backend: runs a serialized engine through name-based I/O (TensorRT 8.5 to 10.x).

Device buffers, pinned host buffers and the stream come from cuda-python. The engine's sidecar
(``<engine>.json``) is checked first: an engine built by another TensorRT or GPU, or from an
ONNX that has changed since, is refused.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

import numpy as np

from edge_mtl.files import sha256
from edge_mtl.runtime.backend import Backend, ModelInfo
from edge_mtl.runtime.preprocess import MEAN, STD
from edge_mtl.trt.api import (
    cuda_call,
    device_info,
    import_cudart,
    import_tensorrt,
    numpy_dtype,
    require_version,
    shared_logger,
)
from edge_mtl.trt.sidecar import check_sidecar, read_sidecar
from edge_mtl.types import OUTPUT_NAMES


class TensorRTBackend(Backend):
    """One engine, one execution context, one stream; static shapes (the batch is the engine's)."""

    name = "tensorrt"
    device = "cuda"

    def __init__(self, engine_path: str | os.PathLike, check: bool = True,
                 onnx: str | os.PathLike | None = None):
        path = Path(engine_path)
        trt = import_tensorrt()
        require_version(trt)
        self._cudart = cudart = import_cudart()
        gpu = device_info(cudart)
        side = check_sidecar(path, trt.__version__, gpu.name, onnx) if check else read_sidecar(path)
        model = side["model"]
        if not (np.allclose(model["mean"], MEAN, atol=1e-3) and np.allclose(model["std"], STD, atol=1e-3)):
            raise ValueError(f"{path}: normalisation mean/std {model['mean']}/{model['std']} differ from "
                             "this version's pre-processing; re-export the model and rebuild the engine")
        self.info = ModelInfo(path=str(path), sha256=side["engine"]["sha256"] if check else sha256(path),
                              input_size=tuple(model["input_size"]), class_names=tuple(model["class_names"]),
                              backbone=model["backbone"], params=model["params"],
                              checkpoint_sha256=model["checkpoint_sha256"],
                              resize=model.get("resize", "letterbox"),
                              canonical_focal=model.get("canonical_focal"))
        self.precision = side["precision"]
        self.sidecar = side
        self._buffers: dict[str, tuple[int, np.ndarray]] = {}  # name -> (device pointer, pinned host array)
        self._stream = None

        self._logger = shared_logger(trt)
        mark = self._logger.mark()
        self._runtime = trt.Runtime(self._logger)
        dla_core = side.get("build", {}).get("dla_core")
        if dla_core is not None:  # a DLA engine deserializes onto the core it was built for
            self._runtime.DLA_core = int(dla_core)
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise ValueError(f"{path}: TensorRT {trt.__version__} cannot deserialize it "
                             f"({self._logger.errors_since(mark, last=3)})")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [side["input"]["name"]] or not set(OUTPUT_NAMES) <= set(names):
            raise ValueError(f"{path}: engine tensors {names} do not match its sidecar (input "
                             f"{side['input']['name']!r}, outputs {list(OUTPUT_NAMES)})")
        self._input = inputs[0]
        try:
            self._stream = cuda_call(cudart.cudaStreamCreate(), "cudaStreamCreate")
            for name in names:
                self._allocate(trt, path, name)
        except Exception:
            self.close()
            raise
        self.batch = int(self._engine.get_tensor_shape(self._input)[0])

    def _allocate(self, trt: Any, path: Path, name: str) -> None:
        shape = tuple(int(d) for d in self._engine.get_tensor_shape(name))
        if min(shape, default=1) < 1:
            raise ValueError(f"{path}: tensor {name!r} has a dynamic shape {list(shape)}; "
                             "build the engine from a static-shape ONNX")
        trt_dtype = self._engine.get_tensor_dtype(name)
        dtype = numpy_dtype(trt, trt_dtype)
        if dtype is None:
            raise ValueError(f"{path}: tensor {name!r} is {getattr(trt_dtype, 'name', trt_dtype)}, which has "
                             "no numpy type; rebuild the engine with float inputs and outputs")
        nbytes = int(np.prod(shape)) * dtype.itemsize
        device = cuda_call(self._cudart.cudaMalloc(nbytes), f"cudaMalloc ({name}, {nbytes} bytes)")
        try:
            host_ptr = cuda_call(self._cudart.cudaMallocHost(nbytes), f"cudaMallocHost ({name})")
        except RuntimeError:
            cuda_call(self._cudart.cudaFree(device), "cudaFree")
            raise
        host = np.frombuffer((ctypes.c_byte * nbytes).from_address(host_ptr), dtype).reshape(shape)
        self._buffers[name] = (device, host)
        if not self._context.set_tensor_address(name, device):
            raise RuntimeError(f"{path}: TensorRT refused the address of tensor {name!r}")

    def _copy(self, dst: int, src: int, nbytes: int, kind: Any, what: str) -> None:
        cuda_call(self._cudart.cudaMemcpyAsync(dst, src, nbytes, kind, self._stream), what)

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        kinds = self._cudart.cudaMemcpyKind
        device, host = self._buffers[self._input]
        np.copyto(host, images, casting="same_kind")
        self._copy(device, host.ctypes.data, host.nbytes, kinds.cudaMemcpyHostToDevice,
                   "cudaMemcpyAsync (input)")
        mark = self._logger.mark()
        if not self._context.execute_async_v3(int(self._stream)):
            raise RuntimeError(f"{self.info.path}: TensorRT execute_async_v3 failed "
                               f"({self._logger.errors_since(mark, last=3)})")
        for name in OUTPUT_NAMES:
            device, host = self._buffers[name]
            self._copy(host.ctypes.data, device, host.nbytes, kinds.cudaMemcpyDeviceToHost,
                       f"cudaMemcpyAsync ({name})")
        cuda_call(self._cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return {name: self._buffers[name][1].astype(np.float32) for name in OUTPUT_NAMES}

    def runtime_info(self) -> dict[str, Any]:
        return {"tensorrt_version": self.sidecar["tensorrt_version"],
                "gpu": self.sidecar["device"]["name"], "dla_core": self.sidecar["build"]["dla_core"]}

    def close(self) -> None:
        """Free buffers and the stream, then drop context, engine and runtime (in that order).

        Every release is attempted even when one fails; the first failure is raised at the end.
        """
        failures: list[Exception] = []

        def attempt(result: object, what: str) -> None:
            try:
                cuda_call(result, what)
            except Exception as e:  # keep freeing the rest
                failures.append(e)

        buffers, self._buffers = self._buffers, {}
        for device, host in buffers.values():
            attempt(self._cudart.cudaFree(device), "cudaFree")
            attempt(self._cudart.cudaFreeHost(host.ctypes.data), "cudaFreeHost")
        stream, self._stream = self._stream, None
        if stream is not None:
            attempt(self._cudart.cudaStreamDestroy(stream), "cudaStreamDestroy")
        self._context = self._engine = self._runtime = None
        if failures:
            raise failures[0]

"""TensorRT backend: runs a serialized engine through name-based I/O (TensorRT 8.5 to 10.x).

Device buffers, pinned host buffers, the stream and events come from cuda-python. The host side
is double-buffered: two sets of pinned buffers, each with an event recorded after its output
copies, so that a second frame can be copied and launched (`submit`) while the first still runs
and its outputs are read (`collect`). One set of device buffers is enough: the stream orders the
second frame's input copy after the first frame's execution. The engine's sidecar
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

SLOTS = 2  # pinned host buffer sets, frames in flight
# cudaEventBlockingSync | cudaEventDisableTiming (CUDA's fixed values): a wait sleeps instead of
# spinning a CPU core that the camera loop's other stages need.
EVENT_FLAGS = 0x01 | 0x02


class TensorRTBackend(Backend):
    """One engine, one execution context, one stream; static shapes (the batch is the engine's);
    up to `SLOTS` frames in flight (`submit` / `collect`)."""

    name = "tensorrt"
    device = "cuda"
    max_in_flight = SLOTS

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
                              canonical_focal=model.get("canonical_focal"),
                              input_format=model.get("input_format", "float"))
        self.precision = side["precision"]
        self.sidecar = side
        self._device: dict[str, int] = {}  # tensor name -> device pointer
        self._host: list[dict[str, np.ndarray]] = [{} for _ in range(SLOTS)]  # per slot: name -> pinned
        self._events: list[Any] = []  # per slot: recorded after its output copies
        self._busy = [False] * SLOTS  # submitted, not yet collected
        self._next = 0  # the slot the next submit takes
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
            for _ in range(SLOTS):
                self._events.append(cuda_call(cudart.cudaEventCreateWithFlags(EVENT_FLAGS),
                                              "cudaEventCreateWithFlags"))
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
        self._device[name] = cuda_call(self._cudart.cudaMalloc(nbytes),
                                       f"cudaMalloc ({name}, {nbytes} bytes)")
        for host in self._host:
            ptr = cuda_call(self._cudart.cudaMallocHost(nbytes), f"cudaMallocHost ({name})")
            host[name] = np.frombuffer((ctypes.c_byte * nbytes).from_address(ptr), dtype).reshape(shape)
        if not self._context.set_tensor_address(name, self._device[name]):
            raise RuntimeError(f"{path}: TensorRT refused the address of tensor {name!r}")

    def _copy(self, dst: int, src: int, nbytes: int, kind: Any, what: str) -> None:
        cuda_call(self._cudart.cudaMemcpyAsync(dst, src, nbytes, kind, self._stream), what)

    def submit(self, images: np.ndarray) -> Any:
        """Copy ``images`` into a free pinned slot and queue the input copy, the engine and the
        output copies on the stream; returns at once (a ticket for `collect`)."""
        self._check_input(images)
        if images.shape[0] != self.batch:
            return {"ready": self.infer(images)}  # split into engine batches, run one by one
        slot = self._next
        if self._busy[slot]:
            raise RuntimeError(f"{self.info.path}: {SLOTS} frames are already in flight; collect one first")
        kinds, host = self._cudart.cudaMemcpyKind, self._host[slot]
        np.copyto(host[self._input], images, casting="same_kind")
        self._copy(self._device[self._input], host[self._input].ctypes.data, host[self._input].nbytes,
                   kinds.cudaMemcpyHostToDevice, "cudaMemcpyAsync (input)")
        mark = self._logger.mark()
        if not self._context.execute_async_v3(int(self._stream)):
            raise RuntimeError(f"{self.info.path}: TensorRT execute_async_v3 failed "
                               f"({self._logger.errors_since(mark, last=3)})")
        for name in OUTPUT_NAMES:
            self._copy(host[name].ctypes.data, self._device[name], host[name].nbytes,
                       kinds.cudaMemcpyDeviceToHost, f"cudaMemcpyAsync ({name})")
        cuda_call(self._cudart.cudaEventRecord(self._events[slot], self._stream), "cudaEventRecord")
        self._busy[slot], self._next = True, (slot + 1) % SLOTS
        return {"slot": slot}

    def collect(self, ticket: Any) -> dict[str, np.ndarray]:
        """Wait for a submitted frame's event and return copies of its outputs (float32)."""
        if "ready" in ticket:
            return ticket["ready"]
        slot = ticket["slot"]
        if not self._busy[slot]:
            raise RuntimeError(f"{self.info.path}: that frame was already collected")
        try:
            cuda_call(self._cudart.cudaEventSynchronize(self._events[slot]), "cudaEventSynchronize")
            return {name: self._host[slot][name].astype(np.float32) for name in OUTPUT_NAMES}
        finally:
            self._busy[slot] = False

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self.collect(self.submit(images))

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

        stream, self._stream = self._stream, None
        if stream is not None:  # queued copies must not land in freed pinned memory
            attempt(self._cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        device, self._device = self._device, {}
        for ptr in device.values():
            attempt(self._cudart.cudaFree(ptr), "cudaFree")
        host, self._host = self._host, [{} for _ in range(SLOTS)]
        for slot in host:
            for array in slot.values():
                attempt(self._cudart.cudaFreeHost(array.ctypes.data), "cudaFreeHost")
        events, self._events = self._events, []
        for event in events:
            attempt(self._cudart.cudaEventDestroy(event), "cudaEventDestroy")
        if stream is not None:
            attempt(self._cudart.cudaStreamDestroy(stream), "cudaStreamDestroy")
        self._busy = [False] * SLOTS
        self._context = self._engine = self._runtime = None
        if failures:
            raise failures[0]

"""Fake ``tensorrt`` modules with the Python API names of TensorRT 8.5 and 10.x.

What it mirrors: the classes, enums and methods edge_mtl uses, with their real names and return
conventions (``None`` from a failed build or deserialisation, ``False`` from a failed parse or
launch, errors reported through the ``ILogger``); 8.5 needs ``EXPLICIT_BATCH`` for ONNX (its
parser rejects an implicit-batch network) and still has the binding-index API, 10.x has no
binding-index API and no ``max_workspace_size``; the ONNX parser checks operators and opset
against ``edge_mtl.export.trt_ops`` and reports the failing node's index; Q/DQ networks need the
INT8 flag, an FP32 network in INT8 needs a calibrator, which is driven like TensorRT's bindings
drive it (cache first, then ``get_batch`` until ``None``, reading a whole input tensor of device
memory, then the cache is written; an exception raised in a callback is printed and taken as "no
more batches" / "no cache", never propagated); DLA needs cores, a valid core and FP16/INT8;
engines only load in the same TensorRT version. The first logger given to a Builder or Runtime
receives every later message (TensorRT's logger is process-wide). ``create_timing_cache`` logs an
error and returns None for bytes it did not write (corrupt, or another version), and
``set_timing_cache`` returns False for a cache of another device. Build results are
``IHostMemory`` (buffer protocol and ``nbytes`` only), shapes are ``Dims`` (not tuples), and
8.5's ``nptype`` fails under NumPy >= 1.24 as 8.5.1-8.5.3 do (``np.bool``).

What it cannot mirror: real kernels, tactics and timings (the "engine" runs the embedded ONNX
through onnxruntime, rounding outputs through float16 when FP16 is on), layer fusion, which
layers DLA can run, and the binary formats of plans, timing and calibration caches.
"""

from __future__ import annotations

import enum
import hashlib
import json
import struct
import sys
import types
from typing import Any

import numpy as np
import onnx

from edge_mtl.compat import zip_strict
from edge_mtl.export.trt_ops import OPSET_RANGE, SUPPORTED_OPS
from tests.trt import stub_cudart

VERSIONS = {"8.5": "8.5.2.2", "10": "10.3.0.26"}
PLAN_MAGIC = b"STUBPLAN"
CACHE_MAGIC = b"STUBTC"
CACHE_DEVICE = "NVIDIA Stub GPU"  # the device properties a stub timing cache records
_ONNX_DTYPES = {onnx.TensorProto.FLOAT: "FLOAT", onnx.TensorProto.FLOAT16: "HALF",
                onnx.TensorProto.INT8: "INT8", onnx.TensorProto.INT32: "INT32", onnx.TensorProto.BOOL: "BOOL",
                onnx.TensorProto.UINT8: "UINT8", onnx.TensorProto.INT64: "INT64"}
# nvinfer1::DataType values; 8.5 has no FP8 (8.6), BF16 or INT64 (10.0), INT4 (10.1)
_DATA_TYPES = {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "UINT8": 5, "FP8": 6, "BF16": 7,
               "INT64": 8, "INT4": 9}
_NP_TYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_,
             "UINT8": np.uint8, "INT64": np.int64}


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class ILogger:
    Severity = Severity

    def __init__(self) -> None:
        self._base_initialised = True

    def log(self, severity: Severity, msg: str) -> None:
        raise NotImplementedError


class Logger(ILogger):
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = Severity

    def __init__(self, min_severity: Severity = Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity

    def log(self, severity: Severity, msg: str) -> None:
        if severity <= self.min_severity:
            print(f"[stub TensorRT] {msg}", file=sys.stderr)


def _require_base_init(obj: object, base: str) -> None:
    """pybind11 refuses a Python subclass whose __init__ skipped the base class's."""
    if not getattr(obj, "_base_initialised", False):
        raise TypeError(f"tensorrt.tensorrt.{base}.__init__() must be called when overriding __init__")


class IHostMemory:
    """Serialized data (a plan, a timing cache). The real one only offers the buffer protocol,
    ``nbytes`` and ``dtype``: no len(), slicing or bytes methods. The stub offers ``nbytes``,
    ``bytes(m)`` and, on Python >= 3.12, the buffer protocol (``memoryview(m)``)."""

    def __init__(self, data: bytes):
        self._data = bytes(data)

    @property
    def nbytes(self) -> int:
        return len(self._data)

    def __bytes__(self) -> bytes:
        return self._data

    def __buffer__(self, flags: int) -> memoryview:  # PEP 688 (Python 3.12+)
        return memoryview(self._data)


class Dims:
    """What shapes are in TensorRT: iterable, ``len`` and integer indexing; not a tuple or list."""

    def __init__(self, shape: Any):
        self._dims = tuple(int(d) for d in shape)

    def __len__(self) -> int:
        return len(self._dims)

    def __getitem__(self, index: int) -> int:
        if not isinstance(index, int) or not 0 <= index < len(self._dims):
            raise IndexError(f"Dims index {index!r} out of range for {len(self._dims)} dimensions")
        return self._dims[index]

    def __iter__(self):
        return iter(self._dims)

    def __repr__(self) -> str:
        return f"Dims({list(self._dims)})"


def read_plan(blob: bytes) -> dict[str, Any]:
    """The build record inside a stub plan (what the tests check)."""
    if not blob.startswith(PLAN_MAGIC):
        raise ValueError("not a stub plan")
    (size,) = struct.unpack("<I", blob[len(PLAN_MAGIC):len(PLAN_MAGIC) + 4])
    start = len(PLAN_MAGIC) + 4
    return {**json.loads(blob[start:start + size]), "_onnx": bytes(blob[start + size:])}


def make_tensorrt_stub(version: str = "10", *, fast_fp16: bool = True, fast_int8: bool = True,
                       dla_cores: int = 0) -> types.ModuleType:
    """A fake ``tensorrt`` module of generation ``"8.5"`` or ``"10"``."""
    full = VERSIONS[version]
    gen8 = version == "8.5"
    target = "tensorrt-8.5" if gen8 else "tensorrt-10"
    major, minor, patch = (int(p) for p in full.split(".")[:3])
    calib_header = f"TRT-{major * (1000 if gen8 else 10000) + minor * 100 + patch}-EntropyCalibration2"
    trt = types.ModuleType("tensorrt")
    trt.__version__ = full
    trt.ILogger, trt.Logger, trt.IHostMemory = ILogger, Logger, IHostMemory

    trt.NetworkDefinitionCreationFlag = enum.IntEnum(
        "NetworkDefinitionCreationFlag",
        ["EXPLICIT_BATCH", "EXPLICIT_PRECISION"] if gen8 else ["EXPLICIT_BATCH", "STRONGLY_TYPED"], start=0)
    flag_names = ["FP16", "INT8", "DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "TF32",
                  "SPARSE_WEIGHTS", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"]
    flag_names += ["STRICT_TYPES"] if gen8 else ["BF16", "FP8"]
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", flag_names, start=0)
    trt.MemoryPoolType = enum.IntEnum(
        "MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM", "DLA_GLOBAL_DRAM"], start=0)
    trt.DeviceType = enum.IntEnum("DeviceType", ["GPU", "DLA"], start=0)
    trt.TensorIOMode = enum.IntEnum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"], start=0)
    type_names = ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8"]
    type_names += [] if gen8 else ["FP8", "BF16", "INT64", "INT4"]
    trt.DataType = enum.IntEnum("DataType", {n: _DATA_TYPES[n] for n in type_names})
    trt.Dims = Dims
    trt.ErrorCode = enum.IntEnum(
        "ErrorCode", ["SUCCESS", "INTERNAL_ERROR", "MEM_ALLOC_FAILED", "MODEL_DESERIALIZE_FAILED",
                      "INVALID_VALUE", "INVALID_GRAPH", "INVALID_NODE", "UNSUPPORTED_GRAPH",
                      "UNSUPPORTED_NODE"], start=0)
    np_types = _NP_TYPES

    def nptype(dt: Any) -> type:
        if gen8:  # tensorrt/__init__.py of 8.5.1-8.5.3 builds its table with np.bool (NVIDIA/TensorRT#2557)
            raise AttributeError("module 'numpy' has no attribute 'bool'.\n`np.bool` was a deprecated alias "
                                 "for the builtin `bool`.")
        return np_types[trt.DataType(dt).name]

    trt.nptype = nptype
    trt.volume = lambda shape: int(np.prod(list(shape)))

    process: dict[str, Any] = {"logger": None}  # TensorRT's logger is a process-wide singleton

    def bind_logger(logger: ILogger) -> ILogger:
        """The logger every message goes to: the first one any Builder or Runtime was given."""
        _require_base_init(logger, "ILogger")
        if process["logger"] is None:
            process["logger"] = logger
        return process["logger"]

    def log(severity: Severity, msg: str) -> None:
        if process["logger"] is not None:
            process["logger"].log(severity, msg)

    class IInt8EntropyCalibrator2:
        def __init__(self) -> None:
            self._base_initialised = True

    trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2

    class ITensor:
        def __init__(self, name: str, shape: tuple[int, ...], dtype: Any):
            self.name, self.shape, self.dtype = name, Dims(shape), dtype

    class INetworkDefinition:
        def __init__(self, flags: int):
            explicit = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
            self.explicit_batch = not gen8 or bool(flags & explicit)
            self.inputs: list[ITensor] = []
            self.outputs: list[ITensor] = []
            self.onnx = b""
            self.has_qdq = False

        num_inputs = property(lambda self: len(self.inputs))
        num_outputs = property(lambda self: len(self.outputs))

        def get_input(self, i: int) -> ITensor:
            return self.inputs[i]

        def get_output(self, i: int) -> ITensor:
            return self.outputs[i]

    if gen8:
        INetworkDefinition.has_implicit_batch_dimension = property(lambda self: not self.explicit_batch)

    class ParserError:
        def __init__(self, code: Any, desc: str, node: int = -1, name: str = "", op: str = ""):
            self._code, self._desc, self._node, self._name, self._op = code, desc, node, name, op

        def code(self) -> Any:
            return self._code

        def desc(self) -> str:
            return self._desc

        def node(self) -> int:
            return self._node

        def file(self) -> str:
            return "ModelImporter.cpp"

        def line(self) -> int:
            return 0

        def func(self) -> str:
            return "parseGraph"

    if not gen8:  # IParserError::nodeName / nodeOperator arrived after 8.5
        ParserError.node_name = lambda self: self._name
        ParserError.node_operator = lambda self: self._op

    def to_dims(value_info: Any) -> tuple[int, ...]:
        return tuple(d.dim_value if d.HasField("dim_value") else -1
                     for d in value_info.type.tensor_type.shape.dim)

    def to_dtype(value_info: Any) -> Any:
        return trt.DataType[_ONNX_DTYPES[value_info.type.tensor_type.elem_type]]

    class OnnxParser:
        def __init__(self, network: INetworkDefinition, logger: ILogger):
            _require_base_init(logger, "ILogger")
            self.network, self.logger, self.errors = network, logger, []

        num_errors = property(lambda self: len(self.errors))

        def get_error(self, i: int) -> ParserError:
            return self.errors[i]

        def clear_errors(self) -> None:
            self.errors = []

        def fail(self, error: ParserError) -> bool:
            self.errors.append(error)
            self.logger.log(Severity.ERROR, f"ModelImporter: {error.desc()}")
            return False

        def parse(self, model: bytes, path: str | None = None) -> bool:
            if not self.network.explicit_batch:
                return self.fail(ParserError(trt.ErrorCode.INVALID_VALUE,
                                             "This version of the ONNX parser only supports TensorRT "
                                             "INetworkDefinitions with an explicit batch dimension. Please "
                                             "ensure the network was initialized with the kEXPLICIT_BATCH "
                                             "flag."))
            try:
                proto = onnx.load_from_string(bytes(model))
            except Exception as e:
                return self.fail(ParserError(trt.ErrorCode.MODEL_DESERIALIZE_FAILED,
                                             f"Failed to parse ONNX: {e}"))
            opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
            low, high = OPSET_RANGE[target]
            if not low <= opset <= high:
                return self.fail(ParserError(trt.ErrorCode.UNSUPPORTED_GRAPH,
                                             f"Unsupported ONNX opset {opset} (supported {low} to {high})"))
            for i, node in enumerate(proto.graph.node):
                if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED_OPS[target]:
                    return self.fail(ParserError(trt.ErrorCode.UNSUPPORTED_NODE,
                                                 f"No importer registered for op: {node.op_type}",
                                                 i, node.name, node.op_type))
            weights = {t.name for t in proto.graph.initializer}
            # TensorRT (8.5+) reads a UINT8 network input only through a Cast straight after it
            # (NVIDIA/TensorRT#3985): not even a Transpose or Reshape may come first.
            for v in proto.graph.input:
                if v.name in weights or v.type.tensor_type.elem_type != onnx.TensorProto.UINT8:
                    continue
                for i, node in enumerate(proto.graph.node):
                    if v.name in node.input and node.op_type != "Cast":
                        return self.fail(ParserError(
                            trt.ErrorCode.UNSUPPORTED_NODE,
                            f"UINT8 tensor {v.name} may only be the input of a Cast layer", i, node.name,
                            node.op_type))
            inferred = onnx.shape_inference.infer_shapes(proto)
            self.network.inputs = [ITensor(v.name, to_dims(v), to_dtype(v))
                                   for v in proto.graph.input if v.name not in weights]
            self.network.outputs = [ITensor(v.name, to_dims(v), to_dtype(v)) for v in inferred.graph.output]
            self.network.onnx = bytes(model)
            self.network.has_qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear")
                                       for n in proto.graph.node)
            return True

        def parse_from_file(self, path: str) -> bool:
            with open(path, "rb") as f:
                return self.parse(f.read(), path)

    class ITimingCache:
        def __init__(self, device: str = CACHE_DEVICE, entries: set[str] | None = None):
            self.version, self.device, self.entries = full, device, set(entries or ())

        def serialize(self) -> IHostMemory:
            body = {"version": self.version, "device": self.device, "entries": sorted(self.entries)}
            return IHostMemory(CACHE_MAGIC + json.dumps(body).encode())

        def combine(self, other: ITimingCache, ignore_mismatch: bool) -> bool:
            if other.version != self.version and not ignore_mismatch:
                return False
            self.entries.update(other.entries)
            return True

        def reset(self) -> bool:
            self.entries = set()
            return True

    class IBuilderConfig:
        def __init__(self) -> None:
            self.flags: set[str] = set()
            self.pools: dict[str, int] = {}
            self.default_device_type = trt.DeviceType.GPU
            self.DLA_core = -1
            self._calibrator = None
            self._timing_cache: ITimingCache | None = None

        def set_flag(self, flag: Any) -> None:
            self.flags.add(trt.BuilderFlag(flag).name)

        def clear_flag(self, flag: Any) -> None:
            self.flags.discard(trt.BuilderFlag(flag).name)

        def get_flag(self, flag: Any) -> bool:
            return trt.BuilderFlag(flag).name in self.flags

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            self.pools[trt.MemoryPoolType(pool).name] = int(size)

        def get_memory_pool_limit(self, pool: Any) -> int:
            return self.pools.get(trt.MemoryPoolType(pool).name, 0)

        @property
        def int8_calibrator(self) -> Any:
            return self._calibrator

        @int8_calibrator.setter
        def int8_calibrator(self, calibrator: Any) -> None:
            _require_base_init(calibrator, "IInt8EntropyCalibrator2")
            self._calibrator = calibrator

        def create_timing_cache(self, blob: bytes) -> ITimingCache | None:
            """Bytes this TensorRT version did not write: an error is logged, None returned."""
            blob = bytes(blob)
            if not blob:
                return ITimingCache()
            try:
                if not blob.startswith(CACHE_MAGIC):
                    raise ValueError("magic tag does not match")
                data = json.loads(blob[len(CACHE_MAGIC):])
                if data["version"] != full:
                    raise ValueError(f"the timing cache was created by TensorRT {data['version']}, "
                                     f"this is TensorRT {full}")
                return ITimingCache(data["device"], set(data["entries"]))
            except (ValueError, KeyError, TypeError) as e:
                log(Severity.ERROR, f"1: [timingCache.cpp::deserialize] Error Code 1: Serialization "
                                    f"(Serialization assertion failed: {e})")
                return None

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            if not isinstance(cache, ITimingCache):
                raise TypeError("set_timing_cache(): incompatible function arguments. The following "
                                "argument types are supported: (cache: tensorrt.ITimingCache, "
                                f"ignore_mismatch: bool); invoked with {type(cache).__name__}")
            if cache.device != CACHE_DEVICE and not ignore_mismatch:
                log(Severity.WARNING, "Timing cache verification header mismatch: device properties differ")
                return False
            self._timing_cache = cache
            return True

        def get_timing_cache(self) -> ITimingCache | None:
            return self._timing_cache

    if gen8:
        IBuilderConfig.max_workspace_size = 0  # deprecated in 8.x, removed in 10.0

    def callback(method: str, call: Any, failed: Any) -> Any:
        """Call a Python calibrator method the way the bindings' trampoline does: whatever it raises
        is printed and replaced by ``failed`` (pybind11's error_already_set is a std::exception)."""
        try:
            return call()
        except BaseException as e:
            print(f"[ERROR] Exception caught in {method}(): {type(e).__name__}: {e}", file=sys.stderr)
            return failed

    def calibrate(calibrator: Any, network: INetworkDefinition) -> dict[str, Any] | None:
        """Drive the calibrator the way TensorRT does; None (after logging) when it fails."""
        if callback("get_batch_size", calibrator.get_batch_size, -1) != 1:
            log(Severity.ERROR, "stub: explicit-batch networks calibrate with batch size 1")
            return None
        cache = callback("read_calibration_cache", calibrator.read_calibration_cache, None)
        if cache is not None and bytes(cache).startswith(calib_header.encode()):
            return {"cache_read": True, "batches": 0}
        tensor = network.inputs[0]
        dtype = np.dtype(np_types[trt.DataType(tensor.dtype).name])
        nbytes = trt.volume(tensor.shape) * dtype.itemsize  # the whole input tensor, batch included

        def get_batch() -> list[int] | None:
            pointers = calibrator.get_batch([tensor.name])
            return [int(p) for p in pointers] if pointers else None  # std::vector<size_t>; empty ends it

        amax, batches = 0.0, 0
        while (pointers := callback("get_batch", get_batch, None)) is not None:
            x = np.frombuffer(stub_cudart.device_read(pointers[0], nbytes), dtype)
            amax, batches = max(amax, float(np.abs(x).max())), batches + 1
        if batches == 0:
            log(Severity.ERROR, "Calibration failure occurred with no scaling factors detected.")
            return None
        scale = struct.pack(">f", amax / 127.0).hex()
        data = memoryview(f"{calib_header}\n{tensor.name}: {scale}\n".encode())
        callback("write_calibration_cache", lambda: calibrator.write_calibration_cache(data), None)
        return {"cache_read": False, "batches": batches}

    class Builder:
        platform_has_fast_fp16 = fast_fp16
        platform_has_fast_int8 = fast_int8
        num_DLA_cores = dla_cores

        def __init__(self, logger: ILogger):
            bind_logger(logger)

        logger = property(lambda self: process["logger"])  # where its messages go

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            return INetworkDefinition(flags)

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def error(self, msg: str) -> None:
            log(Severity.ERROR, msg)

        def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> Any:
            flags = config.flags
            if not network.outputs:
                return self.error("Network must have at least one output")
            if network.has_qdq and "INT8" not in flags:
                return self.error("Error Code 4: Internal Error (Int8 precision has been set for a layer or "
                                  "layer output, but int8 is not configured in the builder)")
            if config.default_device_type == trt.DeviceType.DLA:
                if not 0 <= config.DLA_core < self.num_DLA_cores:
                    return self.error(f"Cannot create DLA engine, {config.DLA_core} not available")
                if not flags & {"FP16", "INT8"}:
                    return self.error("DLA supports only FP16 and INT8 precision")
            calibration = None
            if "INT8" in flags and not network.has_qdq:
                if config.int8_calibrator is None:
                    return self.error("Calibration failure occurred with no scaling factors detected. "
                                      "This could be due to no int8 calibrator or insufficient custom scales")
                calibration = calibrate(config.int8_calibrator, network)
                if calibration is None:
                    return None
            key = hashlib.sha256(network.onnx + json.dumps(sorted(flags)).encode()).hexdigest()
            cache = config.get_timing_cache()
            timing_cache_hit = cache is not None and key in cache.entries
            if cache is not None:
                cache.entries.add(key)
            io = [{"name": t.name, "mode": mode, "shape": list(t.shape), "dtype": trt.DataType(t.dtype).name}
                  for mode, tensors in (("INPUT", network.inputs), ("OUTPUT", network.outputs))
                  for t in tensors]
            record = {"version": full, "flags": sorted(flags), "pools": config.pools,
                      "device_type": trt.DeviceType(config.default_device_type).name,
                      "dla_core": config.DLA_core, "calibration": calibration,
                      "timing_cache_hit": timing_cache_hit, "io": io}
            header = json.dumps(record).encode()
            return IHostMemory(PLAN_MAGIC + struct.pack("<I", len(header)) + header + network.onnx)

    if gen8:
        Builder.max_batch_size = 1  # implicit batch only, gone in 10.0

    class IExecutionContext:
        def __init__(self, engine: ICudaEngine):
            self.engine, self.addresses = engine, {}

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            if name not in self.engine.tensors:
                log(Severity.ERROR, f"setTensorAddress: no tensor named {name}")
                return False
            self.addresses[name] = int(ptr)
            return True

        def get_tensor_address(self, name: str) -> int:
            return self.addresses.get(name, 0)

        def execute_async_v3(self, stream_handle: int) -> bool:
            if not isinstance(stream_handle, int):
                raise TypeError("execute_async_v3(): incompatible function arguments (stream_handle: int)")
            missing = [n for n in self.engine.tensors if n not in self.addresses]
            if missing:
                log(Severity.ERROR, f"enqueueV3: address of tensor(s) {missing} not set")
                return False
            return stub_cudart.enqueue(stream_handle, self.engine.run_from(dict(self.addresses)))

    if gen8:
        def execute_async_v2(self: IExecutionContext, bindings: list[int], stream_handle: int) -> bool:
            for name, ptr in zip_strict(self.engine.tensors, bindings):
                self.set_tensor_address(name, ptr)
            return self.execute_async_v3(stream_handle)

        IExecutionContext.execute_async_v2 = execute_async_v2

    class ICudaEngine:
        def __init__(self, record: dict[str, Any], dla_core: int = -1):
            self.record = record
            # A DLA engine runs on the runtime's DLA core (core 0 when the runtime sets none).
            self.dla_core = max(dla_core, 0) if record["device_type"] == "DLA" else None
            self.tensors = {t["name"]: t for t in record["io"]}
            self.session = None

        num_io_tensors = property(lambda self: len(self.tensors))

        def get_tensor_name(self, i: int) -> str:
            return list(self.tensors)[i]

        def get_tensor_mode(self, name: str) -> Any:
            t = self.tensors.get(name)
            return trt.TensorIOMode[t["mode"]] if t else trt.TensorIOMode.NONE

        def get_tensor_shape(self, name: str) -> Dims:
            return Dims(self.tensors[name]["shape"])

        def get_tensor_dtype(self, name: str) -> Any:
            return trt.DataType[self.tensors[name]["dtype"]]

        def create_execution_context(self) -> IExecutionContext:
            return IExecutionContext(self)

        def run_from(self, addresses: dict[str, int]) -> Any:
            """The work an engine launch queues: device inputs -> onnxruntime -> device outputs."""

            def work() -> None:
                import onnxruntime as ort

                if self.session is None:
                    opts = ort.SessionOptions()
                    opts.intra_op_num_threads = 1
                    self.session = ort.InferenceSession(self.record["_onnx"], opts,
                                                        providers=["CPUExecutionProvider"])
                feeds = {}
                for t in self.record["io"]:
                    if t["mode"] == "INPUT":
                        dtype = np.dtype(np_types[t["dtype"]])
                        nbytes = trt.volume(t["shape"]) * dtype.itemsize
                        raw = stub_cudart.device_read(addresses[t["name"]], nbytes)
                        feeds[t["name"]] = np.frombuffer(raw, dtype).reshape(t["shape"])
                outputs = [t for t in self.record["io"] if t["mode"] == "OUTPUT"]
                values = self.session.run([t["name"] for t in outputs], feeds)
                for t, value in zip_strict(outputs, values):
                    if "FP16" in self.record["flags"]:
                        value = value.astype(np.float16)
                    out = np.ascontiguousarray(value, dtype=np_types[t["dtype"]])
                    stub_cudart.device_write(addresses[t["name"]], out.tobytes())

            return work

    if gen8:  # the binding-index API, deprecated in 8.5 and removed in 10.0
        ICudaEngine.num_bindings = property(lambda self: len(self.tensors))
        ICudaEngine.get_binding_index = lambda self, name: list(self.tensors).index(name)
        ICudaEngine.binding_is_input = lambda self, i: self.record["io"][i]["mode"] == "INPUT"
        ICudaEngine.get_binding_shape = lambda self, i: Dims(self.record["io"][i]["shape"])

    class Runtime:
        def __init__(self, logger: ILogger):
            bind_logger(logger)
            self.DLA_core = -1

        def deserialize_cuda_engine(self, blob: bytes) -> ICudaEngine | None:
            try:
                record = read_plan(bytes(blob))
            except ValueError:
                log(Severity.ERROR, "Serialization assertion magicTagRead == kMAGIC_TAG failed.")
                return None
            if record["version"] != full:
                log(Severity.ERROR, "The engine plan file is not compatible with this version of "
                                f"TensorRT, expecting library version {full} got {record['version']}, "
                                "please rebuild.")
                return None
            return ICudaEngine(record, self.DLA_core)

    trt.ITensor, trt.INetworkDefinition, trt.OnnxParser, trt.ParserError = (
        ITensor, INetworkDefinition, OnnxParser, ParserError)
    trt.ITimingCache, trt.IBuilderConfig, trt.Builder = ITimingCache, IBuilderConfig, Builder
    trt.ICudaEngine, trt.IExecutionContext, trt.Runtime = ICudaEngine, IExecutionContext, Runtime
    return trt

"""Lazy imports, version gates and the stub's fidelity to the two API generations."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from edge_mtl.trt.api import (
    device_info,
    import_cudart,
    import_tensorrt,
    network_flags,
    numpy_dtype,
    require_version,
    shared_logger,
)
from tests.trt.conftest import install_cudart
from tests.trt.models import make_tiny_onnx
from tests.trt.stub_cudart import make_cudart_stub
from tests.trt.stub_tensorrt import read_plan


def test_missing_tensorrt_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(RuntimeError, match=r"TensorRT Python bindings not found: on Jetson .*JetPack "
                                           r"\(python3-libnvinfer.*on x86 pip install tensorrt"):
        import_tensorrt()


def test_missing_cuda_python_says_how_to_get_it(monkeypatch):
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(RuntimeError, match=r"cuda-python not found.*pip install cuda-python"):
        import_cudart()


@pytest.mark.parametrize("layout", ["12.6.1", "13", "12.6.0"])
def test_cudart_from_every_cuda_python_layout(monkeypatch, layout):
    """12.6.1+ (and 13.x): ``cuda.bindings.runtime``, taken first, so the deprecated ``cuda.cudart``
    of 12.6.1-12.9 is never touched (no FutureWarning); 12.6.0 and older: only ``cuda.cudart``."""
    stub = make_cudart_stub()
    install_cudart(monkeypatch, stub, layout)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert import_cudart() is stub
    if layout == "12.6.0":  # the fallback was needed: the stub has no cuda.bindings there
        with pytest.raises(ImportError):
            from cuda.bindings import runtime  # noqa: F401


def test_no_gpu_is_a_clear_error(monkeypatch):
    install_cudart(monkeypatch, make_cudart_stub(gpu=False))
    with pytest.raises(RuntimeError, match=r"no usable CUDA GPU.*cudaErrorNoDevice"):
        device_info(import_cudart())


def test_device_info(cudart):
    dev = device_info(cudart)
    assert (dev.name, dev.compute_capability) == ("NVIDIA Stub GPU", "8.7")


def test_explicit_batch_only_where_needed(trt, tiny_onnx):
    """8.x: the ONNX parser rejects an implicit-batch network; 10.x: networks are always explicit."""
    logger = trt.Logger()
    builder = trt.Builder(logger)
    plain = builder.create_network(0)
    parsed_plain = trt.OnnxParser(plain, logger).parse_from_file(str(tiny_onnx))
    assert parsed_plain is (trt.__version__.startswith("10."))
    assert network_flags(trt) == (1 if trt.__version__.startswith("8.") else 0)
    assert trt.OnnxParser(builder.create_network(network_flags(trt)), logger).parse_from_file(str(tiny_onnx))


def test_stub_generations_differ_like_the_real_ones(trt):
    engine_api = ("get_binding_index", "num_bindings", "binding_is_input")
    if trt.__version__.startswith("10."):
        assert not any(hasattr(trt.ICudaEngine, a) for a in engine_api)
        assert not hasattr(trt.IExecutionContext, "execute_async_v2")
        assert not hasattr(trt.IBuilderConfig, "max_workspace_size")
        assert hasattr(trt.ParserError, "node_name")
    else:
        assert all(hasattr(trt.ICudaEngine, a) for a in engine_api)
        assert hasattr(trt.IExecutionContext, "execute_async_v2")
    assert hasattr(trt.IExecutionContext, "execute_async_v3")


@pytest.mark.parametrize(("version", "build", "error"), [
    ("8.4.3.1", False, "too old"), ("11.0.0.1", True, "removed the FP16/INT8 builder flags")])
def test_version_gates(trt, monkeypatch, version, build, error):
    monkeypatch.setattr(trt, "__version__", version)
    with pytest.raises(RuntimeError, match=error):
        require_version(trt, build=build)


def test_eleven_still_runs_engines(trt, monkeypatch):
    monkeypatch.setattr(trt, "__version__", "11.0.0.1")
    require_version(trt)  # name-based I/O is unchanged in 11.x


def test_numpy_dtypes_from_our_own_table(trt):
    """Not trt.nptype (np.bool in 8.5.1-8.5.3); members looked up by name, so 8.5 (no INT64) works."""
    want = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_,
            "UINT8": np.uint8, "INT64": np.int64}
    for member in trt.DataType:
        expected = want.get(member.name)
        assert numpy_dtype(trt, member) == (np.dtype(expected) if expected else None), member.name
    assert hasattr(trt.DataType, "INT64") is trt.__version__.startswith("10.")
    if trt.__version__.startswith("8."):
        with pytest.raises(AttributeError, match=r"np\.bool"):
            trt.nptype(trt.DataType.BOOL)  # as 8.5.2 does under NumPy >= 1.24


def test_one_logger_per_process(trt):
    assert shared_logger(trt) is shared_logger(trt)


def test_stub_binds_the_first_logger_process_wide(trt):
    first, second = shared_logger(trt), trt.Logger()
    trt.Builder(first)
    builder = trt.Builder(second)
    mark = first.mark()
    builder.error("from the second builder")
    trt.Runtime(second).deserialize_cuda_engine(b"garbage")
    assert first.errors[mark:] == ["from the second builder",
                                   "Serialization assertion magicTagRead == kMAGIC_TAG failed."]


def test_stub_results_are_host_memory_and_dims_like_the_real_ones(trt, cudart, tiny_onnx):
    """IHostMemory: buffer protocol and nbytes only; shapes: Dims, not tuples or lists."""
    logger = shared_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    assert trt.OnnxParser(network, logger).parse_from_file(str(tiny_onnx))
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    blob = builder.build_serialized_network(network, config)
    assert isinstance(blob, trt.IHostMemory) and not isinstance(blob, (bytes, bytearray))
    assert blob.nbytes == len(bytes(blob)) and not hasattr(blob, "tobytes")
    with pytest.raises(TypeError):
        len(blob)
    with pytest.raises(TypeError):
        blob[:4]
    engine = trt.Runtime(logger).deserialize_cuda_engine(blob)
    for shape in (engine.get_tensor_shape("image"), network.get_input(0).shape):
        assert isinstance(shape, trt.Dims) and not isinstance(shape, (tuple, list))
        assert (len(shape), shape[0], list(shape)) == (4, 1, [1, 3, 64, 128])


def test_stub_calibrator_callbacks_fail_quietly_like_the_bindings(trt, cudart, tmp_path, capsys):
    """An exception raised in get_batch is printed and taken as "no more batches", one raised in
    write_calibration_cache is printed and dropped: the build goes on with what it has."""
    logger = shared_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    assert trt.OnnxParser(network, logger).parse_from_file(str(make_tiny_onnx(tmp_path / "t.onnx")))
    device = cudart.cudaMalloc(4 * 3 * 64 * 128)[1]

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.calls = 0

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            self.calls += 1
            if self.calls == 3:
                raise ValueError("unreadable image")
            return [device]

        def read_calibration_cache(self):
            return None

        def write_calibration_cache(self, data):
            raise OSError("disk full")

    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.INT8)
    config.int8_calibrator = Calibrator()
    record = read_plan(bytes(builder.build_serialized_network(network, config)))
    assert record["calibration"] == {"cache_read": False, "batches": 2}
    err = capsys.readouterr().err
    assert "[ERROR] Exception caught in get_batch(): ValueError: unreadable image" in err
    assert "[ERROR] Exception caught in write_calibration_cache(): OSError: disk full" in err
    cudart.cudaFree(device)

"""Lazy imports, version gates and the stub's fidelity to the two API generations."""

from __future__ import annotations

import sys
import types

import pytest

from edge_mtl.trt.api import device_info, import_cudart, import_tensorrt, network_flags, require_version
from tests.trt.conftest import install_cudart
from tests.trt.stub_cudart import make_cudart_stub


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


def test_cudart_from_new_and_old_cuda_python(monkeypatch):
    stub = make_cudart_stub()
    install_cudart(monkeypatch, stub)
    assert import_cudart() is stub  # cuda-python >= 12.6: cuda.bindings.runtime
    old = types.ModuleType("cuda")
    old.__path__ = []
    old.cudart = stub
    monkeypatch.setitem(sys.modules, "cuda", old)
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)
    assert import_cudart() is stub  # older cuda-python: cuda.cudart


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

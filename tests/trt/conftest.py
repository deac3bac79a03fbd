"""Stub TensorRT (8.5 and 10.x generations) and cuda-python installed in sys.modules."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from tests.helpers import write_random_frames
from tests.trt.models import make_tiny_onnx
from tests.trt.stub_cudart import make_cudart_stub
from tests.trt.stub_tensorrt import make_tensorrt_stub


def install_cudart(monkeypatch: pytest.MonkeyPatch, stub: types.ModuleType) -> None:
    """Make ``from cuda.bindings import runtime`` return ``stub`` (whether or not the real
    cuda-python was imported before)."""
    bindings = types.ModuleType("cuda.bindings")
    bindings.__path__ = []
    bindings.runtime = stub
    cuda = types.ModuleType("cuda")
    cuda.__path__ = []
    cuda.bindings = bindings
    for name, module in (("cuda", cuda), ("cuda.bindings", bindings), ("cuda.bindings.runtime", stub)):
        monkeypatch.setitem(sys.modules, name, module)


@pytest.fixture(params=["8.5", "10"])
def trt(request, monkeypatch) -> types.ModuleType:
    """The stub ``tensorrt`` of one API generation (tests using it run once per generation)."""
    stub = make_tensorrt_stub(request.param, dla_cores=2)
    monkeypatch.setitem(sys.modules, "tensorrt", stub)
    return stub


@pytest.fixture
def cudart(monkeypatch) -> types.ModuleType:
    stub = make_cudart_stub()
    install_cudart(monkeypatch, stub)
    return stub


@pytest.fixture
def tiny_onnx(tmp_path) -> Path:
    return make_tiny_onnx(tmp_path / "tiny.onnx")


@pytest.fixture
def qdq_onnx(tmp_path) -> Path:
    return make_tiny_onnx(tmp_path / "tiny_int8.onnx", qdq=True)


@pytest.fixture
def calib_folder(tmp_path) -> Path:
    """Five small frames: a calibration set given as a folder."""
    return write_random_frames(tmp_path / "frames", 5, (72, 128))

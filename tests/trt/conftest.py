"""Stub TensorRT (8.5 and 10.x generations) and cuda-python installed in sys.modules."""

from __future__ import annotations

import sys
import types
import warnings
from pathlib import Path

import pytest

from tests.helpers import write_random_frames
from tests.trt.models import make_tiny_onnx
from tests.trt.stub_cudart import make_cudart_stub
from tests.trt.stub_tensorrt import make_tensorrt_stub


def install_cudart(monkeypatch: pytest.MonkeyPatch, stub: types.ModuleType, layout: str = "12.6.1") -> None:
    """Make cuda-python's runtime module ``stub`` (whether or not the real cuda-python was imported
    before), in the module layout of a cuda-python release:

    - ``"12.6.1"`` (12.6.1 to 12.9): ``cuda.bindings.runtime``, and the old ``cuda.cudart`` kept
      for compatibility, with a FutureWarning (the stub warns when the attribute is taken);
    - ``"13"``: ``cuda.bindings.runtime`` only;
    - ``"12.6.0"`` (and older): ``cuda.cudart`` only, no ``cuda.bindings`` package.
    """
    cuda = types.ModuleType("cuda")
    cuda.__path__ = []  # a package whose submodules are only those put in sys.modules here
    for name in ("cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    if layout in ("12.6.1", "13"):
        bindings = types.ModuleType("cuda.bindings")
        bindings.__path__ = []
        bindings.runtime = stub
        cuda.bindings = bindings
        monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", stub)
    if layout == "12.6.1":
        def deprecated(name: str) -> types.ModuleType:
            if name != "cudart":
                raise AttributeError(name)
            warnings.warn("The cuda.cudart module is deprecated and will be removed in a future release, "
                          "please switch to use the cuda.bindings.runtime module instead.", FutureWarning,
                          stacklevel=2)
            return stub

        cuda.__getattr__ = deprecated
    elif layout == "12.6.0":
        cuda.cudart = stub
        monkeypatch.setitem(sys.modules, "cuda.cudart", stub)
    elif layout != "13":
        raise ValueError(f"unknown cuda-python layout {layout!r}")
    monkeypatch.setitem(sys.modules, "cuda", cuda)


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

"""A real engine build and run, wherever ``import tensorrt`` works and a GPU is present."""

from __future__ import annotations

import numpy as np
import pytest

from tests.trt.models import SIZE, expected_outputs, make_tiny_onnx

pytestmark = pytest.mark.tensorrt


def test_build_and_run_fp16(tmp_path):
    tensorrt = pytest.importorskip("tensorrt")
    from edge_mtl.runtime.tensorrt_backend import TensorRTBackend
    from edge_mtl.trt.api import device_info, import_cudart
    from edge_mtl.trt.build import build_engine
    from edge_mtl.trt.sidecar import check_sidecar

    try:
        gpu = device_info(import_cudart())
    except RuntimeError as e:
        pytest.skip(str(e))
    onnx_path = make_tiny_onnx(tmp_path / "tiny.onnx")
    cache = tmp_path / "timing.cache"
    engine, side = build_engine(onnx_path, tmp_path / "tiny.engine", precision="fp16", workspace_mb=256,
                                timing_cache=cache, progress=False)
    assert cache.stat().st_size > 0
    assert check_sidecar(engine, tensorrt.__version__, gpu.name, onnx_path) == side
    x = np.random.default_rng(0).normal(size=(2, 3, *SIZE)).astype(np.float32)
    with TensorRTBackend(engine) as backend:
        out = backend.infer(x)
    want = expected_outputs(x)
    for name, value in want.items():
        np.testing.assert_allclose(out[name], value, rtol=1e-2, atol=1e-2)

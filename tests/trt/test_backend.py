"""TensorRTBackend round trips through pinned host buffers, device buffers and one stream."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edge_mtl.runtime.backend import open_backend
from edge_mtl.runtime.tensorrt_backend import TensorRTBackend
from edge_mtl.trt.build import build_engine
from edge_mtl.trt.sidecar import sidecar_path
from edge_mtl.types import OUTPUT_NAMES
from tests.trt.conftest import install_cudart
from tests.trt.models import SIZE, expected_outputs
from tests.trt.stub_cudart import make_cudart_stub
from tests.trt.stub_tensorrt import make_tensorrt_stub


@pytest.fixture
def engine(trt, cudart, tiny_onnx, tmp_path):
    return build_engine(tiny_onnx, tmp_path / "tiny.engine", progress=False)[0]


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, *SIZE)).astype(np.float32)


def test_round_trip(engine, cudart):
    with TensorRTBackend(engine) as backend:
        assert (backend.info.resize, backend.info.canonical_focal) == ("crop", 100.0)  # from the sidecar
        x = images(1)
        out = backend.infer(x)
        want = expected_outputs(x)
        assert list(out) == list(OUTPUT_NAMES)
        for name in OUTPUT_NAMES:
            assert out[name].dtype == np.float32 and out[name].shape == want[name].shape
            np.testing.assert_allclose(out[name], want[name], rtol=2e-3, atol=2e-3)  # fp16 rounding
        assert cudart.memory.pageable_async_copies == 0  # all async copies went through pinned memory
    assert cudart.memory.live() == {"device": 0, "pinned": 0, "streams": 0, "events": 0}


def test_two_frames_in_flight_keep_their_own_buffers(engine, cudart):
    """Submit two frames before collecting either: each gets its own outputs (a single pinned
    input buffer would hand the first frame's queued copy the second frame's data)."""
    with TensorRTBackend(engine) as backend:
        assert backend.max_in_flight == 2
        x = images(3, seed=4)
        first, second = backend.submit(x[:1]), backend.submit(x[1:2])
        with pytest.raises(RuntimeError, match="2 frames are already in flight"):
            backend.submit(x[2:])
        want = expected_outputs(x)
        out1 = backend.collect(first)
        third = backend.submit(x[2:])  # reuses the first slot while the second frame is in flight
        out2, out3 = backend.collect(second), backend.collect(third)
        for k, out in enumerate((out1, out2, out3)):
            np.testing.assert_allclose(out["depth"], want["depth"][k:k + 1], rtol=2e-3, atol=2e-3)
        assert not np.allclose(out1["depth"], out2["depth"])
        with pytest.raises(RuntimeError, match="already collected"):
            backend.collect(first)
        assert cudart.memory.pageable_async_copies == 0


def test_close_with_frames_in_flight(engine, cudart):
    backend = TensorRTBackend(engine)
    backend.submit(images(1))
    backend.submit(images(1, seed=2))
    backend.close()  # synchronises the stream before freeing what its copies write to
    assert cudart.memory.live() == {"device": 0, "pinned": 0, "streams": 0, "events": 0}
    assert cudart.memory.abandoned_work == 0


def test_waits_sleep_instead_of_spinning(engine, cudart):
    with TensorRTBackend(engine):
        flags = [e["flags"] for e in cudart.memory.events.values()]
        assert len(flags) == 2 and all(f & cudart.cudaEventBlockingSync for f in flags)


def test_an_engine_that_reads_uint8_frames(trt, cudart, tmp_path):
    """A ``--uint8-input`` model: the engine takes the fitted BGR frame and normalises it itself."""
    from edge_mtl.runtime.preprocess import normalize
    from tests.trt.models import make_tiny_onnx

    onnx_path = make_tiny_onnx(tmp_path / "u8.onnx", uint8=True)
    path, _ = build_engine(onnx_path, tmp_path / "u8.engine", progress=False)
    bgr = np.random.default_rng(2).integers(0, 256, (1, *SIZE, 3), dtype=np.uint8)
    with TensorRTBackend(path) as backend:
        assert backend.info.input_format == "uint8"
        out = backend.collect(backend.submit(bgr))
        want = expected_outputs(normalize(bgr[0])[None])
        np.testing.assert_allclose(out["depth"], want["depth"], rtol=2e-3, atol=2e-3)  # fp16
        with pytest.raises(ValueError, match="expected uint8 input"):
            backend.infer(bgr.astype(np.float32))
    with pytest.raises(ValueError, match="implicit INT8 would quantize its normalising convolution"):
        build_engine(onnx_path, tmp_path / "u8_int8.engine", precision="int8", calib=tmp_path, progress=False)


def test_a_uint8_input_must_go_straight_into_a_cast(trt, cudart, tmp_path):
    """As TensorRT's parser: a uint8 input read by anything but a Cast is refused."""
    import onnx

    from tests.trt.models import make_tiny_onnx

    path = make_tiny_onnx(tmp_path / "u8.onnx", uint8=True)
    model = onnx.load(path)
    nodes = {n.name: n for n in model.graph.node}
    nodes["/Transpose"].input[0], nodes["/Cast"].input[0] = "image", "xt0"
    nodes["/Transpose"].output[0], nodes["/Cast"].output[0] = "xt0", "xt"
    model.graph.node.remove(nodes["/Transpose"])
    model.graph.node.insert(0, nodes["/Transpose"])
    onnx.save(model, path)
    with pytest.raises(ValueError, match="UINT8 tensor image may only be the input of a Cast layer"):
        build_engine(path, tmp_path / "bad.engine", progress=False)


def test_dla_engine_runs_on_the_core_it_was_built_for(trt, cudart, tiny_onnx, tmp_path):
    path, _ = build_engine(tiny_onnx, tmp_path / "dla.engine", dla_core=1, progress=False)
    with TensorRTBackend(path) as backend:
        assert backend._engine.dla_core == 1
        assert backend.describe()["runtime"]["dla_core"] == 1


def test_close_frees_everything_even_when_one_release_fails(engine, cudart, monkeypatch):
    backend = TensorRTBackend(engine)
    backend.infer(images(1))
    real_free = cudart.cudaFree
    calls = []

    def failing_free(ptr):
        calls.append(ptr)
        if len(calls) == 1:
            return (cudart.cudaError_t.cudaErrorInvalidValue,)
        return real_free(ptr)

    monkeypatch.setattr(cudart, "cudaFree", failing_free)
    with pytest.raises(RuntimeError, match="cudaFree"):
        backend.close()
    live = cudart.memory.live()
    assert live == {"device": 1, "pinned": 0, "streams": 0, "events": 0}  # only the failed one


def test_batches_larger_than_the_engine_run_frame_by_frame(engine):
    with TensorRTBackend(engine) as backend:
        x = images(3, seed=1)
        first = backend.infer(x[:1])["depth"]
        out = backend.infer(x)
        assert backend.batch == 1 and out["depth"].shape == (3, 1, SIZE[0] // 4, SIZE[1] // 4)
        np.testing.assert_allclose(out["depth"], expected_outputs(x)["depth"], rtol=2e-3, atol=2e-3)
        np.testing.assert_array_equal(first, out["depth"][:1])  # results are copies, not the reused buffers


def test_info_and_description(engine, trt):
    with TensorRTBackend(engine) as backend:
        assert backend.info.input_size == SIZE and backend.info.class_names == ("car", "truck", "pedestrian")
        assert backend.info.path == str(engine) and backend.info.checkpoint_sha256 == "ab" * 32
        assert backend.precision == "fp16" and backend.device == "cuda"
        assert backend.describe() == {"backend": "tensorrt", "precision": "fp16", "device": "cuda",
                                      "runtime": {"tensorrt_version": trt.__version__,
                                                  "gpu": "NVIDIA Stub GPU", "dla_core": None}}


def test_open_backend_picks_tensorrt_for_engines(engine):
    with open_backend(engine) as backend:
        assert isinstance(backend, TensorRTBackend)


def test_wrong_input_shape(engine):
    with TensorRTBackend(engine) as backend, pytest.raises(ValueError, match=r"expected input \[B, 3, 64,"):
        backend.infer(np.zeros((1, 3, 32, 32), np.float32))


def test_stale_engine_refused(engine, tiny_onnx):
    tiny_onnx.write_bytes(tiny_onnx.read_bytes() + b"\x00")
    with pytest.raises(ValueError, match="stale"):
        TensorRTBackend(engine)
    TensorRTBackend(engine, check=False).close()


def test_engine_without_sidecar_refused(engine):
    sidecar_path(engine).unlink()
    with pytest.raises(ValueError, match="no sidecar"):
        open_backend(engine)


def test_engine_of_another_tensorrt_refused(engine, trt, monkeypatch):
    other = make_tensorrt_stub("10" if trt.__version__.startswith("8.") else "8.5")
    monkeypatch.setitem(sys.modules, "tensorrt", other)
    with pytest.raises(ValueError, match=f"built with TensorRT {trt.__version__}, this is TensorRT "
                                         f"{other.__version__}"):
        TensorRTBackend(engine)
    with pytest.raises(ValueError, match=r"cannot deserialize it .*not compatible with this version"):
        TensorRTBackend(engine, check=False)  # TensorRT itself refuses it too


def test_engine_from_another_gpu_refused(engine, monkeypatch):
    install_cudart(monkeypatch, make_cudart_stub(name="Orin"))
    with pytest.raises(ValueError, match="built on 'NVIDIA Stub GPU', this GPU is 'Orin'"):
        TensorRTBackend(engine)


def test_no_tensorrt(engine, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(RuntimeError, match="TensorRT Python bindings not found"):
        open_backend(engine)


def test_tensor_types_without_trt_nptype(engine, trt):
    """8.5.1-8.5.3's trt.nptype fails under NumPy >= 1.24 (the 8.5 stub's does too): the buffers are
    typed through edge_mtl's own table."""
    if trt.__version__.startswith("8."):
        with pytest.raises(AttributeError, match=r"np\.bool"):
            trt.nptype(trt.DataType.FLOAT)
    with TensorRTBackend(engine) as backend:
        assert all(host.dtype == np.float32 for slot in backend._host for host in slot.values())


def test_tensor_type_without_a_numpy_type_is_refused(engine, trt, cudart, monkeypatch):
    if not hasattr(trt.DataType, "BF16"):
        pytest.skip("TensorRT 8.5 has no BF16")
    monkeypatch.setattr(trt.ICudaEngine, "get_tensor_dtype", lambda self, name: trt.DataType.BF16)
    with pytest.raises(ValueError, match="tensor 'image' is BF16, which has no numpy type"):
        TensorRTBackend(engine)
    assert cudart.memory.live() == {"device": 0, "pinned": 0, "streams": 0, "events": 0}


def test_errors_of_a_later_backend_are_reported(engine, tmp_path):
    """TensorRT's logger is process-wide (the build's, here): a later Runtime's errors land there."""
    TensorRTBackend(engine).close()
    broken = tmp_path / "broken.engine"
    broken.write_bytes(b"not a plan")
    sidecar_path(broken).write_bytes(sidecar_path(engine).read_bytes())
    with pytest.raises(ValueError, match=r"cannot deserialize it \(Serialization assertion magicTagRead"):
        TensorRTBackend(broken, check=False)


def test_failed_launch_is_an_error(engine, trt, monkeypatch):
    monkeypatch.setattr(trt.IExecutionContext, "execute_async_v3", lambda self, stream_handle: False)
    with TensorRTBackend(engine) as backend, pytest.raises(RuntimeError, match="execute_async_v3 failed"):
        backend.infer(images(1))

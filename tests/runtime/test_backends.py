from __future__ import annotations

import numpy as np
import pytest

from edge_mtl.data.world import render_random
from edge_mtl.runtime.backend import open_backend
from edge_mtl.runtime.geometry import fit_geometry
from edge_mtl.runtime.onnx_backend import choose_providers, session_options
from edge_mtl.runtime.postprocess import PostprocessConfig, postprocess
from edge_mtl.runtime.preprocess import preprocess
from edge_mtl.types import OUTPUT_NAMES
from tests.helpers import TINY_SIZE


@pytest.fixture(scope="module")
def frames():
    return [render_random(900 + i).sample.image for i in range(3)]


def test_torch_and_onnxruntime_predictions_agree(tiny_checkpoint, tiny_onnx, frames):
    cfg = PostprocessConfig(score_threshold=0.0, max_detections=20)  # random weights: low scores
    x = np.stack([preprocess(f, TINY_SIZE) for f in frames])
    with open_backend(tiny_checkpoint) as pt, open_backend(tiny_onnx) as ox:
        assert (pt.name, ox.name) == ("torch", "onnxruntime")
        assert pt.info.input_size == ox.info.input_size == TINY_SIZE
        assert ox.info.checkpoint_sha256 == pt.info.sha256
        assert ox.batch == 1 and pt.batch is None
        raw_pt, raw_ox = pt.infer(x), ox.infer(x)  # onnxruntime runs the batch frame by frame
    for k in OUTPUT_NAMES:
        assert raw_pt[k].shape == raw_ox[k].shape and raw_pt[k].shape[0] == len(frames)
        np.testing.assert_allclose(raw_pt[k], raw_ox[k], atol=1e-3, rtol=1e-4)
    for i, frame in enumerate(frames):
        a = postprocess({k: v[i] for k, v in raw_pt.items()}, fit_geometry(frame.shape[:2], TINY_SIZE), cfg)
        b = postprocess({k: v[i] for k, v in raw_ox.items()}, fit_geometry(frame.shape[:2], TINY_SIZE), cfg)
        assert len(a.boxes) == len(b.boxes) > 0
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.05)
        np.testing.assert_array_equal(a.classes, b.classes)
        assert (a.lane != b.lane).mean() < 1e-4
        np.testing.assert_allclose(a.depth, b.depth, rtol=1e-4)
        assert a.depth.shape == frame.shape[:2]


def test_wrong_input_shape_is_refused(tiny_onnx):
    with open_backend(tiny_onnx) as ox, pytest.raises(ValueError, match=r"expected input \[B, 3, 64, 128\]"):
        ox.infer(np.zeros((1, 3, 32, 32), np.float32))


def test_open_backend_errors(tiny_onnx, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx"):
        open_backend(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="runs on the onnxruntime backend, not torch"):
        open_backend(tiny_onnx, backend="torch")
    odd = tmp_path / "model.bin"
    odd.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"suffix '\.bin'"):
        open_backend(odd)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"junk\.onnx"):
        open_backend(junk)


def test_torch_backend_refuses_gpu_options_without_cuda(tiny_checkpoint):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        open_backend(tiny_checkpoint, device="cuda")
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        open_backend(tiny_checkpoint, device="cpu", fp16=True)


def test_provider_choice():
    cpu, cuda, trt = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
    assert choose_providers("cpu", [cuda, cpu]) == [cpu]
    assert choose_providers("auto", [cuda, cpu]) == [cuda, cpu]
    assert choose_providers("auto", [cpu]) == [cpu]
    # TensorRT's provider is never picked on its own: it would build an engine at every start.
    assert choose_providers("auto", [trt, cuda, cpu]) == [cuda, cpu]
    assert choose_providers("cuda", [trt, cuda, cpu]) == [cuda, cpu]
    assert choose_providers("auto", [trt, cpu]) == [cpu]
    with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
        choose_providers("cuda", [trt, cpu])
    with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
        choose_providers("cuda", [cpu])


def test_session_threads_do_not_spin_by_default(tiny_onnx):
    opts = session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session_options(threads=1, spin=True).get_session_config_entry(
        "session.intra_op.allow_spinning") == "1"
    assert session_options(threads=1).intra_op_num_threads == 1
    with open_backend(tiny_onnx) as ox:
        assert ox.session.get_session_options().get_session_config_entry(
            "session.intra_op.allow_spinning") == "0"


@pytest.mark.cuda
def test_torch_cuda_graph_matches_eager(tiny_checkpoint, frames):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    x = np.stack([preprocess(f, TINY_SIZE) for f in frames[:1]])
    with open_backend(tiny_checkpoint, device="cpu") as ref, \
            open_backend(tiny_checkpoint, device="cuda") as gpu:
        assert gpu.precision == "fp16" and gpu.use_graph
        want, first, second = ref.infer(x), gpu.infer(x), gpu.infer(x)
    for k in OUTPUT_NAMES:
        np.testing.assert_array_equal(first[k], second[k])  # replay is deterministic
        np.testing.assert_allclose(first[k], want[k], rtol=2e-2, atol=2e-2 * (np.abs(want[k]).max() + 1))


def test_graph_that_does_not_match_its_metadata_is_refused_at_open(tiny_onnx, tmp_path):
    import onnx

    model = onnx.load(tiny_onnx)
    for prop in model.metadata_props:
        if prop.key == "edge_mtl.input_name":
            prop.value = "pixels"
    onnx.save(model, tmp_path / "renamed.onnx")
    with pytest.raises(ValueError, match=r"renamed\.onnx: the graph reads \['image'\]"):
        open_backend(tmp_path / "renamed.onnx")

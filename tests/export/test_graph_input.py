"""``edge-mtl export --uint8-input``: the graph reads fitted BGR uint8 frames and normalises them
itself, with the same outputs as the float model on CPU-normalised frames."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edge_mtl.export.check import check_onnx
from edge_mtl.export.graph_input import normalize_weights, preprocess_nodes
from edge_mtl.export.onnx import export_onnx
from edge_mtl.runtime.backend import open_backend
from edge_mtl.runtime.preprocess import fit_image, normalize
from edge_mtl.types import OUTPUT_NAMES
from tests.helpers import TINY_SIZE


@pytest.fixture(scope="module")
def uint8_onnx(tiny_checkpoint, tmp_path_factory):
    return export_onnx(tiny_checkpoint, tmp_path_factory.mktemp("u8") / "tiny_u8.onnx", input_format="uint8")


def frames(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [cv_smooth(rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)) for _ in range(n)]


def cv_smooth(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (0, 0), 3)  # road-like smooth content, not white noise


def test_the_normalising_convolution_is_the_cpu_formula():
    weight, bias = normalize_weights()
    bgr = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    x = bgr.astype(np.float32).transpose(2, 0, 1)  # [3, H, W] in B, G, R order
    conv = np.einsum("oi,ihw->ohw", weight[:, :, 0, 0], x) + bias[:, None, None]
    np.testing.assert_allclose(conv, normalize(bgr), rtol=0, atol=1e-5)


def test_the_graph_reads_uint8_nhwc_and_starts_as_tensorrt_needs(uint8_onnx):
    model = onnx.load(uint8_onnx.path)
    (inp,) = model.graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, *TINY_SIZE, 3]
    names = preprocess_nodes(model.graph)  # Cast -> Transpose -> Conv, after simplification too
    by_name = {n.name: n.op_type for n in model.graph.node}
    assert [by_name[n] for n in names] == ["Cast", "Transpose", "Conv"]
    assert not [f for f in check_onnx(uint8_onnx.path) if f.level == "error"]
    assert max(uint8_onnx.parity_ratio["simplified"].values()) <= 1.0
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["edge_mtl.input_format"] == "uint8"


def test_same_outputs_as_the_float_model_on_cpu_normalised_frames(tiny_onnx, uint8_onnx):
    with open_backend(tiny_onnx) as fp, open_backend(uint8_onnx.path) as u8:
        assert (fp.info.input_format, u8.info.input_format) == ("float", "uint8")
        for frame in frames():
            fitted = fit_image(frame, fp.info.geometry(frame.shape[:2]))
            a, b = fp.infer(normalize(fitted)[None]), u8.infer(fitted[None])
            for k in OUTPUT_NAMES:
                scale = max(1.0, float(np.abs(a[k]).max()))
                np.testing.assert_allclose(b[k], a[k], rtol=0, atol=1e-4 * scale, err_msg=k)
        with pytest.raises(ValueError, match=r"expected input \[B, 64, 128, 3\]"):
            u8.infer(normalize(fitted)[None])  # a float batch for a uint8 model
        with pytest.raises(ValueError, match="expected uint8 input"):
            u8.infer(fitted[None].astype(np.float32))


def test_a_graph_that_transposes_before_the_cast_is_flagged(tmp_path):
    """TensorRT reads a uint8 input only straight into a Cast (NVIDIA/TensorRT#3985)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 8, 8, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    nodes = [helper.make_node("Transpose", ["image"], ["t"], name="/t", perm=[0, 3, 1, 2]),
             helper.make_node("Cast", ["t"], ["y"], name="/c", to=TensorProto.FLOAT)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "bad.onnx"
    onnx.save(model, path)
    errors = [f for f in check_onnx(path) if f.rule == "uint8-input"]
    assert len(errors) == 1 and errors[0].op == "Transpose"
    with pytest.raises(ValueError, match="start Cast -> Transpose -> Conv; after 'image' comes a Transpose"):
        preprocess_nodes(model.graph)


def test_int8_keeps_the_normalising_convolution_in_float(uint8_onnx, tmp_path):
    from edge_mtl.quantize.calibset import load_calibration_set
    from edge_mtl.quantize.qdq import quantize_qdq
    from tests.helpers import write_random_frames

    calib = load_calibration_set(write_random_frames(tmp_path / "frames", 4, (72, 128)), progress=False)
    out = tmp_path / "u8_int8.onnx"
    quantize_qdq(uint8_onnx.path, out, calib, progress=False, cache_dir=None)
    q = onnx.load(out)
    first_conv = preprocess_nodes(q.graph)[-1]
    conv = next(n for n in q.graph.node if n.name == first_conv)
    producers = {o: n.op_type for n in q.graph.node for o in n.output}
    assert producers[conv.input[0]] == "Transpose"  # no Q/DQ pair in front of it
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)  # the network itself is INT8
    with open_backend(out) as runner:
        frame = frames(1)[0]
        runner.infer(fit_image(frame, runner.info.geometry(frame.shape[:2]))[None])


def test_eval_and_camera_run_a_uint8_model_as_its_float_twin(tiny_onnx, uint8_onnx, tiny_dataset):
    from edge_mtl.camera.loop import run_camera
    from edge_mtl.camera.sources import MemorySource
    from edge_mtl.evaluate import evaluate

    a = evaluate(tiny_onnx, tiny_dataset, progress=False)["metrics"]
    b = evaluate(uint8_onnx.path, tiny_dataset, progress=False)["metrics"]
    assert abs(a["depth"]["abs_rel"] - b["depth"]["abs_rel"]) < 1e-4
    assert abs(a["lane"]["iou"] - b["lane"]["iou"]) < 1e-3
    summary = run_camera(MemorySource(frames(4), count=4, fps=30.0), uint8_onnx.path, headless=True,
                         log=lambda msg: None)
    assert (summary["frames"], summary["stop_reason"]) == (4, "end of stream")

"""Tiny ONNX models with edge_mtl metadata, made with onnx.helper (no network export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge_mtl.export.graph_input import normalize_weights
from edge_mtl.export.metadata import build_metadata
from edge_mtl.runtime.preprocess import MEAN, STD
from edge_mtl.types import CLASSES, OUTPUT_NAMES

SIZE = (64, 128)
POINTS = (SIZE[0] // 4) * (SIZE[1] // 4)  # one detection point per stride-4 cell


def make_tiny_onnx(path: Path, qdq: bool = False, extra_op: str | None = None, opset: int = 17,
                   batch: int = 1, uint8: bool = False) -> Path:
    """``image [B,3,64,128]`` -> the four outputs with the real model's shape rules:
    det_logits [B,N,3], det_boxes [B,N,4], lane_logits [B,1,32,64], depth [B,1,16,32] (B = ``batch``).
    ``qdq``: a Q/DQ pair on the input (an explicit-INT8 model). ``extra_op``: one more node of
    that type (named ``/head/extra``), to exercise the parser's error path. ``uint8``: the input
    is ``image [B,64,128,3]`` uint8 BGR, normalised in the graph as ``--uint8-input`` exports do."""
    h, w = SIZE
    inits = [numpy_helper.from_array(np.array([batch, POINTS, 1], np.int64), "pts_shape"),
             numpy_helper.from_array(np.array([batch, POINTS, len(CLASSES)], np.int64), "logit_shape"),
             numpy_helper.from_array(np.array([batch, POINTS, 4], np.int64), "box_shape")]
    nodes = []
    x = "image"
    if uint8:
        weight, bias = normalize_weights()
        inits += [numpy_helper.from_array(weight, "norm_w"), numpy_helper.from_array(bias, "norm_b")]
        nodes += [helper.make_node("Cast", [x], ["xf"], name="/Cast", to=TensorProto.FLOAT),
                  helper.make_node("Transpose", ["xf"], ["xt"], name="/Transpose", perm=[0, 3, 1, 2]),
                  helper.make_node("Conv", ["xt", "norm_w", "norm_b"], ["xn"], name="/Conv")]
        x = "xn"
    if qdq:
        inits += [numpy_helper.from_array(np.float32(0.05), "s"), numpy_helper.from_array(np.int8(0), "z")]
        nodes += [helper.make_node("QuantizeLinear", [x, "s", "z"], ["xq"], name="/input/q"),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="/input/dq")]
        x = "xd"
    nodes += [
        helper.make_node("ReduceMean", [x], ["gray"], name="/stem/mean", axes=[1], keepdims=1),
        helper.make_node("AveragePool", ["gray"], ["lane_logits"], name="/lane_head/pool",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["gray"], ["depth"], name="/depth_head/pool",
                         kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Reshape", ["depth", "pts_shape"], ["pts"], name="/det_head/flatten"),
        helper.make_node("Expand", ["pts", "logit_shape"], ["det_logits"], name="/det_head/logits"),
        helper.make_node("Expand", ["pts", "box_shape"], ["det_boxes"], name="/det_head/boxes"),
    ]
    if extra_op:
        nodes.insert(1, helper.make_node(extra_op, ["gray"], ["gray2"], name="/head/extra"))
        nodes[2].input[0] = "gray2"
    shapes = {"det_logits": [batch, POINTS, len(CLASSES)], "det_boxes": [batch, POINTS, 4],
              "lane_logits": [batch, 1, h // 2, w // 2], "depth": [batch, 1, h // 4, w // 4]}
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.UINT8, [batch, h, w, 3]) if uint8
                        else helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, h, w])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shapes[n]) for n in OUTPUT_NAMES], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    helper.set_model_props(model, build_metadata(SIZE, MEAN.tolist(), STD.tolist(), CLASSES, OUTPUT_NAMES,
                                                 "tiny", "ab" * 32, 0, resize="crop", canonical_focal=100.0,
                                                 input_format="uint8" if uint8 else "float"))
    onnx.save(model, str(path))
    return path


def expected_outputs(images: np.ndarray) -> dict[str, np.ndarray]:
    """What the tiny model computes, in numpy."""
    gray = images.mean(axis=1, keepdims=True)
    b, _, h, w = gray.shape
    lane = gray.reshape(b, 1, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
    depth = gray.reshape(b, 1, h // 4, 4, w // 4, 4).mean(axis=(3, 5))
    pts = depth.reshape(b, -1, 1)
    return {"det_logits": np.repeat(pts, len(CLASSES), axis=2), "det_boxes": np.repeat(pts, 4, axis=2),
            "lane_logits": lane, "depth": depth}

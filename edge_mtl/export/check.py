"""Lint an ONNX model for a TensorRT target before anyone waits for an engine build.

Rules: the opset range and operator allow-list of the target's ONNX parser (`trt_ops`), static
input shapes, and the Q/DQ rules TensorRT enforces for explicit INT8 — int8 only, zero-point 0,
scales constant, finite and > 0, per-channel scales only on weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from edge_mtl.export.metadata import load_onnx
from edge_mtl.export.trt_ops import OPSET_RANGE, RESTRICTIONS, SUPPORTED_OPS, TARGETS

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning"
    rule: str
    message: str
    node: str = ""
    op: str = ""

    def __str__(self) -> str:
        where = f"node {self.node!r} ({self.op}): " if self.node else ""
        return f"{self.level.upper()} [{self.rule}] {where}{self.message}"


def _constants(model) -> dict[str, np.ndarray]:
    """Initializers plus outputs of Constant nodes, by tensor name."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    values[n.output[0]] = numpy_helper.to_array(a.t)
    return values


def _is_weight(name: str, producers: dict, constants: dict) -> bool:
    """A constant tensor, or a QuantizeLinear of one (the Q/DQ pair on a float weight)."""
    if name in constants:
        return True
    node = producers.get(name)
    return node is not None and node.op_type == "QuantizeLinear" and node.input[0] in constants


# The axis a per-channel weight scale must run along: output channels (K) for Conv / Gemm
# weights as exported, [C, K/g, ...] for ConvTranspose.
WEIGHT_AXIS: dict[str, int] = {"Conv": 0, "ConvTranspose": 1}


def _check_qdq(node, constants: dict, producers: dict, consumers: dict) -> list[Finding]:
    out: list[Finding] = []

    def err(rule: str, msg: str) -> None:
        out.append(Finding("error", rule, msg, node.name, node.op_type))

    data = constants.get(node.input[0])
    if node.op_type == "DequantizeLinear" and data is not None and data.dtype != np.int8:
        err("qdq-int8", f"dequantizes {node.input[0]!r} of dtype {data.dtype}; TensorRT's parser "
            "dequantizes int8 only (keep biases in float)")
    scale = constants.get(node.input[1])
    if scale is None:
        err("qdq-scale-constant", f"scale {node.input[1]!r} is not a constant")
        return out
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        err("qdq-scale-positive", f"scale {node.input[1]!r} holds values <= 0 or not finite "
            f"(min {float(np.min(scale)):.3g})")
    if node.op_type == "QuantizeLinear" and (len(node.input) < 3 or not node.input[2]):
        err("qdq-int8", "no zero-point: QuantizeLinear then produces uint8; TensorRT needs an "
            "int8 zero-point of 0")
    if len(node.input) > 2 and node.input[2]:
        zp = constants.get(node.input[2])
        if zp is None:
            err("qdq-zero-point", f"zero-point {node.input[2]!r} is not a constant")
        elif zp.dtype != np.int8:
            err("qdq-int8", f"zero-point dtype is {zp.dtype}; TensorRT needs int8 (symmetric), "
                "not uint8/asymmetric")
        elif np.any(zp != 0):
            err("qdq-symmetric", f"zero-point {node.input[2]!r} is not 0 (TensorRT quantizes "
                "symmetrically)")
    if scale.size > 1 and not _is_weight(node.input[0], producers, constants):
        err("qdq-per-channel-weights-only", f"per-channel scale ({scale.size} values) on "
            f"activation {node.input[0]!r}; TensorRT allows per-channel scales only on weights")
    elif scale.size > 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        weight = constants.get(node.input[0])
        if weight is None and node.input[0] in producers:  # Q(w) -> DQ: the float weight
            weight = constants.get(producers[node.input[0]].input[0])
        if weight is not None:
            if not (-weight.ndim <= axis < weight.ndim and weight.shape[axis] == scale.size):
                err("qdq-axis", f"{scale.size} per-channel scales along axis {axis} of weight "
                    f"{node.input[0]!r} with shape {list(weight.shape)}")
            axis %= weight.ndim  # ONNX allows negative axes
        for reader in consumers.get(node.output[0], []):
            want = WEIGHT_AXIS.get(reader.op_type)
            if want is not None and list(reader.input[1:2]) == [node.output[0]] and axis != want:
                err("qdq-axis", f"per-channel scales along axis {axis} of {reader.op_type} "
                    f"{reader.name!r}'s weight; TensorRT needs axis {want} (output channels)")
    return out


def check_onnx(model_path: str | os.PathLike, target: str = "tensorrt-10",
               allow_gpu_fallback: bool = False) -> list[Finding]:
    """Every rule ``model_path`` breaks for ``target`` (an empty list means it passes)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose from {list(TARGETS)}")
    model = load_onnx(model_path)
    findings: list[Finding] = []
    lo, hi = OPSET_RANGE[target]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not lo <= opset <= hi:
        findings.append(Finding("error", "opset", f"opset {opset} outside {target}'s range {lo}..{hi}"))
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") for d in dims):
            level = "error" if target == "dla" else "warning"
            findings.append(Finding(level, "static-shape", f"input {inp.name!r} has a dynamic "
                                    "dimension; export with a static shape (DLA requires it, "
                                    "GPU engines then need an optimization profile)"))
    supported = SUPPORTED_OPS[target]
    notes = RESTRICTIONS.get(target, {})
    constants = _constants(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    from onnx import TensorProto

    for inp in model.graph.input:  # TensorRT 8.5+ reads UINT8 only straight into a Cast
        if inp.type.tensor_type.elem_type == TensorProto.UINT8:
            findings += [Finding("error", "uint8-input", f"uint8 input {inp.name!r} feeds a {n.op_type}; "
                                 "TensorRT needs a Cast straight after a uint8 input", n.name, n.op_type)
                         for n in consumers.get(inp.name, []) if n.op_type != "Cast"]
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            findings.append(Finding("error", "custom-op", f"domain {node.domain!r} is not part of "
                                    "ONNX; TensorRT's parser needs a plugin for it", node.name, node.op_type))
            continue
        if node.op_type == "Constant":
            continue
        if node.op_type not in supported:
            fallback = target == "dla" and allow_gpu_fallback
            findings.append(Finding("warning" if fallback else "error", "unsupported-op",
                                    f"not supported by {target}"
                                    + ("; it will fall back to the GPU" if fallback else ""),
                                    node.name, node.op_type))
        if node.op_type in QDQ_OPS:
            findings += _check_qdq(node, constants, producers, consumers)
    if target == "dla" and any(n.op_type in QDQ_OPS for n in model.graph.node):
        findings.append(Finding("error", "dla-implicit-int8", "holds Q/DQ nodes: DLA builds run "
                                "implicit INT8 only; build the FP32 ONNX with a calibration set "
                                "(`edge-mtl build-engine --dla-core N --calib SET`)"))
    for op in sorted({n.op_type for n in model.graph.node} & set(notes)):
        findings.append(Finding("warning", "restriction", f"{op}: {notes[op]}"))
    return findings

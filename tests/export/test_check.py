from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_mtl.export.check import check_onnx


def _save(tmp_path, nodes, inits, opset=17, inp_dims=(1, 4, 8, 8), name="m.onnx") -> str:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(inp_dims))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / name
    onnx.save(model, path)
    return str(path)


def _qdq_conv(scale_act=0.1, zp_act=None, w_scale=None, act_per_channel=False, bias_dtype=None,
              w_axis=0, q_without_zp=False):
    """x -> Q -> DQ -> Conv(DQ(w_int8)) -> y: the layout explicit INT8 models use."""
    zp_act = np.int8(0) if zp_act is None else zp_act
    w_scale = np.full(4, 0.02, np.float32) if w_scale is None else w_scale
    s_act = np.full(4, scale_act, np.float32) if act_per_channel else np.float32(scale_act)
    z_act = np.zeros(4, zp_act.dtype) if act_per_channel else np.array(zp_act)
    inits = {"s_x": s_act, "z_x": z_act, "w_q": np.ones((4, 4, 3, 3), np.int8),
             "s_w": w_scale, "z_w": np.zeros(4, np.int8)}
    axis = {"axis": 1} if act_per_channel else {}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_x", "z_x"], ["xq"], name="q_x", **axis),
             helper.make_node("DequantizeLinear", ["xq", "s_x", "z_x"], ["xd"], name="dq_x", **axis),
             helper.make_node("DequantizeLinear", ["w_q", "s_w", "z_w"], ["w"], name="dq_w", axis=w_axis),
             helper.make_node("Conv", ["xd", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    if q_without_zp:
        del nodes[0].input[2]
    if bias_dtype is not None:
        inits |= {"b_q": np.ones(4, bias_dtype), "s_b": np.full(4, 0.002, np.float32)}
        nodes.insert(3, helper.make_node("DequantizeLinear", ["b_q", "s_b"], ["b"], name="dq_b", axis=0))
        nodes[-1].input.append("b")
    return nodes, inits


def _rules(findings, level="error"):
    return {(f.rule, f.node) for f in findings if f.level == level}


@pytest.mark.parametrize("target", ["tensorrt-8.5", "tensorrt-10"])
def test_exported_model_passes(tiny_onnx, target):
    assert _rules(check_onnx(tiny_onnx, target)) == set()


def test_a_valid_explicit_int8_graph_passes(tmp_path):
    nodes, inits = _qdq_conv()
    assert _rules(check_onnx(_save(tmp_path, nodes, inits), "tensorrt-10")) == set()


@pytest.mark.parametrize(("kwargs", "rule", "node"), [
    ({"zp_act": np.uint8(0)}, "qdq-int8", "q_x"),
    ({"zp_act": np.int8(3)}, "qdq-symmetric", "q_x"),
    ({"scale_act": 0.0}, "qdq-scale-positive", "q_x"),
    ({"w_scale": np.array([0.02, -0.01, 0.02, 0.02], np.float32)}, "qdq-scale-positive", "dq_w"),
    ({"act_per_channel": True}, "qdq-per-channel-weights-only", "dq_x"),
    ({"bias_dtype": np.int32}, "qdq-int8", "dq_b"),
    ({"q_without_zp": True}, "qdq-int8", "q_x"),
    ({"w_axis": 1}, "qdq-axis", "dq_w"),
    ({"w_scale": np.full(3, 0.02, np.float32)}, "qdq-axis", "dq_w"),
])
def test_qdq_rules_name_the_node(tmp_path, kwargs, rule, node):
    nodes, inits = _qdq_conv(**kwargs)
    findings = check_onnx(_save(tmp_path, nodes, inits), "tensorrt-8.5")
    assert (rule, node) in _rules(findings)
    assert any(node in str(f) and rule in str(f) for f in findings)


def test_opset_custom_domain_and_unsupported_ops(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("FusedConv", ["r"], ["y"], name="fused", domain="com.microsoft")]
    path = _save(tmp_path, nodes, {}, opset=18)
    assert {("opset", ""), ("custom-op", "fused")} <= _rules(check_onnx(path, "tensorrt-8.5"))
    assert ("opset", "") not in _rules(check_onnx(path, "tensorrt-10"))

    swish = _save(tmp_path, [helper.make_node("HardSwish", ["x"], ["y"], name="hs")], {}, name="hs.onnx")
    assert _rules(check_onnx(swish, "tensorrt-8.5")) == set()
    assert ("unsupported-op", "hs") in _rules(check_onnx(swish, "dla"))
    fallback = check_onnx(swish, "dla", allow_gpu_fallback=True)
    assert ("unsupported-op", "hs") in _rules(fallback, "warning")
    assert _rules(fallback) == set()


def test_dynamic_input_is_an_error_for_dla_only(tmp_path):
    path = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"], name="r")], {},
                 inp_dims=("N", 4, 8, 8))
    assert ("static-shape", "") in _rules(check_onnx(path, "dla"))
    assert ("static-shape", "") in _rules(check_onnx(path, "tensorrt-10"), "warning")


def test_bad_input(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"bad\.onnx"):
        check_onnx(bad, "tensorrt-10")
    with pytest.raises(ValueError, match="tensorrt-7"):
        check_onnx(bad, "tensorrt-7")


def test_negative_weight_axis_is_the_same_axis(tmp_path):
    nodes, inits = _qdq_conv(w_axis=-4)  # axis 0 of a 4-D Conv weight
    assert _rules(check_onnx(_save(tmp_path, nodes, inits), "tensorrt-10")) == set()


def test_dla_refuses_explicit_int8(tmp_path):
    nodes, inits = _qdq_conv()
    path = _save(tmp_path, nodes, inits)
    assert ("dla-implicit-int8", "") in _rules(check_onnx(path, "dla", allow_gpu_fallback=True))
    assert ("dla-implicit-int8", "") not in _rules(check_onnx(path, "tensorrt-10"))


def test_files_holding_no_model_are_named(tmp_path, tiny_onnx):
    from onnx.external_data_helper import convert_model_to_external_data

    from edge_mtl.export.metadata import load_onnx

    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.onnx: not an ONNX model \(no graph nodes"):
        check_onnx(empty, "tensorrt-10")  # it parsed as an empty model: an 'opset None' finding
    truncated = tmp_path / "truncated.onnx"
    data = Path(tiny_onnx).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated\.onnx: not a readable ONNX model \(DecodeError"):
        load_onnx(truncated)
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx"):
        load_onnx(tmp_path / "missing.onnx")
    model = onnx.load(tiny_onnx)
    convert_model_to_external_data(model, location="weights.bin", size_threshold=0)
    onnx.save(model, tmp_path / "ext.onnx")
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(ValueError, match=r"ext\.onnx: not a readable ONNX model \(ValidationError"):
        load_onnx(tmp_path / "ext.onnx")
    assert len(load_onnx(tmp_path / "ext.onnx", load_external_data=False).graph.node) > 0

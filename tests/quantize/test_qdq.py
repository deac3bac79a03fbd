from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edge_mtl.export.check import check_onnx
from edge_mtl.quantize.calibset import load_calibration_set
from edge_mtl.quantize.qdq import DEFAULT_KEEP, keep_prefixes, nodes_to_quantize, quantize_qdq
from edge_mtl.runtime.backend import open_backend


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    import cv2

    from edge_mtl.data.world import render_random

    folder = tmp_path_factory.mktemp("calib")
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.jpg"), render_random(500 + i).sample.image)
    return load_calibration_set(folder)


@pytest.fixture(scope="module")
def int8(tiny_onnx, calib, tmp_path_factory):
    return quantize_qdq(tiny_onnx, tmp_path_factory.mktemp("q") / "m.int8.onnx", calib,
                        method="minmax", progress=False, cache_dir=None)


def test_qdq_model_follows_tensorrt_rules(int8):
    model = onnx.load(int8.path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert int8.quantized_nodes > 0 and qdq
    for n in qdq:
        zp = inits[n.input[2]]
        assert zp.dtype == np.int8 and not zp.any(), n.name
        assert (inits[n.input[1]] > 0).all(), n.name
    for target in ("tensorrt-8.5", "tensorrt-10"):
        assert [f for f in check_onnx(int8.path, target) if f.level == "error"] == []
    props = {p.key: p.value for p in model.metadata_props}
    assert "minmax" in props["edge_mtl.int8"] and props["edge_mtl.format"] == "edge_mtl.onnx/1"


def test_outputs_and_constant_adds_stay_float(tiny_onnx, int8):
    fp32 = onnx.load(tiny_onnx)
    constants = {t.name for t in fp32.graph.initializer}
    chosen = set(nodes_to_quantize(fp32.graph))
    adds = [n for n in fp32.graph.node if n.op_type == "Add"]
    const_adds = [n.name for n in adds if any(i in constants for i in n.input)]
    assert const_adds, "the box decoder adds anchor points (a constant)"
    assert not chosen & set(const_adds)
    assert {n.name for n in fp32.graph.node if n.op_type == "Conv"} <= chosen
    model = onnx.load(int8.path)
    producers = {o: n for n in model.graph.node for o in n.output}
    for out in model.graph.output:  # no int8 grid on logits, pixels or metres
        assert producers[out.name].op_type != "DequantizeLinear", out.name
    for name in const_adds:  # neither operand of a constant add is fake-quantized
        (node,) = [n for n in model.graph.node if n.name == name]
        assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear"
                   for i in node.input), name


def test_int8_runs_in_onnxruntime_close_to_fp32(tiny_onnx, int8, calib):
    x = next(calib.batches((64, 128)))
    with open_backend(tiny_onnx) as fp32, open_backend(int8.path) as q:
        assert (fp32.precision, q.precision) == ("fp32", "int8")
        a, b = fp32.infer(x), q.infer(x)
    for k in a:
        assert a[k].shape == b[k].shape
        err = np.abs(a[k] - b[k])
        assert err.max() > 0, f"{k}: INT8 identical to FP32, nothing was quantized"
        # untrained tiny model: loose, but an int8 grid on an output or a wrong scale breaks it
        assert err.mean() < 0.1 * (np.abs(a[k]).mean() + 0.1), k


def test_keep_leaves_the_heads_in_float(tiny_onnx, calib, tmp_path):
    r = quantize_qdq(tiny_onnx, tmp_path / "k.onnx", calib, method="minmax", images=2,
                     keep=["heads"], progress=False, cache_dir=None)
    assert r.kept_nodes and all(n.startswith(("/det_head/", "/lane_head/", "/depth_head/"))
                                for n in r.kept_nodes)
    model = onnx.load(r.path)
    producers = {o: n for n in model.graph.node for o in n.output}
    for n in model.graph.node:
        if n.name in r.kept_nodes and n.op_type == "Conv":
            assert producers.get(n.input[1]) is None or producers[n.input[1]].op_type != "DequantizeLinear"


def test_bad_requests(tiny_onnx, int8, calib, tmp_path):
    with pytest.raises(ValueError, match="already quantized"):
        quantize_qdq(int8.path, tmp_path / "x.onnx", calib, progress=False, cache_dir=None)
    with pytest.raises(ValueError, match="'gpu'"):
        keep_prefixes(["gpu"])
    with pytest.raises(ValueError, match="matches no quantizable node"):
        quantize_qdq(tiny_onnx, tmp_path / "x.onnx", calib, keep=["/nothing/"], progress=False,
                     cache_dir=None)
    with pytest.raises(ValueError, match="'kl'"):
        quantize_qdq(tiny_onnx, tmp_path / "x.onnx", calib, method="kl", progress=False, cache_dir=None)


def _ort_caches_ranges() -> bool:
    import inspect

    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


@pytest.mark.skipif(not _ort_caches_ranges(), reason="this onnxruntime has no calibration cache")
def test_ranges_are_cached_and_serve_any_keep(tiny_onnx, calib, tmp_path):
    def scales(path):
        model = onnx.load(path)
        inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        return {n.input[0]: float(inits[n.input[1]]) for n in model.graph.node
                if n.op_type == "QuantizeLinear" and inits[n.input[1]].size == 1}

    first = quantize_qdq(tiny_onnx, tmp_path / "a.onnx", calib, method="minmax", images=3,
                         progress=False, cache_dir=tmp_path / "ranges")
    assert not first.cache_hit and first.ranges_cache.is_file()
    again = quantize_qdq(tiny_onnx, tmp_path / "b.onnx", calib, method="minmax", images=3,
                         keep=["heads"], progress=False, cache_dir=tmp_path / "ranges")
    assert again.cache_hit and again.ranges_cache == first.ranges_cache
    a, b = scales(first.path), scales(again.path)
    shared = set(a) & set(b)
    assert shared and all(a[k] == b[k] for k in shared)
    other = quantize_qdq(tiny_onnx, tmp_path / "c.onnx", calib, method="minmax", images=2,
                         progress=False, cache_dir=tmp_path / "ranges")
    assert not other.cache_hit and other.ranges_cache != first.ranges_cache


def test_default_recipe_keeps_its_groups_and_none_keeps_nothing(tiny_onnx, calib, tmp_path):
    default = quantize_qdq(tiny_onnx, tmp_path / "d.onnx", calib, method="minmax", images=2,
                           progress=False, cache_dir=tmp_path)
    assert default.kept_nodes
    prefixes = keep_prefixes(DEFAULT_KEEP)
    assert all(n.startswith(prefixes) for n in default.kept_nodes)
    assert all(any(n.startswith(p) for n in default.kept_nodes) for p in prefixes)  # no dead entry
    assert any(n.startswith("/depth_head/") for n in default.kept_nodes)
    everything = quantize_qdq(tiny_onnx, tmp_path / "a.onnx", calib, method="minmax", images=2,
                              keep=[], progress=False, cache_dir=tmp_path)
    assert everything.kept_nodes == [] and everything.quantized_nodes > default.quantized_nodes


def test_corrupt_model_is_named(calib, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(ValueError, match=r"bad\.onnx: not a readable ONNX model"):
        quantize_qdq(bad, tmp_path / "out.onnx", calib, progress=False, cache_dir=None)
    assert not (tmp_path / "out.onnx").exists()

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from edge_mtl.checkpoint import load_model, sha256
from edge_mtl.export.metadata import parse_metadata
from edge_mtl.export.onnx import PARITY_ATOL, export_onnx, parity, parity_inputs
from edge_mtl.types import CLASSES, OUTPUT_NAMES
from tests.helpers import TINY_SIZE


def test_export_is_static_named_and_carries_metadata(tiny_checkpoint, tiny_onnx):
    model = onnx.load(tiny_onnx)
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES)
    (inp,) = model.graph.input
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 3, *TINY_SIZE]
    assert next(o.version for o in model.opset_import if o.domain == "") == 17
    meta = parse_metadata({p.key: p.value for p in model.metadata_props}, tiny_onnx)
    assert meta["input_size"] == TINY_SIZE
    assert meta["class_names"] == CLASSES
    assert meta["checkpoint_sha256"] == sha256(tiny_checkpoint)
    assert np.allclose(meta["mean"], [123.675, 116.28, 103.53], atol=1e-3)
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"NonMaxSuppression", "NonZero", "TopK"}, "no data-dependent ops in the graph"


@pytest.mark.parametrize("simplifier", ["none", "onnxslim"])
def test_parity_with_pytorch_before_and_after_simplification(tiny_checkpoint, tmp_path, simplifier):
    result = export_onnx(tiny_checkpoint, tmp_path / "m.onnx", simplifier=simplifier)
    stages = ["exported"] + (["simplified"] if simplifier != "none" else [])
    assert list(result.parity) == stages
    for stage, diffs in result.parity.items():
        assert set(diffs) == set(OUTPUT_NAMES)
        assert max(result.parity_ratio[stage].values()) <= 1.0
        assert max(diffs.values()) < 1e-2  # the relative part never hides a real difference
    if simplifier == "onnxslim":
        assert result.nodes_after <= result.nodes_before


def test_onnxsim_when_installed(tiny_checkpoint, tmp_path):
    pytest.importorskip("onnxsim")
    result = export_onnx(tiny_checkpoint, tmp_path / "m.onnx", simplifier="onnxsim")
    assert max(result.parity_ratio["simplified"].values()) <= 1.0


def test_parity_check_sees_a_different_model(tiny_checkpoint, tiny_onnx):
    _, model = load_model(tiny_checkpoint)
    with torch.no_grad():
        model.depth_head.out.bias.add_(0.5)  # any visible change
    diffs, ratios = parity(tiny_onnx, model, parity_inputs(TINY_SIZE))
    assert diffs["depth"] > 1e-3 and ratios["depth"] > 1.0
    assert diffs["det_logits"] <= PARITY_ATOL and ratios["det_logits"] <= 1.0


def test_bad_arguments_name_the_value(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="simplifier 'magic'"):
        export_onnx(tiny_checkpoint, tmp_path / "m.onnx", simplifier="magic")
    with pytest.raises(ValueError, match="opset 9"):
        export_onnx(tiny_checkpoint, tmp_path / "m.onnx", opset=9)
    with pytest.raises(ValueError, match="opset 21"):
        export_onnx(tiny_checkpoint, tmp_path / "m.onnx", opset=21)
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        export_onnx(tmp_path / "nope.pt", tmp_path / "m.onnx")


def test_foreign_onnx_is_refused(tmp_path, tiny_onnx):
    model = onnx.load(tiny_onnx)
    del model.metadata_props[:]
    with pytest.raises(ValueError, match="not an edge_mtl ONNX model"):
        parse_metadata({p.key: p.value for p in model.metadata_props}, "foreign.onnx")
    props = {p.key: p.value for p in onnx.load(tiny_onnx).metadata_props}
    props["edge_mtl.input_size"] = "[64"
    with pytest.raises(ValueError, match="damaged"):
        parse_metadata(props, "broken.onnx")
    assert json.loads(props["edge_mtl.class_names"]) == list(CLASSES)


def test_a_failing_simplifier_is_named_and_leaves_nothing(tiny_checkpoint, tmp_path, monkeypatch):
    import edge_mtl.export.onnx as export_module

    def broken(model, method):
        raise KeyError("Conv_17")

    monkeypatch.setattr(export_module, "simplify", broken)
    with pytest.raises(ValueError, match=r"onnxslim failed.*KeyError.*--simplifier none"):
        export_onnx(tiny_checkpoint, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_parity_names_a_file_onnxruntime_cannot_load(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ValueError, match=r"bad\.onnx: onnxruntime cannot load it"):
        parity(bad, torch.nn.Identity(), [])

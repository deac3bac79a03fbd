"""model.tf_padding: TF 'SAME' padding for the backbone's strided convolutions (edge_mtl.model.backbone)."""

from __future__ import annotations

import collections

import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edge_mtl.config import Config, apply_overrides
from edge_mtl.model.backbone import (
    BACKBONES,
    MobileNetBackbone,
    TFSamePadConv2d,
    tf_same_padding,
    tf_same_pads,
)
from edge_mtl.model.tritask import build_model
from tests.helpers import TINY_SIZE, tiny_model_config


@pytest.mark.parametrize("n, k, s, pads", [
    (8, 3, 2, [0, 1]),  # even map, stride 2, 3x3: nothing before, one after (torchvision: 1 and 1)
    (7, 3, 2, [1, 1]),  # odd map: symmetric
    (8, 5, 2, [1, 2]),
    (7, 5, 2, [2, 2]),
    (8, 1, 2, [0, 0]),
    (8, 3, 1, [1, 1]),  # stride 1, odd kernel: what torchvision already does
    (9, 3, 3, [0, 0]),
])
def test_pads_follow_tensorflow_same(n, k, s, pads):
    assert tf_same_pads((n, n + 2), (k, k), (s, s))[2:] == pads
    left, right = tf_same_pads((1, n), (1, k), (1, s))[:2]
    assert (n + left + right - k) // s + 1 == -(-n // s)  # TF 'SAME': ceil(n / s) outputs


def test_strided_convs_pad_as_tensorflow_and_keep_their_state():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.Conv2d(4, 4, 5, 2, 2, groups=4),
                        nn.Conv2d(4, 6, 3, 1, 1))
    ref = [m.weight.detach().clone() for m in net]
    keys = list(net.state_dict())
    assert tf_same_padding(net) is net
    assert [type(m) for m in net] == [TFSamePadConv2d, TFSamePadConv2d, nn.Conv2d]
    assert list(net.state_dict()) == keys
    assert all(torch.equal(m.weight, w) for m, w in zip(net, ref, strict=True))
    assert net[0].padding == (0, 0) and net[2].padding == (1, 1)
    for h, w in ((16, 24), (15, 9)):
        x = torch.randn(2, 3, h, w)
        # written out: TF pads the smaller half before, the rest after
        ph, pw = (0, 1) if h % 2 == 0 else (1, 1), (0, 1) if w % 2 == 0 else (1, 1)
        y = F.conv2d(F.pad(x, (*pw, *ph)), net[0].weight, net[0].bias, 2)
        torch.testing.assert_close(net[0](x), y, rtol=0, atol=0)
        assert y.shape[2:] == (-(-h // 2), -(-w // 2))
        yp = F.pad(y, tf_same_pads(y.shape[2:], (5, 5), (2, 2)))
        z = F.conv2d(yp, net[1].weight, net[1].bias, 2, groups=4)
        torch.testing.assert_close(net[1](y), z, rtol=0, atol=0)
    with pytest.raises(ValueError, match="reflect"):
        tf_same_padding(nn.Conv2d(3, 3, 3, 2, 1, padding_mode="reflect"))


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_keeps_its_keys_and_levels_with_tf_padding(name):
    torch.manual_seed(0)
    plain = MobileNetBackbone(name)
    torch.manual_seed(0)
    tf = MobileNetBackbone(name, tf_padding=True)
    assert tf.tf_padding and not plain.tf_padding
    assert list(tf.state_dict()) == list(plain.state_dict())
    pairs = zip(tf.state_dict().values(), plain.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert tf.feature_info == plain.feature_info
    convs = [m for m in tf.modules() if isinstance(m, nn.Conv2d)]
    assert {type(m) for m in convs if m.stride != (1, 1)} == {TFSamePadConv2d}
    assert all(type(m) is nn.Conv2d for m in convs if m.stride == (1, 1))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a, b = plain.eval()(x), tf.eval()(x)
    assert [t.shape for t in a] == [t.shape for t in b]
    assert (a[0] - b[0]).abs().max() > 0.01 * a[0].abs().max()  # another grid


def test_config_key_is_a_checked_boolean(tmp_path):
    cfg = apply_overrides(Config(), ["model.tf_padding=true"])
    assert cfg.model.tf_padding is True and Config().model.tf_padding is False
    with pytest.raises(ValueError, match="is not a boolean"):
        apply_overrides(Config(), ["model.tf_padding=1"])
    cfg.save(tmp_path / "c.yaml")
    assert Config.load(tmp_path / "c.yaml").model.tf_padding is True
    model = build_model(cfg.model)
    assert type(model.backbone.features[0][0]) is TFSamePadConv2d


def _onnx_facts(path):
    g = onnx.load(str(path)).graph
    ops = collections.Counter(n.op_type for n in g.node)
    pads = collections.Counter(tuple(a.ints) for n in g.node if n.op_type == "Conv"
                               for a in n.attribute if a.name == "pads")
    return len(g.node), ops, pads


@pytest.mark.filterwarnings("ignore:Constant folding - Only steps=1")  # torch exports F.pad so
def test_tiny_model_with_tf_padding_exports_with_parity_and_folded_pads(tiny_checkpoint, tmp_path):
    """onnxslim folds each Pad into its Conv's pads: no Pad node, the node count of the plain
    export; the unsimplified graph (a Pad per strided conv) passes the parity check too."""
    from edge_mtl.checkpoint import save_checkpoint
    from edge_mtl.export.check import check_onnx
    from edge_mtl.export.onnx import export_onnx

    torch.manual_seed(1)
    cfg = Config(model=tiny_model_config(tf_padding=True))
    model = build_model(cfg.model).train()
    with torch.no_grad():
        for _ in range(3):  # non-trivial BN statistics
            model(torch.randn(2, 3, *TINY_SIZE))
    ckpt = tmp_path / "tiny_tf.pt"
    save_checkpoint(ckpt, cfg, model.eval(), step=0)
    strided = sum(isinstance(m, TFSamePadConv2d) for m in model.modules())
    assert strided == 5  # mobilenet_v3_small: 3x3 and 5x5 at stride 2
    for simplifier in ("none", "onnxslim"):
        result = export_onnx(ckpt, tmp_path / f"tf_{simplifier}.onnx", simplifier=simplifier)
        for stage, ratios in result.parity_ratio.items():
            assert max(ratios.values()) <= 1.0, (simplifier, stage, ratios)
            assert max(result.parity[stage].values()) < 1e-2
    n_tf, ops, pads = _onnx_facts(tmp_path / "tf_onnxslim.onnx")
    assert "Pad" not in ops
    assert pads[(0, 0, 1, 1)] + pads[(1, 1, 2, 2)] == strided and pads[(1, 1, 2, 2)] == 2
    n_plain, _, plain_pads = _onnx_facts(export_onnx(tiny_checkpoint, tmp_path / "plain.onnx").path)
    assert n_tf == n_plain and sum(plain_pads.values()) == sum(pads.values())
    assert _onnx_facts(tmp_path / "tf_none.onnx")[1]["Pad"] == strided
    for target in ("tensorrt-8.5", "tensorrt-10"):
        errors = [f for f in check_onnx(tmp_path / "tf_onnxslim.onnx", target) if f.level == "error"]
        assert not errors, (target, errors)

"""The network: every backbone, named raw outputs, same in train and eval, finite gradients."""

from __future__ import annotations

import pytest
import torch

from edge_mtl.config import ModelConfig
from edge_mtl.model.backbone import MobileNetBackbone
from edge_mtl.model.heads.detection import anchor_points
from edge_mtl.model.tritask import build_model
from edge_mtl.types import OUTPUT_NAMES
from tests.helpers import TINY_SIZE, tiny_model_config

H, W = TINY_SIZE


@pytest.mark.parametrize("backbone", ["mobilenet_v3_large", "mobilenet_v3_small", "mobilenet_v2"])
def test_forward_backward_every_backbone(backbone):
    model = build_model(tiny_model_config(backbone=backbone))
    assert [s for _, s in model.backbone.feature_info] == [2, 4, 8, 16, 32]
    x = torch.randn(2, 3, H, W)
    out = model(x)
    n = len(anchor_points(H, W, model.det_strides)[0])
    assert tuple(out) == OUTPUT_NAMES
    assert out["det_logits"].shape == (2, n, 3)
    assert out["det_boxes"].shape == (2, n, 4)
    assert out["lane_logits"].shape == (2, 1, H // 2, W // 2)
    assert out["depth"].shape == (2, 1, H // 4, W // 4)
    total = sum(v.float().mean() for v in out.values())
    total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_train_and_eval_return_the_same_tensors():
    model = build_model(tiny_model_config())
    x = torch.randn(1, 3, H, W)
    train_out = model.train()(x)
    eval_out = model.eval()(x)
    assert {k: v.shape for k, v in train_out.items()} == {k: v.shape for k, v in eval_out.items()}


def test_outputs_respect_their_ranges():
    cfg = tiny_model_config(min_depth=0.5, max_depth=120.0)
    out = build_model(cfg).eval()(torch.randn(2, 3, H, W) * 3)
    boxes = out["det_boxes"]
    assert torch.all(boxes[..., 2] >= boxes[..., 0]) and torch.all(boxes[..., 3] >= boxes[..., 1])
    assert torch.all(out["depth"] >= 0.5 - 1e-4) and torch.all(out["depth"] <= 120.0 + 1e-3)


def test_outputs_stay_float32_under_bfloat16_autocast():
    """A CPU trains under bfloat16 autocast (train.amp_cpu): the heads' last convs run in
    bfloat16, but logits, boxes and depth come out in float32, finer than bfloat16's grid."""
    model = build_model(tiny_model_config()).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 3, H, W))
    assert {k: v.dtype for k, v in out.items()} == dict.fromkeys(OUTPUT_NAMES, torch.float32)
    for name in ("det_boxes", "depth"):
        assert not torch.equal(out[name], out[name].bfloat16().float()), name


def test_default_input_size_and_rejects_bad_sizes():
    cfg = ModelConfig()
    assert (cfg.input_height, cfg.input_width) == (384, 640)
    with pytest.raises(ValueError, match="multiple of 32"):
        ModelConfig(input_height=360)


def test_pretrained_weights_load_from_a_local_file(tmp_path):
    import torchvision

    ref = torchvision.models.mobilenet_v3_small(weights=None)
    path = tmp_path / "mnv3s.pth"
    torch.save(ref.state_dict(), path)
    bb = MobileNetBackbone("mobilenet_v3_small", pretrained=str(path))
    assert torch.equal(bb.features[0][0].weight, ref.features[0][0].weight)
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        MobileNetBackbone("mobilenet_v3_small", pretrained=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="unknown backbone"):
        MobileNetBackbone("resnet50")
    # another architecture's file (the default config's MobileNetV2 weights under a v3 backbone)
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), tmp_path / "mnv2.pth")
    with pytest.raises(ValueError, match=r"mnv2\.pth: does not hold mobilenet_v3_small weights "
                                         r"\(features\.0\.0\.weight has another shape\)"):
        MobileNetBackbone("mobilenet_v3_small", pretrained=str(tmp_path / "mnv2.pth"))


@pytest.mark.parametrize("stride", [2, 4])
def test_lane_head_gives_stride_2_logits_from_either_stride_and_trains(stride):
    from edge_mtl.config import LossConfig
    from edge_mtl.losses import lane_loss
    from edge_mtl.types import Batch

    model = build_model(tiny_model_config(lane_stride=stride))
    assert hasattr(model.lane_head, "lateral") == (stride == 2)
    out = model(torch.randn(2, 3, H, W))
    assert out["lane_logits"].shape == (2, 1, H // 2, W // 2)
    target = (torch.rand(2, H, W) > 0.9).float()
    flags = {"det": torch.zeros(2, dtype=torch.bool), "lane": torch.ones(2, dtype=torch.bool),
             "depth": torch.zeros(2, dtype=torch.bool)}
    batch = Batch(image=torch.zeros(2, 3, H, W), boxes=torch.zeros(2, 0, 4),
                  classes=torch.zeros(2, 0, dtype=torch.long), box_valid=torch.zeros(2, 0, dtype=torch.bool),
                  lane=target, depth=torch.zeros(2, 1, H, W),
                  depth_valid=torch.zeros(2, 1, H, W, dtype=torch.bool), has_label=flags)
    loss = lane_loss(out["lane_logits"], batch, LossConfig())  # targets stay at input size
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.lane_head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_lane_stride_other_than_2_or_4_is_refused():
    with pytest.raises(ValueError, match="lane_stride=3"):
        ModelConfig(lane_stride=3)


def test_stride_4_lane_head_lays_sub_pixel_logits_out_row_major_and_adds_detail():
    head = build_model(tiny_model_config(lane_stride=4)).lane_head.eval()
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.copy_(torch.tensor([0.0, 1.0, 2.0, 3.0]))
        head.detail.weight.zero_()
        head.detail.bias.fill_(10.0)
    c2 = torch.randn(1, head.detail.in_channels, 8, 12)
    logits = head(torch.randn(1, head.out.in_channels, 4, 6), c2)
    assert logits.shape == (1, 1, 8, 12)
    expected = torch.tensor([[10.0, 11.0], [12.0, 13.0]]).repeat(4, 6)  # cell (i, j) -> 2i+di, 2j+dj
    assert torch.equal(logits[0, 0], expected)

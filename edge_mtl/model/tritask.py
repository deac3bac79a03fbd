"""The tri-task network: MobileNet backbone + FPN + detection, lane and depth heads."""

from __future__ import annotations

import torch
from torch import nn

from edge_mtl.config import ModelConfig
from edge_mtl.model.backbone import MobileNetBackbone
from edge_mtl.model.heads.dense import DenseDecoder, DepthHead, LaneHead
from edge_mtl.model.heads.detection import DetectionHead
from edge_mtl.model.neck import FPN
from edge_mtl.types import OUTPUT_NAMES


class TriTaskNet(nn.Module):
    """One forward, the same in train and eval: a dict of the raw tensors in ``OUTPUT_NAMES``.

    det_logits [B, N, C] class logits per anchor point; det_boxes [B, N, 4] xyxy in input
    pixels; lane_logits [B, 1, H/2, W/2]; depth [B, 1, H/4, W/4] metres.
    ``keep_features=True`` keeps in ``self.features`` the trunk's (backbone + FPN) outputs that
    the heads read, (c2, c4, p3, p4, p5), for per-task gradients at the shared representation:
    as aliases the trunk itself does not read (c2 also feeds c4 and the FPN), so the gradient at
    each is the heads' alone and a backward from all of them counts every path once.
    An attribute, not an output: DDP passes outputs through its own autograd node, and the
    heads' graph would not reach those copies.
    """

    det_strides = (8, 16, 32)

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = MobileNetBackbone(cfg.backbone, (2, 4, 8, 16, 32), cfg.pretrained,
                                          cfg.tf_padding, cfg.freeze_backbone)
        ch = [c for c, _ in self.backbone.feature_info]
        self.neck = FPN(ch[2:], cfg.fpn_channels)
        self.det_head = DetectionHead(cfg.fpn_channels, cfg.num_classes, cfg.head_channels,
                                      self.det_strides)
        self.decoder = DenseDecoder(cfg.fpn_channels, ch[1], cfg.seg_channels)
        self.lane_head = LaneHead(cfg.seg_channels, ch[0], cfg.lane_stride)
        self.depth_head = DepthHead(cfg.seg_channels, cfg.min_depth, cfg.max_depth)

    features: tuple[torch.Tensor, ...] | None = None

    def forward(self, image: torch.Tensor, keep_features: bool = False) -> dict[str, torch.Tensor]:
        c2, c4, c8, c16, c32 = self.backbone(image)
        p3, p4, p5 = self.neck([c8, c16, c32])
        if keep_features:  # aliases that only the heads read: d L / d alias is the heads' path alone
            c2, c4, p3, p4, p5 = (t.view_as(t) for t in (c2, c4, p3, p4, p5))
        logits, boxes = self.det_head([p3, p4, p5], image.shape[-2], image.shape[-1])
        f4 = self.decoder(p3, c4)
        self.features = (c2, c4, p3, p4, p5) if keep_features else None
        outputs = (logits, boxes, self.lane_head(f4, c2), self.depth_head(f4))
        return dict(zip(OUTPUT_NAMES, outputs, strict=True))

    def shared_parameters(self) -> list[nn.Parameter]:
        """The trunk's trainable parameters (what every task's gradient reaches)."""
        return [p for m in (self.backbone, self.neck) for p in m.parameters() if p.requires_grad]


def build_model(cfg: ModelConfig) -> TriTaskNet:
    return TriTaskNet(cfg)

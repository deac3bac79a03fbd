"""The one post-processing every backend shares: raw outputs -> `Prediction`."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edge_mtl.runtime.geometry import Geometry, to_source
from edge_mtl.types import Prediction


@dataclass(frozen=True)
class PostprocessConfig:
    # The display settings: the best F1 of the released model on the synthetic val set
    # (apps/display_threshold.py; models/README.md, "Display settings"). eval uses its own.
    score_threshold: float = 0.55
    iou_threshold: float = 0.45
    max_detections: int = 100
    pre_nms_top_k: int = 1000
    lane_threshold: float = 0.5


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_detections(logits: np.ndarray, boxes: np.ndarray, cfg: PostprocessConfig
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class score threshold, top-k, class-aware NMS (OpenCV). Boxes stay in input pixels."""
    import cv2

    scores = _sigmoid(logits.astype(np.float32))  # [N, C]
    idx, cls = np.nonzero(scores > cfg.score_threshold)
    cand = scores[idx, cls]
    if len(cand) > cfg.pre_nms_top_k:
        top = np.argpartition(-cand, cfg.pre_nms_top_k)[: cfg.pre_nms_top_k]
        idx, cls, cand = idx[top], cls[top], cand[top]
    if len(cand) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    b = boxes[idx].astype(np.float32)
    xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1)
    keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), cand.tolist(), cls.tolist(),
                                   cfg.score_threshold, cfg.iou_threshold)
    keep = np.asarray(keep, np.int64).reshape(-1)
    keep = keep[np.argsort(-cand[keep], kind="stable")][: cfg.max_detections]
    return b[keep], cand[keep].astype(np.float32), cls[keep].astype(np.int64)


def postprocess(outputs: dict[str, np.ndarray], geometry: Geometry,
                cfg: PostprocessConfig | None = None, depth_scale: float = 1.0,
                map_scale: float = 1.0, depth_map_scale: float | None = None) -> Prediction:
    """Decode one image's raw outputs (batch dim removed) into source-frame pixels.

    ``geometry`` is how the frame was fitted to the input (`fit_geometry`); ``depth_scale``
    turns the network's canonical-focal depth into metres for this camera
    (`Geometry.depth_scale`; 1 when the camera's focal in input pixels is the canonical one).
    ``map_scale``: the lane mask and the depth map come at that fraction of the source size
    (boxes stay in source pixels); ``depth_map_scale`` (default: ``map_scale``) gives the depth
    map its own. The camera draws lanes from a half-size map and depth from a quarter-size one
    (`edge_mtl.camera.present`); metrics use full size.
    """
    import cv2

    depth_map_scale = map_scale if depth_map_scale is None else depth_map_scale
    for name, value in (("map_scale", map_scale), ("depth_map_scale", depth_map_scale)):
        if not 0 < value <= 1:
            raise ValueError(f"{name} must lie in (0, 1], got {value}")
    cfg = cfg or PostprocessConfig()
    boxes, scores, classes = decode_detections(outputs["det_logits"], outputs["det_boxes"], cfg)
    boxes = geometry.boxes_to_source(boxes)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # wholly in a letterbox border
    boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    maps = _scaled(geometry, map_scale)
    # Threshold the warped logits (not a warped binary mask) for clean thin lines.
    lane_logits = to_source(outputs["lane_logits"].reshape(outputs["lane_logits"].shape[-2:]), maps,
                            cv2.INTER_LINEAR, fill=-1e4)  # what a crop cut away is no lane
    logit_threshold = float(np.log(cfg.lane_threshold / (1 - cfg.lane_threshold)))
    lane = np.greater(lane_logits, np.float32(logit_threshold)).view(np.uint8)  # 0/1, no copy
    depth_maps = _scaled(geometry, depth_map_scale)
    depth = to_source(outputs["depth"].reshape(outputs["depth"].shape[-2:]), depth_maps, cv2.INTER_LINEAR)
    if depth_scale != 1.0:
        depth *= np.float32(depth_scale)
    return Prediction(boxes=boxes, scores=scores, classes=classes, lane=lane, depth=depth)


def _scaled(geometry: Geometry, scale: float) -> Geometry:
    """The same mapping onto a source frame ``scale`` times the size."""
    if scale == 1:
        return geometry
    sh, sw = geometry.source
    return replace(geometry, source=(max(1, round(sh * scale)), max(1, round(sw * scale))))

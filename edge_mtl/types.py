"""Data types that flow between the pipeline's stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

TASKS: tuple[str, ...] = ("det", "lane", "depth")
CLASSES: tuple[str, ...] = ("car", "truck", "pedestrian")

# Names of the network's raw outputs; they are also the ONNX output names.
OUTPUT_NAMES: tuple[str, ...] = ("det_logits", "det_boxes", "lane_logits", "depth")


DEFAULT_FOCAL_RATIO = 0.8  # focal / width assumed when a frame's intrinsics are unknown


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics plus the mounting of the camera above the road."""

    width: int = 1280
    height: int = 720
    fx: float = 1024.0
    fy: float = 1024.0
    cx: float = 640.0
    cy: float = 360.0
    mount_height: float = 1.5  # metres above the ground plane

    def to_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def assumed(cls, width: int, height: int) -> Camera:
        """A frame of unknown intrinsics: principal point at the centre, focal ``0.8 * width``
        (a 64 degree horizontal field of view, a typical dash cam's)."""
        f = DEFAULT_FOCAL_RATIO * width
        return cls(width=width, height=height, fx=f, fy=f, cx=width / 2, cy=height / 2)


@dataclass(frozen=True)
class Sample:
    """One frame at camera resolution with whatever labels it carries.

    image: uint8 BGR [H, W, 3]; boxes: float32 [M, 4] xyxy pixels; classes: int64 [M];
    lane: uint8 [H, W] (1 = marking); depth: float32 [H, W] metres, 0 = invalid;
    ignore: float32 [K, 4] xyxy regions where detections are neither positives nor negatives
    (KITTI DontCare, COCO crowds), or None. ``camera`` holds the intrinsics (from the dataset's
    calibration where it has one). A task whose ``has_label`` is False has its label fields None.
    """

    image: np.ndarray
    boxes: np.ndarray | None
    classes: np.ndarray | None
    lane: np.ndarray | None
    depth: np.ndarray | None
    camera: Camera = field(default_factory=Camera)
    name: str = ""
    ignore: np.ndarray | None = None

    @property
    def has_label(self) -> dict[str, bool]:
        return {"det": self.boxes is not None, "lane": self.lane is not None,
                "depth": self.depth is not None}


@dataclass(frozen=True)
class Prediction:
    """Decoded network output in original-image pixels (built only by runtime.postprocess)."""

    boxes: np.ndarray  # float32 [K, 4] xyxy
    scores: np.ndarray  # float32 [K]
    classes: np.ndarray  # int64 [K]
    lane: np.ndarray  # uint8 [H, W], 1 = marking
    depth: np.ndarray  # float32 [H, W] metres


@dataclass
class Batch:
    """A training/eval batch at network input resolution.

    image: float32 [B, 3, H, W] normalised; boxes: [B, M, 4] xyxy input pixels;
    classes: int64 [B, M]; box_valid: bool [B, M]; lane: float32 [B, H, W] marking coverage
    in [0, 1]; depth: float32 [B, 1, H, W] canonical-focal metres (edge_mtl.runtime.geometry);
    depth_valid: bool [B, 1, H, W]; has_label: task -> bool [B], the per-sample flag that loss
    masking uses; ignore: [B, K, 4] xyxy regions where no detection is a negative, with
    ignore_valid [B, K]; source: int64 [B], the dataset of a mix each sample came from.
    """

    image: torch.Tensor
    boxes: torch.Tensor
    classes: torch.Tensor
    box_valid: torch.Tensor
    lane: torch.Tensor
    depth: torch.Tensor
    depth_valid: torch.Tensor
    has_label: dict[str, torch.Tensor]
    ignore: torch.Tensor | None = None
    ignore_valid: torch.Tensor | None = None
    source: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        moved = {k: (v.to(device, non_blocking=True) if v is not None else None)
                 for k, v in vars(self).items() if k != "has_label"}
        return Batch(**moved, has_label={k: v.to(device) for k, v in self.has_label.items()})

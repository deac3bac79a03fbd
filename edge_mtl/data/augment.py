"""Training augmentation on torchvision.transforms.v2 and tv_tensors, labels kept exact.

Before the frame is fitted to the input, an optional band of its rows (`wide_crop`): the wide
strip a KITTI- or CULane-like sensor gives once letterboxed. Then, at network resolution,
geometric (image, boxes, ignore regions, lane coverage and depth move together): horizontal
flip, scale jitter, small rotation and shift (one `affine`), and the random crop to
``train.crop_width``. Masks (lane, depth) are resampled by nearest neighbour, so depth is never
interpolated across invalid pixels; pixels moved in from outside are invalid depth and no lane.
Photometric, on the image only: brightness/contrast/saturation/hue jitter, Gaussian blur,
Gaussian noise, JPEG artefacts (through OpenCV's codec). A zoom by ``s`` multiplies the camera's
focal length (in input pixels) by ``s``; the item's ``focal`` follows, so canonical depth stays
exact.

Every random draw comes from the ``rng`` passed in (a pure function of seed, epoch and sample
in training), torchvision's own draws included, so a resumed run augments exactly as before.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from edge_mtl.config import AugmentConfig
from edge_mtl.data.transforms import Item, clip_boxes, crop_rows
from edge_mtl.runtime.geometry import PAD_BGR
from edge_mtl.types import Sample

_PAD_RGB = [float(v) for v in PAD_BGR[::-1]]


def wide_crop(sample: Sample, cfg: AugmentConfig, rng: np.random.Generator) -> Sample:
    """With probability ``cfg.wide_p``, a band of rows of the camera frame at an aspect ratio
    drawn uniformly between the frame's own and ``cfg.wide_aspect`` (`crop_rows`: labels exact).
    No draw is made when ``wide_p`` is 0, so other augmentations keep their random stream."""
    if not cfg.wide_p:
        return sample
    h, w = sample.image.shape[:2]
    take, aspect = rng.random() < cfg.wide_p, float(rng.uniform(w / h, max(w / h, cfg.wide_aspect)))
    rows = min(h, max(1, round(w / aspect)))
    if not take or rows == h:
        return sample
    top = int(rng.integers(0, h - rows + 1))
    return crop_rows(sample, top, top + rows)


def augment(item: Item, cfg: AugmentConfig, rng: np.random.Generator, hflip: bool = True,
            crop_width: int | None = None) -> Item:
    """A randomly augmented copy of ``item`` (network resolution, see module docstring)."""
    seed = int(rng.integers(0, 2**63 - 1))
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # the CPU generator only: CUDA's stays untouched
        return _augment(item, cfg, rng, hflip, crop_width)


def _augment(item: Item, cfg: AugmentConfig, rng: np.random.Generator, hflip: bool,
             crop_width: int | None) -> Item:
    h, w = item.image.shape[:2]
    image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(item.image[..., ::-1])).permute(2, 0, 1))
    boxes = _boxes(item.boxes, (h, w))
    ignore = _boxes(item.ignore, (h, w))
    lane = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(item.lane)))
    depth = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(item.depth)))
    area = _area(boxes)
    focal = item.focal

    if hflip and rng.random() < 0.5:
        image, boxes, ignore, lane, depth = (F.horizontal_flip(t)
                                             for t in (image, boxes, ignore, lane, depth))
    scale = float(rng.uniform(1 - cfg.scale_jitter, 1 + cfg.scale_jitter))
    angle = float(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    shift = [float(rng.uniform(-cfg.translate, cfg.translate) * w),
             float(rng.uniform(-cfg.translate, cfg.translate) * h)]
    if scale != 1.0 or angle or any(shift):
        common = dict(angle=angle, translate=shift, scale=scale, shear=[0.0, 0.0])
        image = F.affine(image, interpolation=F.InterpolationMode.BILINEAR, fill=_PAD_RGB, **common)
        boxes, ignore = F.affine(boxes, **common), F.affine(ignore, **common)
        lane, depth = F.affine(lane, fill=[0.0], **common), F.affine(depth, fill=[0.0], **common)
        area = area * scale * scale
        focal *= scale
    x0, cw = 0, w
    if crop_width and crop_width < w:
        x0, cw = int(rng.integers(0, w - crop_width + 1)), crop_width
        image, boxes, ignore, lane, depth = (F.crop(t, 0, x0, h, cw)
                                             for t in (image, boxes, ignore, lane, depth))
    image = _photometric(image, cfg, rng)

    out_boxes, classes, out_ignore = clip_boxes(boxes.numpy().astype(np.float32), item.classes,
                                                ignore.numpy().astype(np.float32), area, (0, 0, cw, h))
    return dataclasses.replace(
        item, image=np.ascontiguousarray(image.permute(1, 2, 0).numpy()[..., ::-1]), boxes=out_boxes,
        classes=classes, ignore=out_ignore, lane=np.ascontiguousarray(lane.numpy()),
        depth=np.ascontiguousarray(depth.numpy()), focal=focal)


def _photometric(image: torch.Tensor, cfg: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """Colour jitter (random order of the four), blur, noise and JPEG, on a uint8 RGB image."""
    j = cfg.color_jitter
    ops = [(F.adjust_brightness, 1 + rng.uniform(-j, j)), (F.adjust_contrast, 1 + rng.uniform(-j, j)),
           (F.adjust_saturation, 1 + rng.uniform(-j, j)), (F.adjust_hue, rng.uniform(-cfg.hue, cfg.hue))]
    for k in rng.permutation(len(ops)):
        op, factor = ops[k]
        if factor != (0.0 if op is F.adjust_hue else 1.0):
            image = op(image, float(factor))
    if rng.random() < cfg.blur_p:
        sigma = float(rng.uniform(0.3, 1.5))
        image = F.gaussian_blur(image, [5, 5], [sigma, sigma])
    if rng.random() < cfg.noise_p:
        sigma = float(rng.uniform(0.01, 0.05))
        noisy = F.gaussian_noise(F.to_dtype(image, torch.float32, scale=True), sigma=sigma)
        image = F.to_dtype(noisy, torch.uint8, scale=True)
    if rng.random() < cfg.jpeg_p:
        image = _jpeg(image, int(rng.integers(30, 91)))
    return image


def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG artefacts through OpenCV's codec (`F.jpeg` goes through torchvision's image I/O,
    deprecated since 0.29), the same encode-decode round trip."""
    import cv2

    bgr = np.ascontiguousarray(image.permute(1, 2, 0).numpy()[..., ::-1])  # OpenCV's channel order
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return image
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
    return torch.from_numpy(np.ascontiguousarray(decoded)).permute(2, 0, 1)


def _boxes(array: np.ndarray, size: tuple[int, int]) -> tv_tensors.BoundingBoxes:
    return tv_tensors.BoundingBoxes(torch.from_numpy(np.asarray(array, np.float32).reshape(-1, 4)),
                                    format="XYXY", canvas_size=size, clamping_mode=None)


def _area(boxes: torch.Tensor) -> np.ndarray:
    b = boxes.numpy()
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)

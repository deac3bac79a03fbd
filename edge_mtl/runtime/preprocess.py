"""The one pre-processing every caller shares: fit to the input (`edge_mtl.runtime.geometry`:
letterbox or crop, never a squash), BGR->RGB, normalise.

A model exported with ``--uint8-input`` (input format ``uint8``) does the last two steps in its
graph: it reads the fitted BGR uint8 frame as it is, ``[H, W, 3]``, so the CPU only resizes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge_mtl.runtime.geometry import PAD_BGR, Geometry, fit_geometry, place

if TYPE_CHECKING:
    from edge_mtl.runtime.backend import ModelInfo

INPUT_FORMATS: tuple[str, ...] = ("float", "uint8")  # what a model reads, see `preprocess`

# ImageNet statistics in RGB order (what torchvision's MobileNets expect).
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255.0
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255.0


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Any camera or file frame -> BGR uint8 ``[H, W, 3]`` (the one conversion every caller uses).

    Gray (``HxW`` or ``HxWx1``) and BGRA become BGR; 16-bit frames keep their top 8 bits; a BGR
    uint8 frame is returned as is (no copy).
    """
    import cv2

    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 or uint16 image, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {image.shape}")
    return image


def fit_image(image: np.ndarray, geometry: Geometry) -> np.ndarray:
    """A camera or file frame placed in the network input by ``geometry`` (BGR uint8)."""
    import cv2

    return place(to_bgr(image), geometry, cv2.INTER_AREA, PAD_BGR)


# normalize() as 256-entry tables, one per output channel (R, G, B): entry v holds
# ``(v - MEAN[c]) / STD[c]`` computed in float32 exactly as the formula would, so a table look-up
# gives bit-identical output at a fraction of the cost (no float arithmetic per pixel).
_LUT = ((np.arange(256, dtype=np.float32)[None, :] - MEAN[:, None]) / STD[:, None]).astype(np.float32)
_LUT_ROWS = tuple(np.ascontiguousarray(row.reshape(1, 256)) for row in _LUT)


def normalize(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """BGR uint8 [H, W, 3] at network size -> float32 [3, H, W] RGB, ``(rgb - MEAN) / STD``.

    Computed as one table look-up per channel written straight into the planar output (``out``,
    a C-contiguous float32 ``[3, H, W]``, when given), bit-identical to the float formula.
    """
    import cv2

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"normalize expects a BGR uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    if out is None:
        out = np.empty((3, h, w), np.float32)
    elif out.shape != (3, h, w) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 [3, {h}, {w}], got {out.dtype} {out.shape}")
    b, g, r = cv2.split(image)
    for c, plane in enumerate((r, g, b)):
        cv2.LUT(plane, _LUT_ROWS[c], dst=out[c])
    return out


def input_dtype(input_format: str) -> type:
    """The numpy type of a model input of ``input_format``."""
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input format {input_format!r}: expected one of {list(INPUT_FORMATS)}")
    return np.float32 if input_format == "float" else np.uint8


def model_input(fitted: np.ndarray, input_format: str = "float") -> np.ndarray:
    """A frame fitted to the input (`fit_image`) -> what a model of ``input_format`` reads: float32
    ``[3, H, W]`` normalised (`normalize`), or the BGR uint8 ``[H, W, 3]`` itself (``uint8``)."""
    if input_dtype(input_format) is np.uint8:
        return np.ascontiguousarray(fitted)
    return normalize(fitted)


def preprocess(image: np.ndarray, size: tuple[int, int], out: np.ndarray | None = None,
               mode: str = "letterbox", input_format: str = "float") -> np.ndarray:
    """Camera frame -> network input [3, H, W] float32 (into ``out`` when given, see `normalize`),
    fitted by `fit_geometry` (``mode``: letterbox or crop); ``input_format`` ``uint8``: the
    fitted BGR uint8 [H, W, 3] (``out`` unused)."""
    fitted = fit_image(image, fit_geometry(image.shape[:2], size, mode))
    if input_dtype(input_format) is np.uint8:
        return model_input(fitted, input_format)
    return normalize(fitted, out)


class FramePrep:
    """Camera frame -> the batch-1 network input of one model, with the frame's `Geometry` and
    depth scale (cached while the frame size stays the same): what every camera loop runs."""

    def __init__(self, info: ModelInfo, focal: float | None = None):
        self.info, self.focal = info, focal
        self.geometry: Geometry | None = None
        self.depth_scale = 1.0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        shape = image.shape[:2]
        if self.geometry is None or self.geometry.source != shape:
            self.geometry = self.info.geometry(shape)
            self.depth_scale = self.info.depth_scale(self.geometry, self.focal)
        return model_input(fit_image(image, self.geometry), self.info.input_format)[None]

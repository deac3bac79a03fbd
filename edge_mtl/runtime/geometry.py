"""The one camera geometry: how a frame of any size reaches the network input, and back.

Rule (never a squash: one scale for both axes):

- ``letterbox`` (default): scale the whole frame to fit inside the input, centre it, and fill the
  border with the ImageNet mean colour (zero after normalisation). Nothing of the frame is lost.
- ``crop``: scale the frame to cover the input and cut the centre. Nothing is padded.

A 1280x720 frame into 384x640 is scaled by 0.5 to 640x360 with 12 rows of border above and
below; KITTI's 1242x375 by 0.515 to 640x193; CULane's 1640x590 by 0.39 to 640x230.

Metric depth depends on the focal length. The network learns depth in a canonical focal length
``f_c`` (in input pixels); a camera of focal ``fx`` (its own pixels) seen through a geometry of
scale ``s`` has focal ``fx * s`` in input pixels, so metres = network depth * ``fx * s / f_c``
(`Geometry.depth_scale`). A model trained on one camera then gives metres on another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_mtl.compat import zip_strict

RESIZE_MODES: tuple[str, ...] = ("letterbox", "crop")
# ImageNet mean in BGR uint8: the border of a letterboxed frame is zero once normalised.
PAD_BGR: tuple[int, int, int] = (104, 116, 124)
CANONICAL_FOCAL_RATIO = 0.8  # default canonical focal / input width (a 64 degree field of view)


@dataclass(frozen=True)
class Geometry:
    """Source frame -> network input: ``x_in = x_src * scale_x + offset_x`` (same for y).

    ``resized`` (h, w) is the size the frame is resized to before the border or the cut; the
    scales are exactly ``resized / source`` per axis (they differ from each other only by
    rounding to whole pixels).
    """

    source: tuple[int, int]  # (h, w)
    input: tuple[int, int]  # (h, w)
    resized: tuple[int, int]  # (h, w)
    offset: tuple[int, int]  # (x, y) input pixel of the resized frame's corner (negative: cut)
    mode: str

    @property
    def scale(self) -> tuple[float, float]:
        return self.resized[1] / self.source[1], self.resized[0] / self.source[0]

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        sx, sy = self.scale
        ox, oy = self.offset
        return (boxes * np.array([sx, sy, sx, sy], np.float32) + np.array([ox, oy, ox, oy], np.float32)
                ).astype(np.float32)

    def boxes_to_source(self, boxes: np.ndarray) -> np.ndarray:
        """Input-pixel boxes back in source pixels, clipped to the frame."""
        sx, sy = self.scale
        ox, oy = self.offset
        out = (boxes - np.array([ox, oy, ox, oy], np.float32)) / np.array([sx, sy, sx, sy], np.float32)
        h, w = self.source
        return np.clip(out, 0, [w, h, w, h]).astype(np.float32)

    def depth_scale(self, fx: float, canonical_focal: float) -> float:
        """Metres per unit of network depth for a camera of focal ``fx`` (source pixels)."""
        return float(fx) * self.scale[0] / float(canonical_focal)

    def in_view(self) -> tuple[int, int, int, int]:
        """(u0, v0, u1, v1): the source pixels the network sees (all of them unless ``crop``)."""
        if self.mode != "crop":
            return 0, 0, self.source[1], self.source[0]
        sx, sy = self.scale
        ox, oy = self.offset
        h, w = self.input
        return (max(0, int(np.ceil(-ox / sx))), max(0, int(np.ceil(-oy / sy))),
                min(self.source[1], int(np.floor((w - ox) / sx))),
                min(self.source[0], int(np.floor((h - oy) / sy))))

    def content(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1): the input pixels that hold the frame (the rest is border)."""
        ox, oy = self.offset
        h, w = self.input
        return max(0, ox), max(0, oy), min(w, ox + self.resized[1]), min(h, oy + self.resized[0])


def fit_geometry(source: tuple[int, int], size: tuple[int, int], mode: str = "letterbox") -> Geometry:
    """The geometry that maps a ``source`` (h, w) frame onto an input of ``size`` (h, w)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r}: expected one of {list(RESIZE_MODES)}")
    sh, sw = int(source[0]), int(source[1])
    h, w = int(size[0]), int(size[1])
    if sh <= 0 or sw <= 0:
        raise ValueError(f"cannot fit a {sw}x{sh} frame")
    pick = min if mode == "letterbox" else max
    s = pick(h / sh, w / sw)
    rh, rw = max(1, round(sh * s)), max(1, round(sw * s))
    if mode == "letterbox":
        rh, rw = min(rh, h), min(rw, w)
    else:
        rh, rw = max(rh, h), max(rw, w)
    return Geometry((sh, sw), (h, w), (rh, rw), ((w - rw) // 2, (h - rh) // 2), mode)


def canonical_focal(input_width: int, value: float | None = None) -> float:
    """The canonical focal length in input pixels (``value``, or 0.8 x the input width)."""
    return float(value) if value is not None else CANONICAL_FOCAL_RATIO * input_width


def place(array: np.ndarray, geometry: Geometry, interpolation: int, fill: float | tuple = 0) -> np.ndarray:
    """Resize ``array`` (an image or a per-pixel label at source size) by ``geometry`` and put it
    in the input frame: border filled with ``fill`` (letterbox) or the centre cut (crop)."""
    import cv2

    h, w = geometry.input
    rh, rw = geometry.resized
    if array.shape[:2] != (rh, rw):
        array = cv2.resize(array, (rw, rh), interpolation=interpolation)
    ox, oy = geometry.offset
    if (ox, oy) == (0, 0) and (rh, rw) == (h, w):
        return np.ascontiguousarray(array)
    if geometry.mode == "crop":
        return np.ascontiguousarray(array[-oy:-oy + h, -ox:-ox + w])
    value = list(fill) if isinstance(fill, tuple) else fill
    return cv2.copyMakeBorder(array, oy, h - rh - oy, ox, w - rw - ox, cv2.BORDER_CONSTANT,
                              value=value)


def to_source(plane: np.ndarray, geometry: Geometry, interpolation: int, fill: float = 0.0) -> np.ndarray:
    """A network output map (any resolution covering the input) -> float32 at the source size.

    Each source pixel samples the output where the geometry puts it (one affine warp); source
    pixels outside the input (cut away by ``crop``) get ``fill``.
    """
    import cv2

    ph, pw = plane.shape[:2]
    h, w = geometry.input
    sx, sy = geometry.scale
    ox, oy = geometry.offset
    kx, ky = pw / w, ph / h  # output pixels per input pixel
    sh, sw = geometry.source
    if geometry.mode == "letterbox":
        x0, y0, x1, y1 = (v * k for v, k in zip_strict(geometry.content(), (kx, ky, kx, ky)))
        if all(float(v).is_integer() for v in (x0, y0, x1, y1)):  # the usual case: one plain resize
            inner = plane[int(y0):int(y1), int(x0):int(x1)]
            return cv2.resize(np.ascontiguousarray(inner, np.float32), (sw, sh), interpolation=interpolation)
    # source pixel centre u -> input x = (u + 0.5) * sx + ox -> output pixel (x * kx) - 0.5
    m = np.array([[sx * kx, 0, (0.5 * sx + ox) * kx - 0.5],
                  [0, sy * ky, (0.5 * sy + oy) * ky - 0.5]], np.float64)
    out = cv2.warpAffine(np.ascontiguousarray(plane, np.float32), m, (sw, sh),
                         flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    if geometry.mode == "crop":
        u0, v0, u1, v1 = geometry.in_view()
        out[:, :u0] = fill
        out[:, u1:] = fill
        out[:v0] = fill
        out[v1:] = fill
    return out

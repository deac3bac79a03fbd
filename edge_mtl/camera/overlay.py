"""Draw a `Prediction` on its camera frame: lane tint, boxes with class / score / distance, a depth
inset and a HUD with FPS and per-stage milliseconds.

Everything draws in place on the frame with OpenCV calls or numpy on small regions, so the cost is
about that of the pixels touched: the lane tint is two masked ``cv2`` operations on the mask's row
band, the depth inset is resized from the depth map to inset size *before* it is colour-mapped, and
box distances read only the pixels inside each box.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from edge_mtl.compat import zip_strict
from edge_mtl.types import CLASSES, Prediction

# BGR colours per class (car, truck, pedestrian), as in apps/render_drive.py.
CLASS_COLORS: tuple[tuple[int, int, int], ...] = ((80, 220, 80), (230, 140, 40), (60, 60, 240))
# Lane tint: subtract, then add, on marking pixels only (pushes even white paint to magenta).
# Two saturating ops on scalars a uint8 holds: one add of (70, -120, 70) takes a wider path, 7x slower.
LANE_SUBTRACT = (0.0, 120.0, 0.0, 0.0)
LANE_ADD = (70.0, 0.0, 70.0, 0.0)
# Boxes that get a text label (the most confident; the others are outlined only): a label costs
# ~15x an outline, and a frame of dozens of labels is unreadable anyway.
MAX_LABELS = 12
DEPTH_RANGE = (1.0, 80.0)  # metres spanned by the inset's colour map (log scale, near = warm)
HUD_STAGES = ("capture", "pre", "infer", "post", "draw")
_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def box_distance(depth: np.ndarray, box: Sequence[float], frame_size: tuple[int, int] | None = None,
                 quantile: float = 0.25) -> float:
    """Distance in metres to the object in ``box`` (xyxy in frame pixels).

    The ``quantile`` of the valid (> 0) predicted depth in the box's lower-middle part: the middle
    half across, 50–90 % of the way down, where the object's near face is. Pixels there that are
    not the object (road between the wheels, background) are farther, so a low quantile ignores
    them. ``depth`` may be smaller than the frame (``frame_size`` = (height, width) maps the box
    onto it); a large region is sampled on a grid of about 1,000 points. NaN when the region holds
    no valid depth.
    """
    dh, dw = depth.shape[:2]
    fh, fw = frame_size or (dh, dw)
    sx, sy = dw / fw, dh / fh
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    c0 = min(max(int((x1 + 0.25 * w) * sx), 0), dw - 1)
    c1 = min(max(math.ceil((x2 - 0.25 * w) * sx), c0 + 1), dw)
    r0 = min(max(int((y1 + 0.5 * h) * sy), 0), dh - 1)
    r1 = min(max(math.ceil((y1 + 0.9 * h) * sy), r0 + 1), dh)
    # At most ~1k samples: the depth head predicts at stride 4, so a full-res box repeats values.
    step = max(1, int(math.sqrt((r1 - r0) * (c1 - c0) / 1024)))
    values = depth[r0:r1:step, c0:c1:step].ravel()
    values = values[values > 0]
    if values.size == 0:
        return float("nan")
    k = int(quantile * (values.size - 1))
    return float(np.partition(values, k)[k])


def tint_lanes(image: np.ndarray, lane: np.ndarray) -> None:
    """Tint lane-marking pixels (``lane`` != 0) magenta in place; other pixels are not touched."""
    import cv2

    if lane.dtype != np.uint8:
        lane = lane.astype(np.uint8)
    rows = np.flatnonzero(lane.any(axis=1))
    if rows.size == 0:
        return
    fh, fw = image.shape[:2]
    if lane.shape == (fh, fw):
        top, bottom = rows[0], rows[-1] + 1
        mask = np.ascontiguousarray(lane[top:bottom])
    else:  # a smaller mask (the camera's half-size maps): only its band of rows is enlarged
        lh = lane.shape[0]
        top, bottom = int(rows[0] * fh / lh), min(fh, math.ceil((rows[-1] + 1) * fh / lh))
        # rows as a full-size nearest resize samples them (row y reads floor(y * lh / fh))
        src = np.minimum(np.floor(np.arange(top, bottom) * (lh / fh)).astype(np.int64), lh - 1)
        mask = cv2.resize(np.ascontiguousarray(lane[src]), (fw, bottom - top),
                          interpolation=cv2.INTER_NEAREST)
    band = image[top:bottom]  # a view: the masked ops below write into the frame
    cv2.subtract(band, LANE_SUBTRACT, dst=band, mask=mask)
    cv2.add(band, LANE_ADD, dst=band, mask=mask)


_TURBO: np.ndarray | None = None  # cv2's COLORMAP_TURBO as a 256-entry BGR table, built once


def _turbo() -> np.ndarray:
    """COLORMAP_TURBO as a [1, 256, 3] uint8 table (``applyColorMap`` rebuilds it on every call)."""
    global _TURBO
    if _TURBO is None:
        import cv2

        _TURBO = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(1, 256), cv2.COLORMAP_TURBO)
    return _TURBO


def depth_colormap(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Depth (metres, any resolution) -> BGR ``size`` = (height, width) image, log scale over
    `DEPTH_RANGE` (near = red, far = blue; no depth = black). Resized first, then coloured."""
    import cv2

    h, w = size
    small = depth.astype(np.float32, copy=False)
    if small.shape[:2] != (h, w):
        interp = cv2.INTER_NEAREST if depth.shape[0] >= h else cv2.INTER_LINEAR  # shrink: sample only
        small = cv2.resize(small, (w, h), interpolation=interp)
    near, far = DEPTH_RANGE
    scale = np.float32(255.0 / math.log(far / near))
    level = (np.float32(math.log(far)) - np.log(np.maximum(small, np.float32(1e-3)))) * scale
    gray = np.clip(level, 0, 255).astype(np.uint8)
    colored = cv2.LUT(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), _turbo())
    colored[small <= 0] = 0
    return colored


def draw_depth_inset(image: np.ndarray, depth: np.ndarray, fraction: float = 0.25) -> None:
    """The depth map as a colour inset in the top-right corner (``fraction`` of the frame's width)."""
    import cv2

    fh, fw = image.shape[:2]
    w = max(int(fw * fraction), 8)
    h = max(round(w * fh / fw), 8)
    image[:h, fw - w:] = depth_colormap(depth, (h, w))
    cv2.rectangle(image, (fw - w, 0), (fw - 1, h - 1), (255, 255, 255), 1)
    cv2.putText(image, f"depth {DEPTH_RANGE[0]:g}-{DEPTH_RANGE[1]:g} m (log)", (fw - w + 4, h - 6),
                _FONT, 0.4, (255, 255, 255), 1, cv2.LINE_AA)


def draw_boxes(image: np.ndarray, pred: Prediction, distances: Sequence[float],
               class_names: Sequence[str] = CLASSES, labelled: Sequence[int] | None = None) -> None:
    """Each box outlined, those in ``labelled`` (indices; default: all) with a label ``class score
    distance`` (``distances`` lists theirs, in that order)."""
    import cv2

    for box, cls in zip_strict(pred.boxes, pred.classes):
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        color = CLASS_COLORS[int(cls) % len(CLASS_COLORS)]
        # 2 px wide as two 1 px outlines: a thick cv2.rectangle is filled as polygons, ~15x slower
        cv2.rectangle(image, (x1, y1), (x2, y2), color, 1)
        cv2.rectangle(image, (x1 + 1, y1 + 1), (x2 - 1, y2 - 1), color, 1)
    chosen = range(len(pred.boxes)) if labelled is None else labelled
    for i, dist in zip_strict(chosen, distances):
        x1, y1 = (round(float(v)) for v in pred.boxes[i][:2])
        cls = int(pred.classes[i])
        color = CLASS_COLORS[cls % len(CLASS_COLORS)]
        name = class_names[cls] if cls < len(class_names) else str(cls)
        label = f"{name} {float(pred.scores[i]):.2f}" + ("" if math.isnan(dist) else f" {dist:.1f} m")
        (tw, th), base = cv2.getTextSize(label, _FONT, 0.5, 1)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else y1 + th + 4  # above the box, else inside it
        cv2.rectangle(image, (x1, ty - th - 2), (x1 + tw + 4, ty + base), color, cv2.FILLED)
        cv2.putText(image, label, (x1 + 2, ty), _FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)


def hud_lines(fps: float | None, stages_ms: Mapping[str, float], status: str = "") -> list[str]:
    """The HUD's text: FPS (+ status), then ms per stage in `HUD_STAGES` order."""
    head = "FPS --" if fps is None or math.isnan(fps) else f"FPS {fps:.1f}"
    ms = "  ".join(f"{k} {stages_ms[k]:.1f}" for k in HUD_STAGES
                   if k in stages_ms and not math.isnan(stages_ms[k]))
    return [f"{head}  {status}".rstrip(), f"{ms} ms" if ms else "ms --"]


def draw_hud(image: np.ndarray, lines: Sequence[str]) -> None:
    """Text lines top-left on a darkened band."""
    import cv2

    sizes = [cv2.getTextSize(t, _FONT, 0.55, 1)[0] for t in lines]
    w = min(max((s[0] for s in sizes), default=0) + 16, image.shape[1])
    h = min(22 * len(lines) + 10, image.shape[0])
    roi = image[:h, :w]
    roi >>= 1  # halve the brightness behind the text
    for i, text in enumerate(lines):
        cv2.putText(image, text, (8, 24 + 22 * i), _FONT, 0.55, (255, 255, 255), 1, cv2.LINE_AA)


def draw_overlay(image: np.ndarray, pred: Prediction, hud: Sequence[str] | None = None,
                 class_names: Sequence[str] = CLASSES, depth_inset: bool = True,
                 max_labels: int | None = MAX_LABELS) -> np.ndarray:
    """Draw ``pred`` on ``image`` (BGR uint8, the frame it was predicted on) in place; returns it.
    Every box is outlined; the ``max_labels`` most confident (None: all) are labelled."""
    tint_lanes(image, pred.lane)
    size = image.shape[:2]
    labelled = np.argsort(-np.asarray(pred.scores), kind="stable")[:max_labels].tolist()
    distances = [box_distance(pred.depth, pred.boxes[i], size) for i in labelled]
    draw_boxes(image, pred, distances, class_names, labelled)
    if depth_inset:
        draw_depth_inset(image, pred.depth)
    if hud:
        draw_hud(image, hud)
    return image

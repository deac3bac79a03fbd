"""Render a synthetic drive to a video, optionally with its ground truth drawn on it.

    python apps/render_drive.py --out drive.mp4 --frames 300 --seed 4 [--labels]

The frames are what the camera app will consume as a file source; --labels shows the exact
boxes, lane markings and a depth strip the world produced (useful to eyeball the labels).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge_mtl.data.drive import drive
from edge_mtl.types import CLASSES, Sample
from edge_mtl.video import Recorder

COLORS = [(80, 220, 80), (230, 140, 40), (60, 60, 240)]


def draw_labels(sample: Sample) -> np.ndarray:
    """Ground truth over the frame: lane paint in magenta, boxes by class, a depth strip."""
    img = sample.image.copy()
    img[sample.lane > 0] = (255, 0, 255)
    for box, cls in zip(sample.boxes, sample.classes, strict=True):
        x1, y1, x2, y2 = box.round().astype(int).tolist()
        cv2.rectangle(img, (x1, y1), (x2, y2), COLORS[cls], 2)
        cv2.putText(img, CLASSES[cls], (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    COLORS[cls], 1, cv2.LINE_AA)
    depth = np.clip(sample.depth / 80.0 * 255, 0, 255).astype(np.uint8)
    strip = cv2.applyColorMap(255 - depth, cv2.COLORMAP_TURBO)
    strip[sample.depth == 0] = 0
    h, w = img.shape[:2]
    inset = cv2.resize(strip, (w // 4, h // 4), interpolation=cv2.INTER_NEAREST)
    img[: h // 4, w - w // 4:] = inset
    return img


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output video (.mp4 or .avi)")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--labels", action="store_true", help="draw the ground truth")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with Recorder(out, args.fps) as video:
        for frame in tqdm(drive(args.seed, args.frames, fps=args.fps), total=args.frames, unit="frame"):
            video.write(draw_labels(frame.sample) if args.labels else frame.sample.image)
    print(f"wrote {args.frames} frames to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

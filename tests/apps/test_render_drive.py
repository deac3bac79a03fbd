from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

APP = Path(__file__).resolve().parents[2] / "apps" / "render_drive.py"


def load_app():
    spec = importlib.util.spec_from_file_location("render_drive", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_renders_a_readable_video_with_labels(tmp_path):
    app = load_app()
    out = tmp_path / "drive.mp4"
    assert app.main(["--out", str(out), "--frames", "3", "--seed", "2", "--labels"]) == 0
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 3 and frames[0].shape == (720, 1280, 3)
    # The label overlay paints lane markings magenta somewhere in the frame.
    magenta = (frames[0][..., 0] > 200) & (frames[0][..., 1] < 80) & (frames[0][..., 2] > 200)
    assert np.count_nonzero(magenta) > 100

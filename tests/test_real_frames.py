"""Smoke test on real 1280x720 driving frames (shared/data/bdd_frames, no labels)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edge_mtl.model.tritask import build_model
from edge_mtl.runtime.geometry import fit_geometry
from edge_mtl.runtime.postprocess import postprocess
from edge_mtl.runtime.preprocess import preprocess
from tests.helpers import TINY_SIZE, tiny_model_config

FRAMES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bdd_frames"


@pytest.mark.skipif(not FRAMES.is_dir(), reason="shared/data/bdd_frames not beside the checkout")
def test_real_frames_go_through_pre_model_post():
    paths = sorted(FRAMES.glob("*.jpg"))
    assert paths
    model = build_model(tiny_model_config()).eval()
    for path in paths[:3]:
        frame = cv2.imread(str(path))
        x = torch.from_numpy(preprocess(frame, TINY_SIZE))[None]
        with torch.inference_mode():
            raw = {k: v[0].numpy() for k, v in model(x).items()}
        pred = postprocess(raw, fit_geometry(frame.shape[:2], TINY_SIZE))
        assert pred.lane.shape == frame.shape[:2] and pred.depth.shape == frame.shape[:2]
        assert np.isfinite(pred.depth).all()
        assert np.all(pred.boxes[:, 2] <= frame.shape[1]) and np.all(pred.boxes[:, 3] <= frame.shape[0])

"""The last stage of both camera loops: post-processing, the overlay and the output of one frame."""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_mtl.runtime.backend import Backend
from edge_mtl.runtime.timing import StageTimer

if TYPE_CHECKING:
    from edge_mtl.runtime.geometry import Geometry
    from edge_mtl.runtime.postprocess import PostprocessConfig
    from edge_mtl.video import Recorder


# The lane mask at half the frame's size and the depth map at a quarter: drawn the same (the
# network's lane logits are at half its input, its depth at a quarter; a 1280x720 frame fills its
# input at half scale) for a quarter and a sixteenth of the pixels. The depth inset is a quarter
# of the frame wide, so it is this map as it is.
MAP_SCALE = 0.5
DEPTH_MAP_SCALE = 0.25


class Presenter:
    """Turns a frame's raw outputs into the drawn frame and hands it to the recording and the
    window, timing ``post``, ``draw`` and ``output``; ``run`` (`edge_mtl.camera.loop._Run`)
    counts the frames shown and is told when the recording failed."""

    def __init__(self, runner: Backend, timer: StageTimer, run: Any, recorder: Recorder | None,
                 window: Any, cfg: PostprocessConfig | None):
        self.runner, self.timer, self.run, self.recorder, self.window, self.cfg = (
            runner, timer, run, recorder, window, cfg)
        self.status = f"{runner.name} {runner.device} {runner.precision}"
        self.ends: deque[float] = deque(maxlen=30)  # perf_counter() at the end of the last frames

    def show(self, image: np.ndarray, raw: dict[str, np.ndarray], geometry: Geometry, depth_scale: float,
             dropped: int | None) -> bool:
        """Draw ``raw`` (batch-1 outputs) on ``image`` and output it; False when the window was
        closed. ``dropped``: the frames a live source lost so far (None for a file)."""
        from edge_mtl.camera.overlay import HUD_STAGES, draw_overlay, hud_lines
        from edge_mtl.runtime.postprocess import postprocess

        timer, ends = self.timer, self.ends
        with timer.stage("post"):
            pred = postprocess({k: v[0] for k, v in raw.items()}, geometry, self.cfg, depth_scale,
                               MAP_SCALE, DEPTH_MAP_SCALE)
        with timer.stage("draw"):
            fps = (len(ends) - 1) / (ends[-1] - ends[0]) if len(ends) > 1 else None
            extra = f"  dropped {dropped}" if dropped is not None else ""
            hud = hud_lines(fps, {k: timer.last(k) for k in HUD_STAGES}, self.status + extra)
            draw_overlay(image, pred, hud, self.runner.info.class_names)
        with timer.stage("output"):
            if self.recorder is not None:
                try:
                    self.recorder.write(image)
                except Exception:
                    self.run.recording_failed = True
                    raise
            keep_going = self.window.show(image) if self.window is not None else True
        self.run.frames += 1
        ends.append(time.perf_counter())
        return keep_going

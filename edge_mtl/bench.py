"""Latency benchmark: model-only and end-to-end (pre -> infer -> post) per stage, as JSON.

Frames are 1280x720 camera frames held in memory (rendered from the synthetic world, or read
from a folder), so the figures measure the pipeline, not disk or capture.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from edge_mtl.imageio import read_frames
from edge_mtl.runtime.backend import open_backend
from edge_mtl.runtime.postprocess import postprocess
from edge_mtl.runtime.preprocess import preprocess
from edge_mtl.runtime.timing import OtherLoad, StageTimer, summarize

SCHEMA = "edge_mtl.bench/1"


def load_frames(source: str | os.PathLike | None, count: int = 8) -> list[np.ndarray]:
    """The first ``count`` images of a folder (`edge_mtl.imageio.read_frames`), or ``count``
    frames rendered from the synthetic world; a ValueError lists every missing, truncated or
    undecodable one of them."""
    if source is None:
        from edge_mtl.data.world import render_random

        return [render_random(1_000_000 + i).sample.image for i in range(count)]
    bad: list[str] = []
    frames = [image for _, _, image in read_frames(source, limit=count, kinds=("folder",),
                                                    on_corrupt=lambda e: bad.append(str(e)))]
    if bad:
        raise ValueError(f"cannot read image(s): {'; '.join(bad)}")
    return frames


def host_info() -> dict[str, object]:
    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def benchmark(model: str | os.PathLike, backend: str = "auto", device: str = "auto",
              frames: int = 200, warmup: int = 20, source: str | os.PathLike | None = None,
              progress: bool = True, **options: object) -> dict:
    """Time ``frames`` iterations after ``warmup``; returns the ``edge_mtl.bench/1`` dict."""
    from tqdm import tqdm

    if frames < 1 or warmup < 0:
        raise ValueError(f"--frames must be >= 1 and --warmup >= 0 (got {frames}, {warmup})")
    images = load_frames(source)
    with open_backend(model, backend, device, **options) as runner:
        size = runner.info.input_size
        mode = runner.info.resize
        fmt = runner.info.input_format
        x = preprocess(images[0], size, mode=mode, input_format=fmt)[None]
        for _ in range(warmup):
            runner.infer(x)
        with OtherLoad() as load:  # other processes' share of the CPU while timing
            model_only = []
            for _ in tqdm(range(frames), desc="bench model", unit="frame", disable=not progress):
                t0 = time.perf_counter()
                runner.infer(x)
                model_only.append((time.perf_counter() - t0) * 1e3)

            timer = StageTimer()
            start = time.perf_counter()
            for i in tqdm(range(frames), desc="bench e2e", unit="frame", disable=not progress):
                frame = images[i % len(images)]
                with timer.stage("e2e"):
                    with timer.stage("pre"):
                        geometry = runner.info.geometry(frame.shape[:2])
                        x = preprocess(frame, size, mode=mode, input_format=fmt)[None]
                    with timer.stage("infer"):
                        raw = runner.infer(x)
                    with timer.stage("post"):
                        postprocess({k: v[0] for k, v in raw.items()}, geometry)
            wall = time.perf_counter() - start
        model_stats = summarize(model_only)
        return {
            "schema": SCHEMA,
            "model": runner.info.to_dict(),
            **runner.describe(),
            "input_size": list(size),
            "frame_size": list(images[0].shape[:2]),
            "frames": frames,
            "warmup": warmup,
            "model_only_ms": model_stats,
            "stages_ms": timer.summary(),
            "fps": {"model_only_p50": round(1e3 / model_stats["p50"], 1),
                    "e2e": round(frames / wall, 1)},
            "host": host_info(),
            "other_cpu_share": load.share,  # CPU other processes took while timing (0 = quiet)
        }

"""Shared test helpers: tiny configs that keep every shape rule of the real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_mtl.config import Config, ModelConfig

# The project's shared real files (../shared/data beside the checkout); tests using them skip
# when it is absent.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Small enough for 2 CPU cores; every shape rule of the real model still applies.
TINY_SIZE = (64, 128)


def tiny_model_config(**kw) -> ModelConfig:
    base = dict(backbone="mobilenet_v3_small", input_height=TINY_SIZE[0], input_width=TINY_SIZE[1],
                fpn_channels=16, head_channels=16, seg_channels=8)
    return ModelConfig(**(base | kw))


def tiny_config(data: str, out: str, steps: int = 3) -> Config:
    cfg = Config(model=tiny_model_config())
    cfg.train.data, cfg.train.out, cfg.train.steps = [data], out, steps
    cfg.train.batch_size, cfg.train.workers, cfg.train.crop_width = 2, 0, None
    cfg.train.log_every, cfg.train.ckpt_every, cfg.train.warmup_lr_steps = 1, 2, 1
    cfg.weighting.warmup_steps = 1
    return cfg


def write_random_frames(folder: Path, count: int, shape: tuple[int, int],
                        gray: tuple[int, ...] = ()) -> Path:
    """``count`` random BGR PNG frames (gray for the indices in ``gray``) in a new folder."""
    import cv2

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}.png"), image[..., 0] if i in gray else image)
    return folder

"""`edge-mtl adapt-bn`: BatchNorm statistics re-estimated on unlabelled frames of the target
domain (AdaBN, Li et al. 2016). No weight changes and no label is read: the trainable layers'
BatchNorms take the mean and variance their inputs have on those frames, so a network trained
on the synthetic world normalises real footage as it normalised its training frames. Layers
frozen in training (`model.freeze_backbone`: ImageNet statistics already) keep theirs."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from edge_mtl.checkpoint import load_model, read_checkpoint, save_checkpoint
from edge_mtl.imageio import CorruptImageError, read_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")


def frames_of(source: str | os.PathLike, every: int = 1) -> Iterator[tuple[str, np.ndarray]]:
    """(name, BGR frame) of an image folder (sorted) or a video file, every ``every``-th one."""
    import cv2

    path = Path(source)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ValueError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)})")
        for p in images[::every]:
            try:
                yield str(p), read_image(p)
            except CorruptImageError as e:
                raise ValueError(str(e)) from None
        return
    if path.suffix.lower() not in VIDEO_SUFFIXES or not path.is_file():
        raise ValueError(f"{path}: not an image folder or a video file ({', '.join(VIDEO_SUFFIXES)})")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: OpenCV cannot open this video")
    k = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if k % every == 0:
                yield f"{path}#{k}", frame
            k += 1
    finally:
        cap.release()
    if k == 0:
        raise ValueError(f"{path}: no frame could be decoded")


def adapt_bn(checkpoint: str | os.PathLike, sources: Sequence[str | os.PathLike], out: str | os.PathLike,
             every: int = 1, batch_size: int = 8, seed: int = 0) -> dict:
    """Re-estimate the BatchNorm statistics of ``checkpoint`` on the frames of ``sources`` (in a
    seeded random order, pre-processed as the camera loop does) and save the result to ``out``
    (a checkpoint that `release`, `eval` and `export` take as any other). Returns a summary."""
    from edge_mtl.runtime.preprocess import preprocess
    from edge_mtl.train import reestimate_bn

    if not sources:
        raise ValueError("adapt-bn needs at least one --source (an image folder or a video)")
    cfg, model = load_model(checkpoint)
    size = (cfg.model.input_height, cfg.model.input_width)
    names, frames = [], []
    for source in sources:
        for name, frame in frames_of(source, every):
            names.append(name)
            frames.append(preprocess(frame, size, mode=cfg.model.resize))
    order = np.random.default_rng(seed).permutation(len(frames))
    stack = torch.from_numpy(np.stack([frames[i] for i in order]))
    layers = sum(1 for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    model.train()
    adapted = sum(1 for m in model.modules()
                  if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training)
    reestimate_bn(model, (stack[i:i + batch_size] for i in range(0, len(stack), batch_size)))
    model.eval()
    summary = {"checkpoint": str(checkpoint), "sources": [str(s) for s in sources], "every": every,
               "frames": len(frames), "batchnorm_layers": layers, "re_estimated": adapted}
    step = int(read_checkpoint(checkpoint).get("step", 0))
    save_checkpoint(out, cfg, model, step=step, bn_recalibrated=True, adapted_bn=summary)
    return summary

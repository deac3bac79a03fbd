"""`edge-mtl adapt-bn`: BatchNorm statistics re-estimated on unlabelled frames of the target
domain (AdaBN, Li et al. 2016). No weight changes and no label is read: the trainable layers'
BatchNorms take the mean and variance their inputs have on those frames, so a network trained
on the synthetic world normalises real footage as it normalised its training frames. Layers
frozen in training (`model.freeze_backbone`: ImageNet statistics already) keep theirs."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from edge_mtl.checkpoint import load_model, read_checkpoint, save_checkpoint
from edge_mtl.imageio import read_frames


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
        for _, name, frame in read_frames(source, every=every, kinds=("folder", "video")):
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

"""A plain training loop: AdamW + cosine, warmup-then-dynamic loss weighting, AMP on CUDA,
DDP under torchrun, CSV log, atomic checkpoints and resume."""

from __future__ import annotations

import csv
import itertools
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed as dist

from edge_mtl.checkpoint import load_weights, read_checkpoint, save_checkpoint
from edge_mtl.config import Config
from edge_mtl.data.dataset import MultiTaskDataset, collate
from edge_mtl.losses import compute_losses
from edge_mtl.model.tritask import build_model
from edge_mtl.types import TASKS, Batch
from edge_mtl.weighting import build_weighting


def _setup_distributed() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return rank, world, device


def _batches(loader: torch.utils.data.DataLoader, epochs: list[int]) -> Iterator[Batch]:
    """Endless batches; ``epochs[0]`` counts passes over the data (kept in checkpoints)."""
    while True:
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epochs[0])
        yield from loader
        epochs[0] += 1


def recalibrate_bn(model: torch.nn.Module, data: str, size: tuple[int, int], batches: int,
                   batch_size: int, device: torch.device, workers: int = 0) -> None:
    """Precise BN: recompute every BatchNorm's running statistics on full-size training images
    with the final weights (cumulative average over ``batches`` batches).

    torchvision's MobileNets use BN momentum 0.01, so after training from scratch the running
    statistics trail the weights by hundreds of steps and eval-mode outputs are far off.
    """
    from torch.optim.swa_utils import update_bn

    dataset = MultiTaskDataset(data, size)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, collate_fn=collate, num_workers=workers,
        generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        update_bn((b.image.to(device) for b in itertools.islice(loader, batches)), model)


def _average_gradients(module: torch.nn.Module, world: int) -> None:
    """All-reduce the gradients of a module DDP does not wrap (the loss weighting), so every
    rank takes the same step; a rank without a task in its batch contributes zeros."""
    for p in module.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world


def lr_factor(step: int, total: int, warmup: int, floor: float = 0.05) -> float:
    """Linear warmup, then cosine decay to ``floor`` of the base rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def init_from(model: torch.nn.Module, checkpoint: str) -> list[str]:
    """Load every tensor of ``checkpoint`` whose name and shape match ``model``; returns the
    names of the model's tensors left at their fresh initialisation."""
    weights = read_checkpoint(checkpoint)["model"]
    own = model.state_dict()
    matched = {k: v.to(own[k].dtype) for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ValueError(f"{checkpoint}: no tensor matches this model (another architecture?)")
    model.load_state_dict(matched, strict=False)
    return [k for k in own if k not in matched]


def train(cfg: Config, resume: str | None = None, progress: bool = True) -> Path:
    """Train per ``cfg``; returns the path of the final checkpoint (``out/last.pt``)."""
    from tqdm import tqdm

    tc = cfg.train
    rank, world, device = _setup_distributed()
    torch.manual_seed(tc.seed + rank)
    out = Path(tc.out)
    size = (cfg.model.input_height, cfg.model.input_width)
    dataset = MultiTaskDataset(tc.data, size, train=True, crop=tc.crop_width, flip=tc.hflip)
    if world > 1:
        sampler = torch.utils.data.DistributedSampler(dataset, seed=tc.seed)
    else:
        sampler = torch.utils.data.RandomSampler(
            dataset, generator=torch.Generator().manual_seed(tc.seed))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=tc.batch_size, sampler=sampler, num_workers=tc.workers,
        collate_fn=collate, drop_last=len(dataset) >= tc.batch_size * world,
        persistent_workers=tc.workers > 0, pin_memory=device.type == "cuda")

    model = build_model(cfg.model).to(device)
    weighting = build_weighting(cfg.weighting, TASKS).to(device)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay},
         {"params": no_decay + list(weighting.parameters()), "weight_decay": 0.0}], lr=tc.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, tc.steps, tc.warmup_lr_steps))
    step, epochs = 0, [0]
    if tc.init and not resume:
        fresh = init_from(model, tc.init)
        if rank == 0 and fresh:
            print(f"init from {tc.init}; fresh: {', '.join(fresh)}")
    if resume:
        state = read_checkpoint(resume)
        load_weights(model, state["model"], resume)
        weighting.load_state_dict(state["weighting"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, epochs[0] = int(state["step"]), int(state.get("epoch", 0))
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)  # a task absent from a batch leaves its head unused
    use_amp = tc.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    is_main = rank == 0
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.yaml")
    log_path = out / "log.csv"
    fields = ["step", "lr", "total", *[f"loss_{t}" for t in TASKS],
              *[f"weight_{t}" for t in TASKS], "img_per_s"]
    if is_main and (not resume or not log_path.exists()):
        with open(log_path, "w", newline="") as f:
            csv.DictWriter(f, fields).writeheader()

    def checkpoint() -> Path:
        return save_checkpoint(out / "last.pt", cfg, model, weighting=weighting.state_dict(),
                               optimizer=optimizer.state_dict(),
                               scheduler=scheduler.state_dict(), step=step, epoch=epochs[0])

    net.train()
    batches = _batches(loader, epochs)
    bar = tqdm(total=tc.steps, initial=step, desc="train", unit="step",
               disable=not (progress and is_main))
    tick, seen = time.perf_counter(), 0
    try:
        while step < tc.steps:
            batch = next(batches).to(device)
            with torch.autocast(device.type, enabled=use_amp):
                outputs = net(batch.image)
            losses = compute_losses(outputs, batch, cfg.loss, model.det_strides)
            total = weighting(losses, step)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            if world > 1:
                _average_gradients(weighting, world)
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            seen += batch.image.shape[0] * world
            if not torch.isfinite(total):
                values = {k: float(v.detach()) for k, v in losses.items()}
                raise FloatingPointError(f"step {step}: non-finite loss {values}")
            if is_main and (step % tc.log_every == 0 or step == tc.steps):
                now = time.perf_counter()
                row = {"step": step, "lr": f"{scheduler.get_last_lr()[0]:.3g}",
                       "total": f"{float(total.detach()):.4f}", "img_per_s": f"{seen / (now - tick):.2f}"}
                row |= {f"loss_{t}": f"{float(v.detach()):.4f}" for t, v in losses.items()}
                row |= {f"weight_{t}": f"{w:.3f}" for t, w in weighting.current_weights(step).items()}
                with open(log_path, "a", newline="") as f:
                    csv.DictWriter(f, fields).writerow(row)
                bar.set_postfix({t: f"{float(v.detach()):.3f}" for t, v in losses.items()})
                tick, seen = now, 0
            if is_main and step % tc.ckpt_every == 0:
                checkpoint()
            bar.update()
    finally:
        bar.close()
    path = out / "last.pt"
    if is_main:
        if tc.bn_batches > 0:
            recalibrate_bn(model, tc.data, size, tc.bn_batches, tc.batch_size, device, tc.workers)
        checkpoint()
        plot_log(log_path)
    if dist.is_initialized():
        dist.barrier()
    return path


def plot_log(log_path: str | os.PathLike) -> Path:
    """Per-task loss and weight curves from a run's log.csv, as a PNG beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for t in TASKS:
        for ax, key in zip(axes, (f"loss_{t}", f"weight_{t}"), strict=True):
            pts = [(s, float(r[key])) for s, r in zip(steps, rows, strict=True) if r.get(key)]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=t)
    axes[0].set(title="task losses", xlabel="step", yscale="log")
    axes[1].set(title="task weights", xlabel="step")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    png = Path(log_path).with_suffix(".png")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png

"""A plain training loop: AdamW + cosine, warmup-then-dynamic loss weighting, AMP on CUDA,
DDP under torchrun, CSV log, atomic checkpoints and exact resume (data order, augmentation and
RNG state are checkpointed), a data pre-flight check, and non-finite steps skipped."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import functools
import io
import itertools
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
import torch.distributed as dist

from edge_mtl.checkpoint import check_finite_weights, load_weights, read_checkpoint, save_checkpoint
from edge_mtl.config import Config
from edge_mtl.data.dataset import BadSample, EpochSampler, MultiTaskDataset, collate_skipping
from edge_mtl.data.format import DatasetError
from edge_mtl.data.formats import DataSpec, open_reader
from edge_mtl.data.preflight import DataCheck, check_dataset, checks_report, unchecked
from edge_mtl.diagnostics import DIAG_FIELDS, PAIRS, TensorBoardMirror
from edge_mtl.files import to_json, write_atomic
from edge_mtl.losses import compute_losses
from edge_mtl.model.tritask import build_model
from edge_mtl.types import TASKS, Batch
from edge_mtl.weighting import build_weighting
from edge_mtl.weighting.step import weighted_loss


def _setup_distributed() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        # Rank 0 checks the whole dataset while the others wait: allow it an hour, not NCCL's 10 min.
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo",
                                timeout=datetime.timedelta(hours=1))
    rank = dist.get_rank() if dist.is_initialized() else 0
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return rank, world, device


def reestimate_bn(model: torch.nn.Module, images: Iterable[torch.Tensor]) -> int:
    """Every BatchNorm's running statistics recomputed as the cumulative average over the
    ``images`` batches (in train mode, no gradient); returns the number of batches. A BatchNorm
    in eval mode during training (a frozen backbone block) keeps its statistics: the loop is
    `torch.optim.swa_utils.update_bn`'s, which would reset those too. No batch at all (0 is
    returned), or any error, leaves every statistic as it was."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    model.train()
    momenta = {m: m.momentum for m in model.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training}
    used = 0
    try:
        for m in momenta:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average
        with torch.no_grad():
            for image in images:
                model(image)
                used += 1
        if not used:
            model.load_state_dict(state)
    except BaseException:
        model.load_state_dict(state)  # the statistics as they were
        raise
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
        model.train(was_training)
    return used


def recalibrate_bn(model: torch.nn.Module, dataset: MultiTaskDataset, batches: int,
                   batch_size: int, device: torch.device, workers: int = 0) -> list[BadSample]:
    """Precise BN: recompute every BatchNorm's running statistics on full-size training images
    with the final weights (cumulative average over ``batches`` batches, a fixed sample order).
    ``dataset`` is not augmented; its unreadable samples are left out and returned (unless it
    raises on them); no readable batch at all is an error, since the statistics would be reset
    to nothing.

    torchvision's MobileNets use BN momentum 0.01, so after training from scratch the running
    statistics trail the weights by hundreds of steps and eval-mode outputs are far off.
    """
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, collate_fn=collate_skipping, num_workers=workers,
        generator=torch.Generator().manual_seed(0))
    skipped: list[BadSample] = []
    used = [0]

    def images() -> Iterator[torch.Tensor]:
        for batch, bad in itertools.islice(loader, batches):
            skipped.extend(bad)
            if batch is not None:
                used[0] += 1
                yield batch.image.to(device)

    reestimate_bn(model, images())
    if not used[0]:
        first = f"; first: {skipped[0].reason}" if skipped else ""
        names = ", ".join(map(repr, dataset.readers))
        raise DatasetError(f"{names}: BatchNorm re-estimation read no batch{first}")
    return skipped


def _average_gradients(module: torch.nn.Module, world: int) -> None:
    """All-reduce the gradients of a module DDP does not wrap (the loss weighting), so every
    rank takes the same step; a rank without a task in its batch contributes zeros."""
    for p in module.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic in hardware (AVX512-BF16 or AMX tiles), where
    autocast to bfloat16 is faster; elsewhere it is emulated and slower than float32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu, private
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


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
    check_finite_weights(weights, checkpoint)
    own = model.state_dict()
    matched = {k: v.to(own[k].dtype) for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ValueError(f"{checkpoint}: no tensor matches this model (another architecture?)")
    model.load_state_dict(matched, strict=False)
    return [k for k in own if k not in matched]


class TrainingDiverged(RuntimeError):
    """Too many steps in a row had a non-finite loss or gradient."""


RUN_FILES = ("last.pt", "log.csv", "config.yaml")
AMP_OVERFLOWS_IN_A_ROW = 8  # GradScaler overflows tolerated in a row before they count as bad steps
LOG_FIELDS = ["step", "lr", "total", *[f"loss_{t}" for t in TASKS], *[f"weight_{t}" for t in TASKS],
              "img_per_s", "bad_steps", *[f"seen_{t}" for t in TASKS], "step_ms", *DIAG_FIELDS]


def resumes_in(out: Path, resume: str | None) -> bool:
    """Whether ``resume`` is the checkpoint of the run in ``out`` (that run goes on)."""
    return bool(resume) and Path(resume).resolve().parent == out.resolve()


def check_run_folder(out: Path, resume: str | None, force: bool) -> None:
    """Refuse to start over a run folder that holds a run, unless resuming that run or ``force``."""
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if not existing or force or resumes_in(out, resume):
        return
    raise FileExistsError(f"{out} already holds a run ({', '.join(existing)}); continue it with "
                          f"--resume {out / 'last.pt'}, choose another --out, or replace it with --force")


def _start_log(path: Path, step: int) -> None:
    """A log with the rows up to ``step``: on resume the rows a killed run wrote after its last
    checkpoint (and a torn last line) go, so that the resumed rows do not repeat them."""
    rows = []
    if step > 0 and path.exists():
        text = path.read_text()
        if not text.endswith("\n"):  # a line torn by a kill mid-write
            text = text[:text.rfind("\n") + 1]
        for row in csv.DictReader(io.StringIO(text)):  # older logs have fewer columns: kept
            try:
                whole = int(row["step"]) <= step and None not in row.values()
            except (KeyError, TypeError, ValueError):
                whole = False
            if whole:
                rows.append(row)
    text = io.StringIO()
    writer = csv.DictWriter(text, LOG_FIELDS, extrasaction="ignore", restval="")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue())


def _batches(loader: torch.utils.data.DataLoader, sampler: EpochSampler, position: list[int]
             ) -> Iterator[tuple[Batch | None, list[BadSample]]]:
    """Endless batches from ``position`` = [epoch, batches of it consumed], advanced as they are
    consumed (kept in checkpoints, so a resumed run continues mid-epoch)."""
    while True:
        sampler.set_epoch(position[0], position[1] * (loader.batch_size or 1))
        for item in loader:
            position[1] += 1
            yield item
        position[0], position[1] = position[0] + 1, 0


def _preflight(cfg: Config, out: Path, strict: bool, progress: bool, rank: int, world: int
               ) -> list[DataCheck]:
    """`check_dataset` of every dataset on rank 0, shared with every rank; the report goes to
    RUN/data_check.json."""
    checks, error = None, None
    if rank == 0:
        try:
            check = check_dataset if cfg.train.check_data else _unchecked
            checks = [check(spec, strict=strict, progress=progress, options=cfg.train.data_options)
                      for spec in cfg.train.data]
        except DatasetError as e:
            error = e
        for check in checks or []:
            if check.bad:
                print(f"warning: {check.summary()}; skipping the bad ones (see {out / 'data_check.json'}):",
                      file=sys.stderr)
                for problem in check.bad[:5]:
                    print(f"  {problem.reason}", file=sys.stderr)
    if world > 1:  # every rank gets the result, or raises rank 0's error (none waits forever)
        shared = [checks, None if error is None else str(error)]
        dist.broadcast_object_list(shared, src=0)
        checks, message = shared
        if message is not None:
            error = error or DatasetError(message)
    if error is not None:
        raise error
    assert checks is not None
    return checks


def _unchecked(spec: str, strict: bool, progress: bool, options: dict | None) -> DataCheck:
    return unchecked(spec, options)


def _seen_total(seen: torch.Tensor, world: int, device: torch.device) -> torch.Tensor:
    """Samples seen per dataset: [datasets, 1 + tasks] (all, then labelled per task), summed
    over the ranks (every rank calls this at the same steps)."""
    if world == 1:
        return seen.clone()
    total = seen.to(device)  # NCCL reduces CUDA tensors only
    dist.all_reduce(total)
    return total.cpu()


def _seen_report(specs: list[DataSpec], total: torch.Tensor) -> dict:
    return {str(spec): {"samples": int(row[0]), **dict(zip(TASKS, row[1:].tolist(), strict=True))}
            for spec, row in zip(specs, total.long(), strict=True)}


def _agree(flags: list[bool], world: int, device: torch.device) -> list[bool]:
    """Each flag if it holds on every rank (one all-reduce in DDP, so that all ranks take one path)."""
    if world == 1:
        return flags
    t = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return [bool(v) for v in t.tolist()]


def _copy(dst: list[torch.Tensor], src: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for d, s in zip(dst, src, strict=True):
            d.copy_(s)


def _all_finite(tensors: list[torch.Tensor]) -> bool:
    return bool(all(torch.isfinite(t).all() for t in tensors))


def train(cfg: Config, resume: str | None = None, progress: bool = True, force: bool = False,
          strict: bool = False) -> Path:
    """Train per ``cfg``; returns the path of the final checkpoint (``out/last.pt``).

    A run folder that holds a run is refused unless ``resume`` continues it or ``force``. The
    dataset is checked first: bad samples are skipped and reported (``strict``: the first one
    stops the run). A step with a non-finite loss or gradient is skipped (counted in the log);
    ``train.max_bad_steps`` of them in a row stop the run, and no checkpoint ever holds NaN.
    """
    from tqdm import tqdm

    tc = cfg.train
    out = Path(tc.out)
    check_run_folder(out, resume, force)
    rank, world, device = _setup_distributed()
    is_main = rank == 0
    state = None
    if resume:
        state = read_checkpoint(resume)
        missing = [k for k in ("weighting", "optimizer", "scheduler", "step") if k not in state]
        if missing:
            raise ValueError(f"{resume}: holds no training state ({', '.join(missing)} missing: a "
                             f"release file?); it cannot be resumed, but it can seed a run: "
                             f"--set train.init={resume}")
        check_finite_weights(state["model"], resume)
    torch.manual_seed(tc.seed + rank)
    size = (cfg.model.input_height, cfg.model.input_width)
    checks = _preflight(cfg, out, strict, progress and is_main, rank, world)
    specs = [DataSpec.parse(s) for s in tc.data]
    readers = [open_reader(spec, tc.data_options) for spec in specs]
    items = [(k, i) for k, check in enumerate(checks) for i in check.good]
    fit = {"mode": cfg.model.resize, "canonical": cfg.model.canonical_focal}
    dataset = MultiTaskDataset(readers, size, augment=cfg.augment, crop=tc.crop_width, flip=tc.hflip,
                               items=items, seed=tc.seed, skip_bad=not strict, tasks=tc.tasks,
                               missing=tc.missing, far=cfg.model.max_depth, **fit)
    sampler = EpochSampler(len(dataset), tc.seed, rank, world, groups=dataset.groups,
                           weights=[spec.weight for spec in specs], temperature=tc.mix_temperature)
    seen = torch.zeros(len(specs), 1 + len(TASKS), dtype=torch.long)
    batches_per_epoch = -(-len(sampler) // tc.batch_size)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=tc.batch_size, sampler=sampler, num_workers=tc.workers,
        collate_fn=collate_skipping, drop_last=len(dataset) >= tc.batch_size * world,
        persistent_workers=tc.workers > 0, pin_memory=device.type == "cuda")

    # A resumed run's weights come from its checkpoint, not from ImageNet weights that may have moved.
    model = build_model(dataclasses.replace(cfg.model, pretrained=None) if state else cfg.model).to(device)
    weighting = build_weighting(cfg.weighting, TASKS).to(device)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:  # a frozen backbone block
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay},
         {"params": no_decay + list(weighting.parameters()), "weight_decay": 0.0}], lr=tc.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, tc.steps, tc.warmup_lr_steps))
    use_amp = tc.amp and device.type == "cuda"  # float16: loss scaling, overflow skips
    wants_bf16 = tc.amp_cpu and device.type == "cpu"
    cpu_bf16 = wants_bf16 and cpu_computes_bf16()
    if wants_bf16 and not cpu_bf16 and is_main:
        print("note: train.amp_cpu: this CPU has no native bfloat16 (AVX512-BF16 or AMX); "
              "training in float32", file=sys.stderr)
    if cpu_bf16:
        model.to(memory_format=torch.channels_last)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step, position, bad_steps, bn_done, amp_overflows = 0, [0, 0], 0, False, 0
    # what a position in an epoch means: the batch geometry and the samples it walks through
    geometry = {"batch_size": tc.batch_size, "world": world, "data": list(tc.data), "samples": len(items)}
    skipped: list[BadSample] = []
    if tc.init and not resume:
        fresh = init_from(model, tc.init)
        if is_main and fresh:
            print(f"init from {tc.init}; fresh: {', '.join(fresh)}")
    if state is not None:
        load_weights(model, state["model"], resume)
        weighting.load_state_dict(state["weighting"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state and use_amp:
            scaler.load_state_dict(state["scaler"])
        step = int(state["step"])
        position = [int(v) for v in state.get("position", [state.get("epoch", 0), 0])]  # "epoch": older
        bad_steps = int(state.get("bad_steps", 0))
        amp_overflows = int(state.get("amp_overflows", 0))
        skipped = [BadSample(**b) for b in state.get("skipped_in_training", [])]
        if is_main:  # rank 0 carries the run's count so far (by dataset, which a resume may change)
            for k, spec in enumerate(tc.data):
                if spec in state.get("seen", {}):
                    seen[k] += torch.tensor(state["seen"][spec], dtype=torch.long)
        before = state.get("geometry", geometry)
        if position[1] and any(before.get(k, v) != v for k, v in geometry.items()):
            if (before["batch_size"], before["world"]) != (tc.batch_size, world):
                raise ValueError(f"{resume}: stopped mid-epoch with batch_size {before['batch_size']} on "
                                 f"{before['world']} process(es); resume it with the same, not "
                                 f"batch_size {tc.batch_size} on {world}")
            raise ValueError(f"{resume}: stopped mid-epoch over {before.get('samples')} samples of "
                             f"{before.get('data')}; now {len(items)} samples of {list(tc.data)}: the "
                             "epoch's order would point elsewhere. Resume with the same data (or "
                             "--set train.init= to start a new run from these weights)")
        bn_done = bool(state.get("bn_recalibrated", step >= int(state["config"]["train"]["steps"])))
        _restore_rng(state.get("rng"))
    if step >= tc.steps and bn_done:
        if is_main:
            print(f"{resume}: already trained to step {step} (train.steps={tc.steps}); nothing to do")
        return Path(resume)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)  # a task absent from a batch leaves its head unused

    log_path = out / "log.csv"
    same_run = resumes_in(out, resume)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        if force and not same_run:  # another run's weights must not be resumed by mistake later
            for name in ("last.pt", "log.png"):
                (out / name).unlink(missing_ok=True)
        cfg.save(out / "config.yaml")
        _start_log(log_path, step if same_run else 0)  # only this run's own rows are kept
        write_atomic(out / "data_check.json", to_json(checks_report(checks), indent=2) + "\n")
    # what a skipped step puts back: BatchNorm statistics and the strategy's whole state
    strategy_state = list(weighting.buffers())
    buffers = [b for b in model.buffers() if b.is_floating_point()] + strategy_state
    saved_buffers = [b.detach().clone() for b in buffers]

    def checkpoint(seen_total: torch.Tensor, recalibrated: bool = False) -> Path:
        rng = {"torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        return save_checkpoint(out / "last.pt", cfg, model, weighting=weighting.state_dict(),
                               optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                               scaler=scaler.state_dict(), step=step, position=list(position),
                               bad_steps=bad_steps, rng=rng, geometry=geometry,
                               amp_overflows=amp_overflows, skipped_in_training=[vars(b) for b in skipped],
                               bn_recalibrated=recalibrated,
                               seen=dict(zip(tc.data, seen_total.tolist(), strict=True)))

    net.train()
    batches = _batches(loader, sampler, position)
    bar = tqdm(total=tc.steps, initial=min(step, tc.steps), desc="train", unit="step",
               disable=not (progress and is_main))
    tick, images, in_a_row, saved_step, empty_in_a_row = time.perf_counter(), 0, 0, step, 0
    tick_step, diagnostics, unlabelled_in_a_row = step, {}, 0
    mirror = TensorBoardMirror(out / "tb", tc.tensorboard and is_main)
    overflows_in_a_row = 0
    try:
        while step < tc.steps:
            batch, bad = next(batches)
            for b in bad:
                if all(b.file != s.file for s in skipped):  # warn once per file
                    print(f"warning: skipped {b.reason}", file=sys.stderr)
            skipped += bad
            if not _agree([batch is not None], world, device)[0]:  # a rank has nothing readable
                empty_in_a_row += 1
                if empty_in_a_row > batches_per_epoch:
                    last = skipped[-1].reason if skipped else "?"
                    raise DatasetError(f"{', '.join(tc.data)}: no sample could be read for a whole "
                                       f"pass over the data; stopped (last: {last})")
                continue
            empty_in_a_row = 0
            seen[:, 0] += torch.bincount(batch.source, minlength=len(specs))
            for k, t in enumerate(TASKS):
                seen[:, 1 + k] += torch.bincount(batch.source[batch.has_label[t]], minlength=len(specs))
            batch = batch.to(device)
            _copy(saved_buffers, buffers)
            image = batch.image.contiguous(memory_format=torch.channels_last) if cpu_bf16 else batch.image
            diagnose = bool(tc.diag_every) and (step + 1) % tc.diag_every == 0
            result = weighted_loss(
                net, model, weighting, image,
                functools.partial(compute_losses, batch=batch, cfg=cfg.loss, strides=model.det_strides),
                step, world=world, amp=use_amp or cpu_bf16, loss_scale=scaler.get_scale() if use_amp else 1.0,
                gradients=cfg.weighting.gradients, diagnose=diagnose)
            losses, total = result.losses, result.total
            diagnostics = result.diagnostics or diagnostics
            optimizer.zero_grad(set_to_none=True)
            result.backward(scaler)
            if not losses:  # no batch of any rank holds a trained task: nothing to learn, no step
                _copy(buffers, saved_buffers)
                unlabelled_in_a_row += 1
                if unlabelled_in_a_row > batches_per_epoch:
                    raise DatasetError(f"{', '.join(tc.data)}: no batch held a label of train.tasks="
                                       f"{list(tc.tasks)} for a whole pass over the data; stopped")
                continue
            unlabelled_in_a_row = 0
            if world > 1:
                _average_gradients(weighting, world)
            scaler.unscale_(optimizer)
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            loss_ok, grads_ok = _agree(
                [_all_finite([total.detach()]),
                 _all_finite([norm, *(p.grad for p in weighting.parameters() if p.grad is not None)])],
                world, device)
            if loss_ok and grads_ok:
                scaler.step(optimizer)
                in_a_row = overflows_in_a_row = 0
            elif use_amp and loss_ok and overflows_in_a_row < AMP_OVERFLOWS_IN_A_ROW:
                # fp16 gradients overflowed: GradScaler skips and halves its scale (a few in a row
                # are normal; more mean the gradient itself is not finite: a bad step below)
                amp_overflows, overflows_in_a_row = amp_overflows + 1, overflows_in_a_row + 1
                _copy(strategy_state, saved_buffers[len(buffers) - len(strategy_state):])
            else:  # the step is skipped: weights untouched, BatchNorm statistics put back
                _copy(buffers, saved_buffers)
                bad_steps, in_a_row = bad_steps + 1, in_a_row + 1
                rounded = {k: round(float(v.detach()), 4) for k, v in losses.items()}
                if is_main:
                    print(f"warning: step {step + 1}: non-finite loss or gradient (losses {rounded}, "
                          f"gradient norm {float(norm):.3g}); step skipped", file=sys.stderr)
                if in_a_row >= tc.max_bad_steps:
                    raise TrainingDiverged(
                        f"step {step + 1}: {in_a_row} steps in a row had a non-finite loss or gradient; "
                        f"stopped (lower train.lr, or check the data). "
                        f"{out / 'last.pt'} keeps the last good weights (step {saved_step})")
            scaler.update()
            scheduler.step()
            step += 1
            images += batch.image.shape[0] * world
            log_now, ckpt_now = step % tc.log_every == 0 or step == tc.steps, step % tc.ckpt_every == 0
            seen_total = _seen_total(seen, world, device) if log_now or ckpt_now else None
            if is_main and log_now:
                now = time.perf_counter()
                row = {"step": step, "lr": f"{scheduler.get_last_lr()[0]:.3g}",
                       "total": f"{float(total.detach()):.4f}", "img_per_s": f"{images / (now - tick):.2f}",
                       "bad_steps": bad_steps}
                row |= {f"seen_{t}": int(seen_total[:, 1 + k].sum()) for k, t in enumerate(TASKS)}
                row |= {f"loss_{t}": f"{float(v.detach()):.4f}" for t, v in losses.items()}
                row |= {f"weight_{t}": f"{w:.3f}" for t, w in weighting.current_weights(step - 1).items()}
                row |= {"step_ms": f"{1000 * (now - tick) / max(step - tick_step, 1):.1f}"}
                row |= {k: f"{v:.4g}" for k, v in diagnostics.items()}
                diagnostics = {}
                with open(log_path, "a", newline="") as f:
                    csv.DictWriter(f, LOG_FIELDS).writerow(row)
                mirror.write(row)
                bar.set_postfix({t: f"{float(v.detach()):.3f}" for t, v in losses.items()})
                tick, images, tick_step = now, 0, step
            if is_main and ckpt_now:
                checkpoint(seen_total)
                saved_step = step
            bar.update()
    finally:
        bar.close()
        mirror.close()
    path = out / "last.pt"
    seen_total = _seen_total(seen, world, device)
    if is_main:
        checkpoint(seen_total)  # first the trained weights, safe whatever the re-estimation meets
        plot_log(log_path)
        if tc.bn_batches > 0:
            plain = MultiTaskDataset(readers, size, items=items, skip_bad=not strict, **fit)
            skipped += recalibrate_bn(model, plain, tc.bn_batches, tc.batch_size, device, tc.workers)
        checkpoint(seen_total, recalibrated=True)
        _finish_report(out, checks, skipped, bad_steps, amp_overflows, _seen_report(specs, seen_total))
    if dist.is_initialized():
        dist.barrier()
    return path


def _restore_rng(rng: dict | None) -> None:
    if not rng:
        return
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])


def _finish_report(out: Path, checks: list[DataCheck], skipped: list[BadSample], bad_steps: int,
                   amp_overflows: int, seen: dict) -> None:
    """The run's data problems (pre-flight and during training), skipped steps and the samples
    seen of each dataset and task in RUN/data_check.json, and a summary line for each."""
    report = checks_report(checks) | {"skipped_in_training": [vars(b) for b in skipped],
                                      "bad_steps": bad_steps, "amp_overflow_steps": amp_overflows,
                                      "seen": seen}
    write_atomic(out / "data_check.json", to_json(report, indent=2) + "\n")
    for name, counts in seen.items():
        labelled = ", ".join(f"{t} {counts[t]}" for t in TASKS if counts[t])
        print(f"seen: {name}: {counts['samples']} samples ({labelled or 'no labels'})")
    num_bad = report["num_bad"]
    if num_bad or skipped:
        print(f"data: {num_bad} bad samples left out, {len(skipped)} skipped while training "
              f"(see {out / 'data_check.json'})", file=sys.stderr)
    if bad_steps:
        print(f"train: {bad_steps} steps skipped for a non-finite loss or gradient (log.csv: bad_steps)",
              file=sys.stderr)


def plot_log(log_path: str | os.PathLike) -> Path:
    """Per-task loss and weight curves from a run's log.csv, as a PNG beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels = [(axes[0, 0], "loss_{}", TASKS, "task losses", "log"),
              (axes[0, 1], "weight_{}", TASKS, "task weights", "linear"),
              (axes[1, 0], "gnorm_{}", TASKS, "gradient norm at the shared features", "log"),
              (axes[1, 1], "cos_{}", PAIRS, "gradient cosine (< 0: conflict)", "linear")]
    for ax, pattern, names, title, yscale in panels:
        for name in names:
            key = pattern.format(name)
            pts = [(s, float(r[key])) for s, r in zip(steps, rows, strict=True)
                   if r.get(key) not in (None, "", "nan")]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=name)
        ax.set(title=title, xlabel="step", yscale=yscale if ax.lines else "linear")
        if ax.lines:
            ax.legend()
        ax.grid(alpha=0.3)
    axes[1, 1].axhline(0, color="k", lw=0.8)
    png = Path(log_path).with_suffix(".png")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png

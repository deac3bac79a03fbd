"""Torch dataset over one or several readers, the resumable mixing sampler, and the collate that
builds a `Batch`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from edge_mtl.config import AugmentConfig
from edge_mtl.data.checks import DatasetError
from edge_mtl.data.reader import Reader
from edge_mtl.data.transforms import Item, fit_sample
from edge_mtl.runtime.geometry import canonical_focal
from edge_mtl.runtime.preprocess import normalize
from edge_mtl.types import TASKS, Batch


@dataclass(frozen=True)
class BadSample:
    """What a skipping dataset returns for a sample it could not read: the file and why."""

    file: str
    reason: str


class MultiTaskDataset(torch.utils.data.Dataset):
    """Samples of ``readers`` at network resolution, fitted by the one camera geometry
    (``mode``); with ``augment`` they are then augmented (`edge_mtl.data.augment`, with ``flip``
    and a random crop to ``crop`` columns). Depth comes out in the canonical focal length
    (``canonical``, input pixels; default 0.8 x the input width): metres x canonical / focal.

    ``items``: the (reader, index) pairs to use (default all; `check_dataset` gives the good
    ones). A key is a position in ``items``, or ``(position, epoch, repeat)`` from `EpochSampler`:
    the augmentation is then drawn from ``(seed, epoch, reader, index, repeat)`` (``repeat``
    counts the earlier draws of the sample in that epoch, so an oversampled one is augmented
    anew each time), and a resumed run sees exactly what an uninterrupted one would, whatever
    the worker count. ``skip_bad``: a sample
    that fails to read comes back as a `BadSample` (`collate_skipping` drops it) instead of raising.
    """

    def __init__(self, readers: Reader | str | Sequence[Reader], size: tuple[int, int],
                 augment: AugmentConfig | None = None, crop: int | None = None, flip: bool = False,
                 items: Sequence[tuple[int, int]] | None = None, seed: int = 0, skip_bad: bool = False,
                 mode: str = "letterbox", canonical: float | None = None,
                 tasks: Sequence[str] | None = None, missing: str = "mask", far: float = 120.0):
        if isinstance(readers, str):
            from edge_mtl.data.formats import open_reader

            readers = [open_reader(readers)]
        elif isinstance(readers, Reader):
            readers = [readers]
        self.readers = list(readers)
        self.size = size
        self.augment = augment
        self.crop = crop if crop and crop < size[1] else None
        self.flip = flip
        self.items = [(s, i) for s, r in enumerate(self.readers) for i in range(len(r))] \
            if items is None else [tuple(it) for it in items]
        self.seed = seed
        self.skip_bad = skip_bad
        self.mode = mode
        self.canonical = canonical_focal(size[1], canonical)
        self.tasks = tuple(TASKS if tasks is None else tasks)
        if not set(self.tasks) <= set(TASKS) or not self.tasks:
            raise ValueError(f"tasks {list(self.tasks)}: choose one or more of {list(TASKS)}")
        if missing not in MISSING:
            raise ValueError(f"missing={missing!r}: choose from {list(MISSING)}")
        self.missing, self.far = missing, far

    def __len__(self) -> int:
        return len(self.items)

    @property
    def groups(self) -> list[int]:
        """The reader of each position (what `EpochSampler` mixes by)."""
        return [s for s, _ in self.items]

    def __getitem__(self, key: int | tuple[int, int, int]) -> Item | BadSample:
        position, epoch, repeat = key if isinstance(key, tuple) else (key, None, 0)
        source, index = self.items[position]
        reader = self.readers[source]
        rng = None
        if self.augment is not None:
            if epoch is None:  # plain indexing: torch's RNG, which DataLoader seeds per worker
                rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ())))
            else:
                rng = np.random.default_rng([self.seed, epoch, source, index, repeat])
        try:
            sample = reader[index]
            if rng is not None:
                from edge_mtl.data.augment import wide_crop

                sample = wide_crop(sample, self.augment, rng)
            item = fit_sample(sample, self.size, self.mode)
        except DatasetError as e:
            if not self.skip_bad:
                raise
            return BadSample(reader.source(index), str(e))
        if rng is not None:
            from edge_mtl.data.augment import augment

            item = augment(item, self.augment, rng, hflip=self.flip, crop_width=self.crop)
        depth = item.depth
        if item.has_label["depth"]:
            depth = depth * np.float32(self.canonical / item.focal)
        item = replace(item, depth=depth, source=source,
                       has_label={t: item.has_label[t] and t in self.tasks for t in TASKS})
        return fill_missing(item, self.far, self.tasks) if self.missing == "background" else item


def fill_missing(item: Item, far: float, tasks: Sequence[str] = TASKS) -> Item:
    """The naive alternative to masking (an ablation, ``train.missing: background``): a missing
    label of one of ``tasks`` taken as background, i.e. no object, no lane paint, and everything
    at ``far`` metres."""
    has = item.has_label
    h, w = item.image.shape[:2]
    return replace(
        item, has_label={t: t in tasks for t in TASKS},
        boxes=item.boxes if has["det"] else np.zeros((0, 4), np.float32),
        classes=item.classes if has["det"] else np.zeros((0,), np.int64),
        ignore=item.ignore if has["det"] else np.zeros((0, 4), np.float32),
        lane=item.lane if has["lane"] else np.zeros((h, w), np.float32),
        depth=item.depth if has["depth"] else np.full((h, w), far, np.float32))


MISSING = ("mask", "background")  # what a missing label means in training (masking: nothing)


def mix_probabilities(sizes: Sequence[int], weights: Sequence[float], temperature: float = 1.0) -> np.ndarray:
    """Sampling probability of each dataset: ``(weight * size) ** (1 / temperature)``, normalised.
    Temperature 1 samples in proportion to (weighted) size; larger ones flatten towards uniform."""
    raw = (np.asarray(weights, np.float64) * np.asarray(sizes, np.float64)) ** (1.0 / temperature)
    if not raw.sum() > 0:
        raise ValueError(f"no dataset to sample from (sizes {list(sizes)}, weights {list(weights)})")
    return raw / raw.sum()


class EpochSampler(torch.utils.data.Sampler):
    """Keys ``(position, epoch, repeat)`` in an order that is a pure function of ``(seed, epoch)``
    (``repeat``: how often the position came earlier in the epoch), this
    rank's share of it (as `DistributedSampler`: padded to a multiple of ``world``), from
    ``start`` on: set by `set_epoch`, so a resumed run continues mid-epoch where it stopped.

    With ``groups`` (the dataset of each position) and ``weights``, an epoch of the same length
    draws from each dataset its share by `mix_probabilities` (a dataset under its share repeats,
    one over it is cut), each dataset's positions in a fresh order, the whole epoch shuffled.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1, shuffle: bool = True,
                 groups: Sequence[int] | None = None, weights: Sequence[float] | None = None,
                 temperature: float = 1.0):
        if size <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.seed, self.rank, self.world, self.shuffle = size, seed, rank, world, shuffle
        self.epoch, self.start = 0, 0
        self.groups = np.asarray(groups if groups is not None else [0] * size)
        if len(self.groups) != size:
            raise ValueError(f"groups has {len(self.groups)} entries for {size} positions")
        n_groups = int(self.groups.max()) + 1
        self.weights = list(weights) if weights is not None else [1.0] * n_groups
        if len(self.weights) < n_groups:
            raise ValueError(f"{len(self.weights)} weights for {n_groups} datasets")
        counts = np.bincount(self.groups, minlength=len(self.weights))
        self.quota = _quotas(mix_probabilities(counts, self.weights, temperature), size) \
            if n_groups > 1 else np.array([size])

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _order(self) -> list[int]:
        if not self.shuffle:
            order = list(range(self.size))
        else:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            if len(self.quota) == 1:
                order = torch.randperm(self.size, generator=g).tolist()
            else:
                picks = []
                for k, quota in enumerate(self.quota):
                    members = np.flatnonzero(self.groups == k)
                    if quota == 0 or len(members) == 0:
                        continue
                    reps = -(-int(quota) // len(members))
                    perm = torch.cat([torch.randperm(len(members), generator=g) for _ in range(reps)])
                    picks.append(members[perm[:quota].numpy()])
                pool = np.concatenate(picks)
                order = pool[torch.randperm(len(pool), generator=g).numpy()].tolist()
        per_rank = -(-self.size // self.world)
        order += order[:per_rank * self.world - len(order)]
        counts: dict[int, int] = {}
        keyed = []
        for p in order:
            keyed.append((p, counts.get(p, 0)))
            counts[p] = counts.get(p, 0) + 1
        return keyed[self.rank::self.world]

    def __len__(self) -> int:
        return max(0, -(-self.size // self.world) - self.start)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        return iter([(p, self.epoch, r) for p, r in self._order()[self.start:]])


def _quotas(p: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total`` in proportion ``p`` (largest remainders)."""
    raw = p * total
    quota = np.floor(raw).astype(int)
    quota[np.argsort(-(raw - quota), kind="stable")[:total - quota.sum()]] += 1
    return quota


def collate_skipping(items: list[Item | BadSample]) -> tuple[Batch | None, list[BadSample]]:
    """`collate` over the readable items, and the `BadSample`s left out (batch None if all)."""
    bad = [it for it in items if isinstance(it, BadSample)]
    good = [it for it in items if not isinstance(it, BadSample)]
    return (collate(good) if good else None), bad


def _pad(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """[n_i, 4] arrays -> [B, max n, 4] zero-padded and the [B, max n] validity mask."""
    m = max(1, max(len(a) for a in arrays))
    out = np.zeros((len(arrays), m, 4), np.float32)
    valid = np.zeros((len(arrays), m), bool)
    for i, a in enumerate(arrays):
        out[i, :len(a)], valid[i, :len(a)] = a, True
    return torch.from_numpy(out), torch.from_numpy(valid)


def collate(items: list[Item]) -> Batch:
    """Stack items; boxes and ignore regions are padded to the batch's largest count."""
    boxes, valid = _pad([it.boxes for it in items])
    classes = np.zeros(valid.shape, np.int64)
    for i, it in enumerate(items):
        classes[i, :len(it.classes)] = it.classes
    ignore, ignore_valid = _pad([it.ignore for it in items])
    depth = np.stack([it.depth for it in items])[:, None]
    return Batch(
        image=torch.from_numpy(np.stack([normalize(it.image) for it in items])),
        boxes=boxes,
        classes=torch.from_numpy(classes),
        box_valid=valid,
        lane=torch.from_numpy(np.stack([it.lane for it in items])),
        depth=torch.from_numpy(depth),
        depth_valid=torch.from_numpy(depth > 0),
        has_label={t: torch.tensor([it.has_label[t] for it in items]) for t in TASKS},
        ignore=ignore,
        ignore_valid=ignore_valid,
        source=torch.tensor([it.source for it in items]),
    )

"""Torch dataset over the on-disk format, the resumable sampler, and the collate that builds a
`Batch`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from edge_mtl.data.format import DatasetError, DatasetReader
from edge_mtl.data.transforms import Item, crop_width, hflip, to_network_size
from edge_mtl.runtime.preprocess import normalize
from edge_mtl.types import TASKS, Batch


@dataclass(frozen=True)
class BadSample:
    """What a skipping dataset returns for a sample it could not read: the file and why."""

    file: str
    reason: str


class MultiTaskDataset(torch.utils.data.Dataset):
    """Samples at network resolution; with ``train=True`` adds random flip and crop.

    ``indices``: the reader's samples to use (default all; `check_dataset` gives the good ones).
    A key is a position in ``indices``, or ``(position, epoch)`` from `EpochSampler`: the
    augmentation is then drawn from ``(seed, epoch, sample)``, so a resumed run sees exactly what
    an uninterrupted one would, whatever the worker count. ``skip_bad``: a sample that fails to
    read comes back as a `BadSample` (`collate_skipping` drops it) instead of raising.
    """

    def __init__(self, root: str, size: tuple[int, int], train: bool = False,
                 crop: int | None = None, flip: bool = False, indices: Sequence[int] | None = None,
                 seed: int = 0, skip_bad: bool = False):
        self.reader = DatasetReader(root)
        self.size = size
        self.train = train
        self.crop = crop if crop and crop < size[1] else None
        self.flip = flip
        self.indices = list(range(len(self.reader))) if indices is None else list(indices)
        self.seed = seed
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> Item | BadSample:
        position, epoch = key if isinstance(key, tuple) else (key, None)
        index = self.indices[position]
        try:
            item = to_network_size(self.reader[index], self.size)
        except DatasetError as e:
            if not self.skip_bad:
                raise
            return BadSample(str(self.reader.label_paths[index]), str(e))
        if self.train:
            if epoch is None:  # plain indexing: torch's RNG, which DataLoader seeds per worker
                rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ())))
            else:
                rng = np.random.default_rng([self.seed, epoch, index])
            if self.flip and rng.random() < 0.5:
                item = hflip(item)
            if self.crop:
                item = crop_width(item, int(rng.integers(0, self.size[1] - self.crop + 1)),
                                  self.crop)
        return item


class EpochSampler(torch.utils.data.Sampler):
    """Keys ``(position, epoch)`` in an order that is a pure function of ``(seed, epoch)``,
    this rank's share of it (as `DistributedSampler`: padded to a multiple of ``world``), from
    ``start`` on: set by `set_epoch`, so a resumed run continues mid-epoch where it stopped."""

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1, shuffle: bool = True):
        if size <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.seed, self.rank, self.world, self.shuffle = size, seed, rank, world, shuffle
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _order(self) -> list[int]:
        if not self.shuffle:
            order = list(range(self.size))
        else:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        per_rank = -(-self.size // self.world)
        order += order[:per_rank * self.world - len(order)]
        return order[self.rank::self.world]

    def __len__(self) -> int:
        return max(0, -(-self.size // self.world) - self.start)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(i, self.epoch) for i in self._order()[self.start:]])


def collate_skipping(items: list[Item | BadSample]) -> tuple[Batch | None, list[BadSample]]:
    """`collate` over the readable items, and the `BadSample`s left out (batch None if all)."""
    bad = [it for it in items if isinstance(it, BadSample)]
    good = [it for it in items if not isinstance(it, BadSample)]
    return (collate(good) if good else None), bad


def collate(items: list[Item]) -> Batch:
    """Stack items; boxes are padded to the batch's largest count with ``box_valid``."""
    m = max(1, max(len(it.boxes) for it in items))
    b = len(items)
    boxes = np.zeros((b, m, 4), np.float32)
    classes = np.zeros((b, m), np.int64)
    valid = np.zeros((b, m), bool)
    for i, it in enumerate(items):
        n = len(it.boxes)
        boxes[i, :n], classes[i, :n], valid[i, :n] = it.boxes, it.classes, True
    depth = np.stack([it.depth for it in items])[:, None]
    return Batch(
        image=torch.from_numpy(np.stack([normalize(it.image) for it in items])),
        boxes=torch.from_numpy(boxes),
        classes=torch.from_numpy(classes),
        box_valid=torch.from_numpy(valid),
        lane=torch.from_numpy(np.stack([it.lane for it in items])),
        depth=torch.from_numpy(depth),
        depth_valid=torch.from_numpy(depth > 0),
        has_label={t: torch.tensor([it.has_label[t] for it in items]) for t in TASKS},
    )

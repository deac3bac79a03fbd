"""Torch dataset over the on-disk format, and the collate that builds a `Batch`."""

from __future__ import annotations

import numpy as np
import torch

from edge_mtl.data.format import DatasetReader
from edge_mtl.data.transforms import Item, crop_width, hflip, to_network_size
from edge_mtl.runtime.preprocess import normalize
from edge_mtl.types import TASKS, Batch


class MultiTaskDataset(torch.utils.data.Dataset):
    """Samples at network resolution; with ``train=True`` adds random flip and crop."""

    def __init__(self, root: str, size: tuple[int, int], train: bool = False,
                 crop: int | None = None, flip: bool = False):
        self.reader = DatasetReader(root)
        self.size = size
        self.train = train
        self.crop = crop if crop and crop < size[1] else None
        self.flip = flip

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> Item:
        item = to_network_size(self.reader[index], self.size)
        if self.train:
            # Drawn from torch's RNG, which DataLoader seeds per worker and which advances
            # across epochs (also in persistent workers), so augmentations differ every epoch.
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ())))
            if self.flip and rng.random() < 0.5:
                item = hflip(item)
            if self.crop:
                item = crop_width(item, int(rng.integers(0, self.size[1] - self.crop + 1)),
                                  self.crop)
        return item


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

"""Fitting samples to the input, the v2 augmentation, canonical depth and the mixing sampler."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edge_mtl.config import AugmentConfig
from edge_mtl.data.augment import augment, wide_crop
from edge_mtl.data.dataset import EpochSampler, MultiTaskDataset, collate, mix_probabilities
from edge_mtl.data.reader import Reader
from edge_mtl.data.transforms import clip_boxes, crop_rows, fit_sample
from edge_mtl.runtime.geometry import PAD_BGR
from edge_mtl.types import Camera, Sample

SIZE = (96, 160)
STILL = AugmentConfig(scale_jitter=0, rotate_deg=0, translate=0, color_jitter=0, hue=0, blur_p=0,
                      noise_p=0, jpeg_p=0)


def kitti_like(fx: float = 721.5) -> Sample:
    """A 1242x375 frame: a red car box, a lane line, depth on the lower half (LiDAR-like)."""
    h, w = 375, 1242
    image = np.full((h, w, 3), 60, np.uint8)
    image[150:250, 400:600] = (0, 0, 255)
    lane = np.zeros((h, w), np.uint8)
    lane[300:375, 620:630] = 1
    depth = np.zeros((h, w), np.float32)
    depth[200::3, ::3] = np.linspace(5, 60, w)[None, ::3]  # sparse: no value between points
    return Sample(image=image, boxes=np.array([[400, 150, 600, 250]], np.float32),
                  classes=np.array([0]), lane=lane, depth=depth,
                  camera=Camera(width=w, height=h, fx=fx, fy=fx, cx=621, cy=187),
                  ignore=np.array([[1000, 100, 1100, 200]], np.float32))


class ListReader(Reader):
    format, tasks = "synth", ("det", "lane", "depth")

    def __init__(self, samples: list[Sample]):
        self.samples, self.path = samples, None

    def __len__(self) -> int:
        return len(self.samples)

    def source(self, index: int) -> str:
        return f"sample{index}"

    def read(self, index: int) -> Sample:
        return self.samples[index]


def test_fit_sample_letterboxes_labels_with_the_image():
    item = fit_sample(kitti_like(), SIZE)
    s = 160 / 1242  # KITTI width fills the input; 48 rows of content in the middle
    top = (96 - round(375 * s)) // 2
    np.testing.assert_allclose(item.boxes[0], [400 * s, 150 * s + top, 600 * s, 250 * s + top], atol=0.5)
    x0, y0, x1, y1 = item.boxes[0].round().astype(int)
    assert (item.image[y0 + 1:y1 - 1, x0 + 1:x1 - 1, 2] > 200).all()  # the red car lies in its box
    assert item.ignore.shape == (1, 4)
    assert item.lane[:top].max() == 0 and item.lane.max() > 0.9
    assert item.focal == pytest.approx(721.5 * s, rel=0.01)
    kept = set(np.unique(item.depth).tolist())
    assert kept <= set(np.unique(kitti_like().depth).tolist())  # nearest: no made-up depth


def test_augment_keeps_labels_exact_and_is_a_function_of_its_rng():
    item = fit_sample(kitti_like(), SIZE)
    cfg = dataclasses.replace(STILL, scale_jitter=0.3, rotate_deg=0, translate=0.05)
    a = augment(item, AugmentConfig(), np.random.default_rng(3))
    b = augment(item, AugmentConfig(), np.random.default_rng(3))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.depth, b.depth)
    for seed in range(6):
        out = augment(item, cfg, np.random.default_rng(seed), hflip=True)
        zoom = out.focal / item.focal
        width_ratio = (out.boxes[0, 2] - out.boxes[0, 0]) / (item.boxes[0, 2] - item.boxes[0, 0])
        assert zoom == pytest.approx(width_ratio, rel=0.02)  # the focal follows the zoom exactly
        x0, y0, x1, y1 = out.boxes[0].round().astype(int)
        assert (out.image[y0 + 2:y1 - 2, x0 + 2:x1 - 2, 2] > 200).mean() > 0.97
        assert set(np.unique(out.depth).tolist()) <= set(np.unique(item.depth).tolist()) | {0.0}


def test_a_box_cut_to_a_sliver_becomes_an_ignore_region():
    boxes = np.array([[0, 0, 100, 10], [200, 0, 300, 10]], np.float32)
    area = np.array([1000.0, 1000.0])
    kept, classes, ignore = clip_boxes(boxes, np.array([0, 1]), np.zeros((0, 4), np.float32), area,
                                       (50, 0, 230, 10))
    assert kept.tolist() == [[50, 0, 100, 10]] and classes.tolist() == [0]  # half of it: still a car
    assert ignore.tolist() == [[200, 0, 230, 10]]  # 30 % of it: neither object nor background
    item = fit_sample(kitti_like(), SIZE)
    outcomes = set()
    for seed in range(30):
        out = augment(item, STILL, np.random.default_rng(seed), hflip=False, crop_width=64)
        outcomes.add((len(out.boxes), len(out.ignore) - (out.ignore[:, 0] >= 100).sum()))
    assert (0, 1) in outcomes and (1, 0) in outcomes  # some crops keep the car, some leave a sliver


def test_dataset_depth_is_in_the_canonical_focal_length():
    sample = kitti_like(fx=721.5)
    wide = dataclasses.replace(sample, camera=dataclasses.replace(sample.camera, fx=360.75))
    ds = MultiTaskDataset(ListReader([sample, wide]), SIZE)
    canonical = 0.8 * SIZE[1]
    a, b = ds[0], ds[1]
    raw = fit_sample(sample, SIZE).depth
    np.testing.assert_allclose(a.depth, raw * canonical / (721.5 * 160 / 1242), rtol=1e-5)
    np.testing.assert_allclose(b.depth, 2 * a.depth, rtol=1e-5)  # half the focal: twice the canonical depth
    batch = collate([a, b])
    assert batch.ignore.shape == (2, 1, 4) and batch.ignore_valid.all()
    assert batch.source.tolist() == [0, 0]


def test_mix_probabilities_follow_size_weight_and_temperature():
    np.testing.assert_allclose(mix_probabilities([900, 100], [1, 1]), [0.9, 0.1])
    np.testing.assert_allclose(mix_probabilities([900, 100], [1, 9]), [0.5, 0.5])
    flat = mix_probabilities([900, 100], [1, 1], temperature=1e6)
    np.testing.assert_allclose(flat, [0.5, 0.5], atol=1e-4)
    np.testing.assert_allclose(mix_probabilities([900, 100], [1, 1], 2.0), [0.75, 0.25])  # sqrt(9) : 1


def test_mixing_sampler_draws_each_share_and_splits_across_ranks():
    groups = [0] * 90 + [1] * 10
    sampler = EpochSampler(100, seed=3, groups=groups, weights=[1.0, 9.0])
    sampler.set_epoch(2)
    order = [p for p, _, _ in sampler]
    assert len(order) == 100
    counts = np.bincount(np.asarray(groups)[order], minlength=2)
    assert counts.tolist() == [50, 50]  # the small set repeats five times, the large one is cut
    assert len(set(order) & set(range(90, 100))) == 10  # every member of the small set is drawn
    again = EpochSampler(100, seed=3, groups=groups, weights=[1.0, 9.0])
    again.set_epoch(2)
    assert [p for p, _, _ in again] == order
    ranks = []
    for rank in range(2):
        r = EpochSampler(100, seed=3, rank=rank, world=2, groups=groups, weights=[1.0, 9.0])
        r.set_epoch(2)
        ranks.append([p for p, _, _ in r])
    assert sorted(ranks[0] + ranks[1]) == sorted(order)
    sampler.set_epoch(3)
    assert [p for p, _, _ in sampler] != order


def test_each_draw_of_an_oversampled_sample_is_augmented_anew():
    groups = [0] * 20 + [1] * 2
    sampler = EpochSampler(22, seed=0, groups=groups, weights=[1.0, 20.0])
    keys = list(sampler)
    repeats = [k for k in keys if k[0] == 20]
    assert len(repeats) > 2 and sorted(r for _, _, r in repeats) == list(range(len(repeats)))
    ds = MultiTaskDataset(ListReader([kitti_like()] * 22), SIZE, augment=AugmentConfig())
    first, second = ds[repeats[0]], ds[repeats[1]]
    assert not np.array_equal(first.image, second.image)
    np.testing.assert_array_equal(ds[repeats[0]].image, first.image)  # and each is reproducible


def synth_like() -> Sample:
    """A 1280x720 frame: a car at rows 300-400, a lane line, depth growing down the rows."""
    h, w = 720, 1280
    image = np.full((h, w, 3), 80, np.uint8)
    image[300:400, 500:700] = (0, 0, 255)
    lane = np.zeros((h, w), np.uint8)
    lane[500:720, 630:640] = 1
    depth = np.repeat(np.linspace(1, 80, h, dtype=np.float32)[:, None], w, 1)
    return Sample(image=image, boxes=np.array([[500, 300, 700, 400]], np.float32), classes=np.array([1]),
                  lane=lane, depth=depth, camera=Camera(width=w, height=h, fx=640, fy=640, cx=640, cy=360))


def test_crop_rows_cuts_every_label_with_the_frame():
    sample = synth_like()
    band = crop_rows(sample, 330, 600)
    assert band.image.shape == (270, 1280, 3) and band.lane.shape == band.depth.shape == (270, 1280)
    assert band.boxes.tolist() == [[500, 0, 700, 70]] and band.classes.tolist() == [1]  # 70 % left
    assert band.camera.cy == 30 and band.camera.height == 270 and band.camera.fx == 640
    np.testing.assert_array_equal(band.depth, sample.depth[330:600])
    sliver = crop_rows(sample, 380, 720)  # 20 % of the car: an ignore region, not a car
    assert len(sliver.boxes) == 0 and sliver.ignore.tolist() == [[500, 0, 700, 20]]
    unlabelled = crop_rows(dataclasses.replace(sample, boxes=None, classes=None, depth=None), 0, 10)
    assert unlabelled.boxes is None and unlabelled.depth is None
    with pytest.raises(ValueError, match="rows \\[700, 800\\)"):
        crop_rows(sample, 700, 800)


def test_wide_crop_draws_bands_up_to_the_widest_aspect():
    sample = synth_like()
    cfg = dataclasses.replace(STILL, wide_p=0.5, wide_aspect=3.4)
    heights = [wide_crop(sample, cfg, np.random.default_rng(seed)).image.shape[0] for seed in range(60)]
    cut = [h for h in heights if h < 720]
    assert 15 < len(cut) < 45  # about half the frames
    assert min(cut) >= round(1280 / 3.4) and min(cut) < 450  # some reach the KITTI-like strip
    assert wide_crop(sample, STILL, np.random.default_rng(0)) is sample  # wide_p 0: untouched
    ds = MultiTaskDataset(ListReader([sample]), SIZE, augment=cfg, seed=1)
    items = [ds[(0, epoch, 0)] for epoch in range(12)]
    content = [(it.image != PAD_BGR).any(axis=(1, 2)).sum() for it in items]  # rows not letterbox pad
    assert min(content) < 60 < max(content)
    for it in items:  # the box still covers the red car after the band and the letterbox
        x0, y0, x1, y1 = it.boxes[0].round().astype(int)
        assert (it.image[y0 + 1:y1 - 1, x0 + 1:x1 - 1, 2] > 200).mean() > 0.95


def test_tasks_and_the_background_ablation_change_only_what_they_say():
    full, no_det = synth_like(), dataclasses.replace(synth_like(), boxes=None, classes=None)
    only_det = MultiTaskDataset(ListReader([full]), SIZE, tasks=["det"])[0]
    assert only_det.has_label == {"det": True, "lane": False, "depth": False}
    masked = MultiTaskDataset(ListReader([no_det]), SIZE)[0]
    assert masked.has_label["det"] is False  # masking: the loss leaves det out for this sample
    naive = MultiTaskDataset(ListReader([no_det]), SIZE, missing="background", far=99.0)[0]
    assert naive.has_label == {"det": True, "lane": True, "depth": True} and len(naive.boxes) == 0
    np.testing.assert_array_equal(naive.lane, masked.lane)  # present labels untouched
    no_depth = dataclasses.replace(synth_like(), depth=None)
    far = MultiTaskDataset(ListReader([no_depth]), SIZE, missing="background", far=99.0,
                           tasks=["det", "depth"])[0]
    assert (far.depth == 99.0).all() and far.has_label == {"det": True, "lane": False, "depth": True}
    with pytest.raises(ValueError, match="missing='zero'"):
        MultiTaskDataset(ListReader([full]), SIZE, missing="zero")
    with pytest.raises(ValueError, match="tasks \\['car'\\]"):
        MultiTaskDataset(ListReader([full]), SIZE, tasks=["car"])

"""Missing-label masking: unlabelled tasks add nothing and their heads get no gradient."""

from __future__ import annotations

import math

import pytest
import torch

from edge_mtl.config import LossConfig
from edge_mtl.losses import assign_points, compute_losses
from edge_mtl.model.tritask import build_model
from edge_mtl.types import TASKS, Batch
from tests.helpers import TINY_SIZE, tiny_model_config

H, W = TINY_SIZE


def make_batch(b: int = 4, has: dict[str, list[bool]] | None = None) -> Batch:
    g = torch.Generator().manual_seed(1)
    boxes = torch.tensor([[10.0, 20.0, 40.0, 50.0], [60.0, 10.0, 120.0, 60.0]]).expand(b, 2, 4).clone()
    has = has or {t: [True] * b for t in TASKS}
    depth = torch.rand(b, 1, H, W, generator=g) * 50 + 1
    valid = torch.ones(b, 1, H, W, dtype=torch.bool)
    valid[:, :, : H // 4] = False  # "sky"
    return Batch(
        image=torch.randn(b, 3, H, W, generator=g),
        boxes=boxes,
        classes=torch.tensor([[0, 2]]).expand(b, 2).clone(),
        box_valid=torch.ones(b, 2, dtype=torch.bool),
        lane=(torch.rand(b, H, W, generator=g) > 0.9).float(),
        depth=depth * valid,
        depth_valid=valid,
        has_label={t: torch.tensor(v) for t, v in has.items()},
    )


HEAD_OF = {"det": "det_head", "lane": "lane_head", "depth": "depth_head"}


@pytest.mark.parametrize("missing", TASKS)
def test_unlabelled_task_gets_exactly_zero_gradient(missing):
    model = build_model(tiny_model_config()).train()
    has = {t: [t != missing] * 4 for t in TASKS}
    batch = make_batch(4, has)
    losses = compute_losses(model(batch.image), batch, LossConfig())
    assert missing not in losses and set(losses) == set(TASKS) - {missing}
    sum(losses.values()).backward()
    for task, head in HEAD_OF.items():
        grads = [p.grad for p in getattr(model, head).parameters()]
        if task == missing:
            assert all(g is None or torch.count_nonzero(g) == 0 for g in grads)
        else:
            assert any(g is not None and torch.count_nonzero(g) > 0 for g in grads)
    # The shared trunk still learns from the labelled tasks.
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())


def test_unlabelled_samples_do_not_change_the_loss():
    """A task's loss over labelled samples is the same whether unlabelled ones ride along."""
    torch.manual_seed(0)
    batch = make_batch(4, {t: [True, False, True, False] for t in TASKS})
    out = {"det_logits": torch.randn(4, 168, 3), "det_boxes": torch.rand(4, 168, 4) * 40,
           "lane_logits": torch.randn(4, 1, H // 2, W // 2),
           "depth": torch.rand(4, 1, H // 4, W // 4) * 30 + 1}
    out["det_boxes"][..., 2:] += out["det_boxes"][..., :2]
    full = compute_losses(out, batch, LossConfig())
    keep = torch.tensor([0, 2])
    sub = Batch(**{k: v[keep] for k, v in vars(batch).items() if k != "has_label" and v is not None},
                has_label={t: v[keep] for t, v in batch.has_label.items()})
    alone = compute_losses({k: v[keep] for k, v in out.items()}, sub, LossConfig())
    for t in TASKS:
        assert float(full[t]) == pytest.approx(float(alone[t]), rel=1e-5)


def test_half_the_labels_dropped_keeps_losses_finite():
    model = build_model(tiny_model_config()).train()
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        has = {t: (torch.rand(4, generator=g) < 0.5).tolist() for t in TASKS}
        batch = make_batch(4, has)
        losses = compute_losses(model(batch.image), batch, LossConfig())
        assert set(losses) == {t for t in TASKS if any(has[t])}
        for v in losses.values():
            assert math.isfinite(float(v.detach()))


def test_assignment_puts_a_box_on_one_level_around_its_centre():
    boxes = torch.tensor([[[8.0, 8.0, 56.0, 56.0]]])
    index, points = assign_points(boxes, torch.tensor([[True]]), H, W, (8, 16, 32))
    pos = index[0] >= 0
    assert pos.any()
    centre = torch.tensor([32.0, 32.0])
    assert torch.all((points[pos] - centre).abs() <= 2.5 * 16)
    inside = (points[pos] > 8).all(1) & (points[pos] < 56).all(1)
    assert inside.all()
    none, _ = assign_points(boxes, torch.tensor([[False]]), H, W, (8, 16, 32))
    assert (none < 0).all()  # padding boxes are never assigned


OUTPUT_OF = {"det": ("det_logits", "det_boxes"), "lane": ("lane_logits",), "depth": ("depth",)}


def test_each_head_gets_gradient_only_from_the_samples_that_carry_its_label():
    """A mixed batch as a KITTI + BDD100K + TuSimple mix gives it: per sample and per head, the
    loss's gradient on that head's outputs is non-zero exactly where the sample has the label."""
    has = {"det": [True, True, False, True], "lane": [False, True, True, False],
           "depth": [True, False, False, True]}
    batch = make_batch(4, has)
    model = build_model(tiny_model_config()).train()
    out = model(batch.image)
    for o in out.values():
        o.retain_grad()
    sum(compute_losses(out, batch, LossConfig()).values()).backward()
    for task, names in OUTPUT_OF.items():
        for name in names:
            per_sample = out[name].grad.flatten(1).abs().sum(1)
            assert ((per_sample > 0).tolist()) == has[task], (task, name, per_sample)


def test_predictions_inside_an_ignore_region_are_not_negatives():
    from edge_mtl.losses import detection_loss
    from edge_mtl.model.heads.detection import anchor_points

    batch = make_batch(1)
    points, _ = anchor_points(H, W, (8, 16, 32), torch.device("cpu"))
    n = len(points)
    logits = torch.full((1, n, 3), -6.0)
    region = torch.tensor([[0.0, 51.0, 56.0, 64.0]])  # below both objects
    inside = (points[:, 0] <= 56) & (points[:, 1] >= 51)
    logits[0, inside, 0] = 6.0  # confident "car" in the region: a false positive unless ignored
    logits.requires_grad_(True)
    boxes = torch.rand(1, n, 4) * 10
    boxes[..., 2:] += boxes[..., :2] + 1
    plain = detection_loss(logits, boxes, batch, LossConfig(), (8, 16, 32))
    batch.ignore, batch.ignore_valid = region[None], torch.ones(1, 1, dtype=torch.bool)
    ignored = detection_loss(logits, boxes, batch, LossConfig(), (8, 16, 32))
    assert float(ignored.detach()) < float(plain.detach()) - 1.0
    (grad,) = torch.autograd.grad(ignored, logits)
    assert torch.count_nonzero(grad[0, inside]) == 0 and torch.count_nonzero(grad[0, ~inside]) > 0
    batch.ignore_valid = torch.zeros(1, 1, dtype=torch.bool)  # a padded (invalid) region ignores nothing
    again = detection_loss(logits, boxes, batch, LossConfig(), (8, 16, 32))
    assert float(again.detach()) == pytest.approx(float(plain.detach()))

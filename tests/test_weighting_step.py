"""The one-pass gradient-level step gives exactly the gradient of sum_t w_t L_t."""

from __future__ import annotations

import functools

import pytest
import torch

from edge_mtl.config import LossConfig, WeightingConfig
from edge_mtl.types import TASKS
from edge_mtl.weighting import build_weighting
from edge_mtl.weighting.step import weighted_loss


@pytest.mark.parametrize("freeze", [0, 3])
def test_one_pass_step_equals_a_plain_backward_of_the_weighted_sum(tiny_dataset, freeze):
    """c2 feeds c4 and the FPN as well as the heads: every path must be counted once."""
    from edge_mtl.data.dataset import MultiTaskDataset, collate
    from edge_mtl.losses import compute_losses
    from edge_mtl.model.tritask import build_model
    from tests.helpers import TINY_SIZE, tiny_model_config

    torch.manual_seed(0)
    model = build_model(tiny_model_config(freeze_backbone=freeze)).train()
    batch = collate([MultiTaskDataset(tiny_dataset, TINY_SIZE)[i] for i in range(4)])
    loss_fn = functools.partial(compute_losses, batch=batch, cfg=LossConfig(), strides=model.det_strides)
    weighting = build_weighting(WeightingConfig(strategy="nash_mtl", warmup_steps=0), TASKS)
    result = weighted_loss(model, model, weighting, batch.image, loss_fn, 0)
    assert result.grads is not None  # the one-pass path
    result.backward()
    one_pass = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    w = weighting.current_weights(0)
    assert len(set(w.values())) > 1  # weights that differ, so a mix-up would show

    model.zero_grad(set_to_none=True)
    losses = loss_fn(model(batch.image))
    sum(w[t] * v for t, v in losses.items()).backward()
    plain = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert one_pass.keys() == plain.keys()
    assert any(n.startswith("backbone.features.0") for n in plain) == (freeze == 0)
    for n, g in plain.items():  # float32 sums in another order: tolerance relative to the tensor
        torch.testing.assert_close(one_pass[n], g, rtol=1e-3, atol=1e-4 * float(g.abs().max()) + 1e-6,
                                   msg=n)

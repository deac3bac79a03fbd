"""Step time of every weighting strategy: ``python -m edge_mtl.weighting.bench``.

One training step (forward, `weighted_loss`, backward, AdamW step) of the release architecture
on a fixed batch of rendered frames, timed after warm-up for each loss-level strategy and each
gradient-level one with its gradients taken at the shared features (``representation``) and on
the trunk's parameters (``parameters``). Prints JSON: median ms per step, and its ratio to equal
weighting (the issue's bar: representation-level methods within 1.3x).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import statistics
import time

import torch

from edge_mtl.config import GRADIENT_STRATEGIES, LOSS_STRATEGIES, Config, WeightingConfig


def _batch(cfg: Config, batch_size: int, seed: int):
    from edge_mtl.data.dataset import collate
    from edge_mtl.data.transforms import fit_sample
    from edge_mtl.data.world import render_random

    size = (cfg.model.input_height, cfg.model.input_width)
    items = [fit_sample(render_random(seed + i).sample, size) for i in range(batch_size)]
    return collate(items)


def bench(config: str = "models/tritask_mnv3l.yaml", batch_size: int = 4, steps: int = 5,
          strategies: list[str] | None = None, height: int | None = None, width: int | None = None) -> dict:
    from edge_mtl.losses import compute_losses
    from edge_mtl.model.tritask import build_model
    from edge_mtl.types import TASKS
    from edge_mtl.weighting import build_weighting
    from edge_mtl.weighting.step import weighted_loss

    cfg = Config.load(config)
    cfg.model = dataclasses.replace(cfg.model, pretrained=None, input_height=height or cfg.model.input_height,
                                    input_width=width or cfg.model.input_width)
    batch = _batch(cfg, batch_size, 12345)
    cases = [(s, "representation") for s in strategies or LOSS_STRATEGIES if s in LOSS_STRATEGIES]
    for s in strategies or GRADIENT_STRATEGIES:
        if s in GRADIENT_STRATEGIES:
            cases += [(s, "representation"), (s, "parameters")]
    results = {}
    for strategy, gradients in cases:
        torch.manual_seed(0)
        model = build_model(cfg.model).train()
        weighting = build_weighting(WeightingConfig(strategy=strategy, warmup_steps=0), TASKS)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        loss_fn = functools.partial(compute_losses, batch=batch, cfg=cfg.loss, strides=model.det_strides)
        times = []
        for k in range(steps + 1):  # the first is warm-up
            start = time.perf_counter()
            result = weighted_loss(model, model, weighting, batch.image, loss_fn, k, gradients=gradients)
            optimizer.zero_grad(set_to_none=True)
            result.backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
        key = strategy if strategy in LOSS_STRATEGIES else f"{strategy}@{gradients}"
        results[key] = {"ms_per_step": round(1000 * statistics.median(times[1:]), 1)}
    base = results.get("equal", next(iter(results.values())))["ms_per_step"]
    for r in results.values():
        r["vs_equal"] = round(r["ms_per_step"] / base, 3)
    return {"schema": "edge_mtl.weighting_bench/1", "config": config, "batch_size": batch_size,
            "input_size": [cfg.model.input_height, cfg.model.input_width], "steps": steps,
            "threads": torch.get_num_threads(), "results": results}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_mtl.weighting.bench",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="models/tritask_mnv3l.yaml",
                    help="model config (default: the release's)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per strategy (after one warm-up)")
    ap.add_argument("--height", type=int, help="input height (default: the config's)")
    ap.add_argument("--width", type=int, help="input width (default: the config's)")
    ap.add_argument("--strategy", action="append", help="only these (repeatable; default: all)")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        ap.error("--steps and --batch-size must be positive")
    every = LOSS_STRATEGIES + GRADIENT_STRATEGIES
    unknown = set(args.strategy or []) - set(every)
    if unknown:
        ap.error(f"unknown strategy {sorted(unknown)}; choose from {list(every)}")
    print(json.dumps(bench(args.config, args.batch_size, args.steps, args.strategy, args.height, args.width),
                     indent=1))


if __name__ == "__main__":
    main()

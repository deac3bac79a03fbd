"""What a network costs: parameters, FLOPs (torch.utils.flop_counter, a multiply-add = 2) and
onnxruntime latency on this CPU, for the tri-task network and for each task's own slice of it
(trunk + that head: what a single-task model is)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_mtl.types import TASKS

TASK_OUTPUTS = {"det": ("det_logits", "det_boxes"), "lane": ("lane_logits",), "depth": ("depth",)}


class TaskSlice(nn.Module):
    """The network's outputs for ``tasks`` only: an export keeps just the layers they need."""

    def __init__(self, net: nn.Module, tasks: tuple[str, ...]):
        super().__init__()
        self.net, self.names = net, [n for t in tasks for n in TASK_OUTPUTS[t]]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(image)
        return tuple(out[n] for n in self.names)


def used_parameters(module: nn.Module, image: torch.Tensor) -> int:
    """Parameters that the module's outputs depend on (a slice's heads for other tasks excluded)."""
    module.zero_grad(set_to_none=True)
    with torch.enable_grad():
        sum(o.float().sum() for o in module(image)).backward()
    n = sum(p.numel() for p in module.parameters() if p.grad is not None)
    module.zero_grad(set_to_none=True)
    return n


def flops(module: nn.Module, image: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(image)
    return int(counter.get_total_flops())


def ort_latency_ms(module: nn.Module, image: torch.Tensor, runs: int = 30, threads: int = 2) -> float:
    """Median latency of the module exported to ONNX, onnxruntime CPU with ``threads`` threads."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        with torch.no_grad():
            torch.onnx.export(module, (image,), str(path), input_names=["image"], opset_version=17,
                              dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"image": image.numpy().astype(np.float32)}
        for _ in range(3):
            session.run(None, feed)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            session.run(None, feed)
            times.append(1000 * (time.perf_counter() - t))
    return round(statistics.median(times), 2)


def network_costs(model: nn.Module, size: tuple[int, int], runs: int = 30) -> dict[str, dict[str, float]]:
    """For ``all`` (the tri-task network) and each task's slice: params, GFLOPs, CPU ms."""
    model = model.eval()
    image = torch.zeros(1, 3, *size)
    out = {}
    for name, tasks in [("all", TASKS), *[(t, (t,)) for t in TASKS]]:
        sliced = TaskSlice(model, tasks)
        out[name] = {"params": used_parameters(sliced, image), "gflops": round(flops(sliced, image) / 1e9, 3),
                     "cpu_ms": ort_latency_ms(sliced, image, runs)}
    return out

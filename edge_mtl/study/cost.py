"""What a network costs: parameters, FLOPs (torch.utils.flop_counter, a multiply-add = 2) and
onnxruntime latency on this CPU, for the tri-task network and for each task's own slice of it
(trunk + that head: what a single-task model is)."""

from __future__ import annotations

import inspect
import statistics
import tempfile
import time
import warnings
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


def unused_modules(net: nn.Module, tasks: tuple[str, ...], image: torch.Tensor) -> list[str]:
    """The largest submodules of ``net`` that none of ``tasks``' outputs depend on (every
    parameter of theirs gets no gradient), e.g. the FPN's stride-16/32 output convolutions for
    lane or depth, which read only P3."""
    sliced = TaskSlice(net, tasks)
    frozen = [p for p in net.parameters() if not p.requires_grad]
    for p in frozen:  # a frozen block is still used: let the probe reach it
        p.requires_grad_(True)
    net.zero_grad(set_to_none=True)
    try:
        with torch.enable_grad():
            sum(o.float().sum() for o in sliced(image)).backward()
        unused: list[str] = []
        for name, module in net.named_modules():
            params = list(module.parameters())
            inside = any(name.startswith(u + ".") for u in unused)
            if name and params and not inside and all(p.grad is None for p in params):
                unused.append(name)
        return unused
    finally:
        net.zero_grad(set_to_none=True)
        for p in frozen:
            p.requires_grad_(False)


def flops_by_module(net: nn.Module, image: torch.Tensor) -> tuple[int, dict[str, int]]:
    """Total FLOPs of one forward, and each submodule's (by its name in ``named_modules``)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(image)
    counts = counter.get_flop_counts()
    root = type(net).__name__
    return int(counter.get_total_flops()), {
        name: int(sum(counts.get(f"{root}.{name}", {}).values())) for name, _ in net.named_modules() if name}


def ort_latency_ms(module: nn.Module, image: torch.Tensor, runs: int = 30, threads: int = 2) -> float:
    """Median latency of the module exported to ONNX, onnxruntime CPU with ``threads`` threads."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        kwargs = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter (DESIGN)
            torch.onnx.export(module, (image,), str(path), input_names=["image"], opset_version=17, **kwargs)
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
    """For ``all`` (the tri-task network) and each task's slice of it (the trunk and that task's
    heads, as a single-task model would be): parameters, GFLOPs, onnxruntime CPU ms."""
    model = model.eval()
    image = torch.zeros(1, 3, *size)
    total, by_module = flops_by_module(model, image)
    out = {}
    for name, tasks in [("all", TASKS), *[(t, (t,)) for t in TASKS]]:
        unused = unused_modules(model, tasks, image)
        dropped = {id(p) for u in unused for p in model.get_submodule(u).parameters()}
        params = sum(p.numel() for p in model.parameters() if id(p) not in dropped)
        out[name] = {"params": params, "gflops": (total - sum(by_module[u] for u in unused)) / 1e9,
                     "cpu_ms": ort_latency_ms(TaskSlice(model, tasks), image, runs)}
    return out

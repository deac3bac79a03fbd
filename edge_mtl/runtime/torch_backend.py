"""PyTorch backend: CPU fp32, or CUDA with fp16, channels_last and CUDA-graph replay."""

from __future__ import annotations

import os

import numpy as np
import torch

from edge_mtl.checkpoint import load_model
from edge_mtl.files import sha256
from edge_mtl.runtime.backend import Backend, ModelInfo
from edge_mtl.runtime.geometry import canonical_focal
from edge_mtl.types import CLASSES, OUTPUT_NAMES


class TorchBackend(Backend):
    """Runs a checkpoint. On CUDA the defaults are fp16 + channels_last + CUDA-graph replay
    (the static input shape makes one captured graph valid for every frame)."""

    name = "torch"

    def __init__(self, checkpoint: str | os.PathLike, device: str = "auto", fp16: bool | None = None,
                 channels_last: bool | None = None, cuda_graph: bool | None = None):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.torch_device = torch.device(device)
        if self.torch_device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("torch backend: device 'cuda' asked for, but torch sees no CUDA GPU")
        on_cuda = self.torch_device.type == "cuda"
        self.fp16 = on_cuda if fp16 is None else fp16
        if self.fp16 and not on_cuda:
            raise ValueError("torch backend: fp16 needs CUDA (CPU kernels for half are slow or absent)")
        self.channels_last = on_cuda if channels_last is None else channels_last
        self.use_graph = on_cuda if cuda_graph is None else cuda_graph
        if self.use_graph and not on_cuda:
            raise ValueError("torch backend: CUDA-graph replay needs CUDA")

        cfg, model = load_model(checkpoint)
        self.info = ModelInfo(path=str(checkpoint), sha256=sha256(checkpoint),
                              input_size=(cfg.model.input_height, cfg.model.input_width),
                              class_names=CLASSES[: cfg.model.num_classes],
                              backbone=cfg.model.backbone,
                              params=sum(p.numel() for p in model.parameters()),
                              resize=cfg.model.resize,
                              canonical_focal=canonical_focal(cfg.model.input_width,
                                                              cfg.model.canonical_focal))
        self.dtype = torch.float16 if self.fp16 else torch.float32
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.torch_device, self.dtype, memory_format=memory_format)
        self.memory_format = memory_format
        self.precision = "fp16" if self.fp16 else "fp32"
        self.device = str(self.torch_device)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static_in: torch.Tensor | None = None
        self._static_out: dict[str, torch.Tensor] = {}
        self._host_in: torch.Tensor | None = None

    def _to_device(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images, np.float32))
        if self.torch_device.type == "cuda":
            if self._host_in is None or self._host_in.shape != x.shape:
                self._host_in = torch.empty(x.shape, dtype=torch.float32, pin_memory=True)
            self._host_in.copy_(x)
            x = self._host_in.to(self.torch_device, non_blocking=True)
        return x.to(self.dtype).contiguous(memory_format=self.memory_format)

    def _capture(self, x: torch.Tensor) -> None:
        """Warm up on a side stream, then capture one forward into a CUDA graph."""
        self._static_in = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):
                self.model(self._static_in)
        torch.cuda.current_stream().wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph), torch.inference_mode():
            self._static_out = self.model(self._static_in)

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = self._to_device(images)
        if self.use_graph:
            if self._graph is None or self._static_in is None or self._static_in.shape != x.shape:
                self._capture(x)
            self._static_in.copy_(x)
            self._graph.replay()
            out = self._static_out
        else:
            with torch.inference_mode():
                out = self.model(x)
        return {k: out[k].float().cpu().numpy() for k in OUTPUT_NAMES}

    def close(self) -> None:
        self._graph = None
        self._static_out = {}
        self._static_in = self._host_in = None
        if self.torch_device.type == "cuda":
            torch.cuda.empty_cache()

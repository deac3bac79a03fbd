"""torchvision MobileNet feature extractors that report (channels, stride) per level."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from edge_mtl.paths import shipped_file

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "mobilenet_v3_large": torchvision.models.mobilenet_v3_large,
    "mobilenet_v3_small": torchvision.models.mobilenet_v3_small,
    "mobilenet_v2": torchvision.models.mobilenet_v2,
}

# A pretrained file (e.g. models/mobilenet_v2_imagenet.pt) may carry this key beside its
# ``features.*`` tensors: a dict of plain values, e.g. {"tf_padding": True}, read and checked here.
PRETRAINED_META_KEY = "_meta"


def tf_same_pads(size: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
                 dilation: Sequence[int] = (1, 1)) -> list[int]:
    """``F.pad`` amounts (last dimension first: left, right, top, bottom) that give a convolution
    of a ``size`` (H, W) input TF 'SAME' padding: ``ceil(n / s)`` outputs, the smaller half of
    the padding before and the rest after. A stride-2 3x3 convolution of an even-sized input
    gets 0 before and 1 after (torchvision pads 1 on both sides: same output size, a grid
    shifted by one input pixel)."""
    pads: list[int] = []
    for n, k, s, d in zip(reversed(tuple(size)), reversed(tuple(kernel_size)), reversed(tuple(stride)),
                          reversed(tuple(dilation)), strict=True):
        total = max((-(-int(n) // s) - 1) * s + (k - 1) * d + 1 - int(n), 0)
        pads += [total // 2, total - total // 2]
    return pads


class TFSamePadConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TF 'SAME' padding (``tf_same_pads`` of each input's size; ``padding``
    is 0). The same parameters and state-dict keys as ``nn.Conv2d``; made by ``tf_same_padding``.
    In ONNX it exports as a constant Pad before the Conv, which onnxslim folds into the Conv's
    ``pads`` (``[0, 0, 1, 1]`` for a stride-2 3x3 convolution of an even-sized map)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():  # the ONNX export is static-shape: constant pads are the intent
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                pads = tf_same_pads(x.shape[-2:], self.kernel_size, self.stride, self.dilation)
        else:
            pads = tf_same_pads(x.shape[-2:], self.kernel_size, self.stride, self.dilation)
        return super().forward(F.pad(x, pads) if any(pads) else x)


def tf_same_padding(module: nn.Module) -> nn.Module:
    """Give every strided ``nn.Conv2d`` in ``module`` TF 'SAME' padding, in place; returns ``module``.

    Stride-1 convolutions with odd kernels already pad as TF does and are left alone. Each strided
    one becomes a ``TFSamePadConv2d`` (its class changed in place, so parameters, state-dict keys
    and any optimiser's references stay as they are).
    """
    for m in module.modules():
        if type(m) is nn.Conv2d and m.stride != (1, 1):
            if m.padding_mode != "zeros" or isinstance(m.padding, str):
                raise ValueError(f"tf_same_padding: {m} pads with mode {m.padding_mode!r} / "
                                 f"{m.padding!r}; only zero padding given as numbers is converted")
            m.__class__ = TFSamePadConv2d
            m.padding = (0, 0)
    return module


class MobileNetBackbone(nn.Module):
    """``features`` of a torchvision MobileNet, returning the last map at each stride.

    ``feature_info`` lists (channels, stride) per returned level: the contract the neck reads.
    ``tf_padding`` gives the strided convolutions TF 'SAME' padding (``tf_same_padding``), what
    weights converted from TensorFlow (models/mobilenet_v2_imagenet.pt) were trained with.
    ``freeze``: the first N blocks of ``features`` (-1: all) take no gradient and keep their
    BatchNorm statistics (eval mode whatever ``train()`` says).
    """

    def __init__(self, name: str = "mobilenet_v3_large", strides: tuple[int, ...] = (2, 4, 8, 16, 32),
                 pretrained: str | None = None, tf_padding: bool = False, freeze: int = 0):
        super().__init__()
        if name not in BACKBONES:
            raise ValueError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}")
        net = BACKBONES[name](weights=None)
        if pretrained:
            path = shipped_file(pretrained)
            if not path.is_file():
                raise FileNotFoundError(f"pretrained backbone weights {path} not found "
                                        "(weights are never downloaded; pass a local file)")
            state = torch.load(path, map_location="cpu", weights_only=True)
            meta = state.pop(PRETRAINED_META_KEY, None) if isinstance(state, dict) else None
            try:
                missing = net.load_state_dict(state, strict=False).missing_keys
            except RuntimeError as e:  # tensors of another shape: another architecture's file
                first = str(e).split("size mismatch for ", 1)[-1].split(":", 1)[0]
                raise ValueError(f"{path}: does not hold {name} weights ({first} has another shape); "
                                 "set model.pretrained to a file for this backbone, or null") from None
            if any(k.startswith("features.") for k in missing):
                raise ValueError(f"{path}: does not hold {name} weights (missing {missing[:3]}…)")
            expects = meta.get("tf_padding") if isinstance(meta, dict) else None
            if expects is not None and bool(expects) != tf_padding:
                warnings.warn(f"{path} was converted for model.tf_padding={str(bool(expects)).lower()}, "
                              f"this model has tf_padding={str(tf_padding).lower()}: its strided "
                              "convolutions sample another grid, so the pretrained function is "
                              "largely lost (models/README.md, 'Pretrained initialisation')", stacklevel=2)
        if tf_padding:
            tf_same_padding(net.features)
        self.tf_padding = tf_padding
        self.features = net.features
        if freeze > len(self.features):
            raise ValueError(f"model.freeze_backbone={freeze}: {name} has {len(self.features)} blocks")
        self.frozen = len(self.features) if freeze < 0 else freeze
        for layer in self.features[:self.frozen]:
            layer.requires_grad_(False)
        self.out_indices, self.feature_info = self._probe(strides)

    def train(self, mode: bool = True) -> MobileNetBackbone:
        super().train(mode)
        for layer in self.features[:self.frozen]:
            layer.train(False)
        return self

    @torch.no_grad()
    def _probe(self, strides: tuple[int, ...]) -> tuple[list[int], list[tuple[int, int]]]:
        self.features.eval()
        x = torch.zeros(1, 3, 128, 128)
        last: dict[int, tuple[int, int]] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            last[128 // x.shape[-1]] = (i, x.shape[1])
        self.train()
        missing = [s for s in strides if s not in last]
        if missing:
            raise ValueError(f"backbone has no feature map at stride(s) {missing}")
        return [last[s][0] for s in strides], [(last[s][1], s) for s in strides]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.out_indices:
                outs.append(x)
            if i == self.out_indices[-1]:
                break
        return outs

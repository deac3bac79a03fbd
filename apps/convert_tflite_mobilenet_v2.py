"""Convert the TFLite ImageNet MobileNetV2 (uint8 post-training quantised) into torchvision weights.

    python apps/convert_tflite_mobilenet_v2.py \\
        ../shared/data/pretrained/mobilenet_v2_1.0_224_quant.tflite --out models/mobilenet_v2_imagenet.pt
    # optional: compare with a TFLite interpreter (pip install ai-edge-litert; not a project dependency)
    python apps/convert_tflite_mobilenet_v2.py ../shared/data/pretrained/mobilenet_v2_1.0_224_quant.tflite \\
        --out /tmp/mnv2.pt --verify ../shared/data/bdd_frames --synthetic 12
    # the file expects model.tf_padding: true (and backbone: mobilenet_v2, pretrained: this file)

What it does, and why (models/README.md, "Pretrained initialisation", has the numbers):

- **Parsing.** The flatbuffer is read with the `flatbuffers` runtime that onnxruntime already
  installs, through the handful of TFLite schema fields used here (``_FIELDS`` names them, with
  their slot numbers in tensorflow/lite/schema/schema.fbs); no TFLite package is needed.
- **Dequantisation.** Every weight and bias is ``(q - zero_point) * scale``, per tensor or per
  channel along the file's ``quantized_dimension``; int32 biases the same way (their scale is
  input scale x weight scale). Float tensors are taken as they are.
- **Layouts.** TFLite convolutions are OHWI, depthwise ones 1HWO (channel x multiplier):
  torch wants OIHW and [O, 1, H, W].
- **BatchNorm.** The TFLite graph has BatchNorm folded into each convolution (``*_Fold``
  tensors). The folded weight goes into torchvision's conv and each BatchNorm first becomes
  identity + bias (weight 1, bias = the folded bias b, running_mean 0, running_var ``1 - eps``:
  eval-mode BN computes ``x + b``). That holds in eval mode only: in train mode (fine-tuning) a
  BatchNorm normalises with the batch's own statistics, which throws the pretrained function
  away. So by default (``--bn-images 32``) each BatchNorm is then re-expressed around the
  statistics of its own input, measured in one eval-mode pass over synthetic-world frames
  (``render_random(seed)`` for seeds ``BN_SEED0`` onwards, pre-processed to 384x640 as the
  project does, TF padding on): with per-channel mean m and (biased) variance v, running_mean
  m, running_var v, weight ``sqrt(v + eps)``, bias ``m + b``. Eval mode is still ``x + b`` (to
  float32 rounding; ``main`` prints the check), and train mode on frames like those stays close
  to it (models/README.md has the numbers). The statistics follow the renderer: a re-conversion
  reproduces the conv weights exactly and the eval-mode function (``folded_eval``) to rounding,
  not the statistics. ``--bn-images 0`` keeps identity + bias.
- **Padding.** TF 'SAME' pads stride-2 3x3 convolutions of an even-sized input by 0 before and 1
  after; torchvision pads 1 on both sides, so in torchvision's architecture the five stride-2
  layers sample a grid shifted by one input pixel and the pretrained function is largely lost.
  ``model.tf_padding: true`` gives the backbone TF's padding
  (``edge_mtl.model.backbone.tf_same_padding``, used here too); the file is meant for it and
  says so (``_meta``: ``tf_padding: true``; the backbone warns when loading it without).
- **Input scaling.** The weights expect the TFLite input quantisation read from the file,
  ``(u - 128) / 128`` for this model (about [-1, 1]; not ImageNet mean/std). The project
  normalises with ImageNet mean/std (edge_mtl/runtime/preprocess.py), so by default the affine
  map between the two is folded into the first convolution (weights x ``scale * STD``, bias +
  the weights' response to ``scale * (MEAN - zero_point)``); the project keeps one
  pre-processing. The fold is exact except where the first convolution reads its zero padding
  (zero in ImageNet-normalised space is the ImageNet mean colour, not 128 grey).
  ``--no-fold-input`` keeps the raw ``(u - 128) / 128`` weights.
- **Classifier.** TFLite's head has 1001 classes, class 0 ``background``; torchvision's has
  1000. The project uses only ``features``, so only ``features.*`` is written unless
  ``--classifier`` asks for ``classifier.1.*`` too (the background row dropped).
- **Storage.** Convolution weights in fp16 (the dequantised uint8 values carry 8 bits, fp16
  keeps 11: its rounding is at most 1/16 of a quantisation step), BatchNorm tensors in fp32;
  ``--fp32`` stores everything in fp32. Beside the tensors, ``_meta`` (plain values: source,
  ``tf_padding``, input scaling, how the BN statistics were made), which
  ``edge_mtl.model.backbone`` reads and ``load_state_dict(strict=False)`` ignores.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# TFLite schema (tensorflow/lite/schema/schema.fbs): field slots of the tables read here.
_FIELDS = {
    "Model": {"operator_codes": 1, "subgraphs": 2, "buffers": 4},
    "OperatorCode": {"deprecated_builtin_code": 0, "builtin_code": 3},
    "SubGraph": {"tensors": 0, "inputs": 1, "outputs": 2, "operators": 3},
    "Tensor": {"shape": 0, "type": 1, "buffer": 2, "name": 3, "quantization": 4},
    "QuantizationParameters": {"scale": 2, "zero_point": 3, "quantized_dimension": 6},
    "Operator": {"opcode_index": 0, "inputs": 1, "outputs": 2, "builtin_options": 4},
    "Buffer": {"data": 0, "offset": 1, "size": 2},
    "Conv2DOptions": {"padding": 0, "stride_w": 1, "stride_h": 2, "fused_activation_function": 3,
                      "dilation_w_factor": 4, "dilation_h_factor": 5},
    "DepthwiseConv2DOptions": {"padding": 0, "stride_w": 1, "stride_h": 2, "depth_multiplier": 3,
                               "fused_activation_function": 4, "dilation_w_factor": 5,
                               "dilation_h_factor": 6},
}
OPCODES = {0: "ADD", 1: "AVERAGE_POOL_2D", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 9: "FULLY_CONNECTED",
           22: "RESHAPE", 25: "SOFTMAX", 6: "DEQUANTIZE", 114: "QUANTIZE", 43: "SQUEEZE", 40: "MEAN"}
TENSOR_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16,
                9: np.int8, 10: np.float64}
PADDING = {0: "SAME", 1: "VALID"}
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
BN_EPS = 1e-5  # torchvision MobileNetV2's BatchNorm2d eps
BN_SEED0 = 50_000  # synthetic-world seeds of the BatchNorm statistics: BN_SEED0, BN_SEED0 + 1, ...
BN_SIZE = (384, 640)  # the project's input size
META_KEY = "_meta"  # edge_mtl.model.backbone.PRETRAINED_META_KEY (the backbone checks tf_padding)


class _Table:
    """One flatbuffer table, its fields read by name through ``_FIELDS``."""

    def __init__(self, kind: str, buf: bytes, pos: int):
        from flatbuffers.table import Table

        self.kind, self.buf, self.t = kind, buf, Table(buf, pos)

    def _off(self, name: str) -> int:
        return self.t.Offset(4 + 2 * _FIELDS[self.kind][name])

    def scalar(self, name: str, fmt: str, default=0):
        o = self._off(name)
        return np.frombuffer(self.buf, fmt, 1, self.t.Pos + o)[0].item() if o else default

    def array(self, name: str, fmt: str) -> np.ndarray:
        o = self._off(name)
        return (np.frombuffer(self.buf, fmt, self.t.VectorLen(o), self.t.Vector(o)) if o
                else np.zeros(0, fmt))

    def string(self, name: str) -> str:
        o = self._off(name)
        return self.t.String(self.t.Pos + o).decode("utf-8") if o else ""

    def table(self, name: str, kind: str) -> _Table | None:
        o = self._off(name)
        return _Table(kind, self.buf, self.t.Indirect(self.t.Pos + o)) if o else None

    def tables(self, name: str, kind: str) -> list[_Table]:
        o = self._off(name)
        if not o:
            return []
        start = self.t.Vector(o)
        return [_Table(kind, self.buf, self.t.Indirect(start + 4 * i)) for i in range(self.t.VectorLen(o))]


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type
    data: np.ndarray | None  # constant data (weights, biases) in its stored dtype and shape
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    zero_point: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    axis: int = 0  # quantized_dimension (per-channel quantisation)


@dataclass
class Op:
    kind: str
    inputs: list[Tensor | None]
    outputs: list[Tensor]
    options: dict[str, int]


@dataclass
class Graph:
    ops: list[Op]
    inputs: list[Tensor]
    outputs: list[Tensor]


def read_tflite(data: bytes) -> Graph:
    """The first subgraph of a TFLite flatbuffer: operators in execution order with their tensors."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (file identifier 'TFL3' missing)")
    root = int(np.frombuffer(data, "<u4", 1, 0)[0])
    model = _Table("Model", data, root)
    codes = []
    for c in model.tables("operator_codes", "OperatorCode"):
        code = max(c.scalar("deprecated_builtin_code", "<i1"), c.scalar("builtin_code", "<i4"))
        codes.append(OPCODES.get(code, f"BUILTIN_{code}"))
    buffers = model.tables("buffers", "Buffer")
    subgraphs = model.tables("subgraphs", "SubGraph")
    if not subgraphs:
        raise ValueError("TFLite model has no subgraph")
    sg = subgraphs[0]
    tensors = []
    for i, t in enumerate(sg.tables("tensors", "Tensor")):
        shape = tuple(int(d) for d in t.array("shape", "<i4"))
        ttype = t.scalar("type", "<i1")
        if ttype not in TENSOR_TYPES:
            raise ValueError(f"tensor {t.string('name')!r}: unsupported TFLite type {ttype}")
        dtype = TENSOR_TYPES[ttype]
        raw = None
        b = t.scalar("buffer", "<u4")
        if 0 < b < len(buffers):
            buf = buffers[b]
            raw = buf.array("data", "u1")
            offset, size = buf.scalar("offset", "<u8"), buf.scalar("size", "<u8")
            if not raw.size and offset > 1:  # large models keep buffers after the flatbuffer
                raw = np.frombuffer(data, "u1", size, offset)
        arr = None
        if raw is not None and raw.size:
            arr = np.frombuffer(raw.tobytes(), np.dtype(dtype).newbyteorder("<")).reshape(shape)
        q = t.table("quantization", "QuantizationParameters")
        tensor = Tensor(i, t.string("name"), shape, dtype, arr)
        if q is not None:
            tensor.scale = q.array("scale", "<f4").copy()
            tensor.zero_point = q.array("zero_point", "<i8").copy()
            tensor.axis = q.scalar("quantized_dimension", "<i4")
        tensors.append(tensor)
    ops = []
    for o in sg.tables("operators", "Operator"):
        kind = codes[o.scalar("opcode_index", "<u4")]
        opts: dict[str, int] = {}
        table_kind = {"CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions"}.get(kind)
        if table_kind:
            ot = o.table("builtin_options", table_kind)
            for name in _FIELDS[table_kind]:
                default = 1 if name.startswith("dilation") or name == "depth_multiplier" else 0
                opts[name] = ot.scalar(name, "<i1" if name in ("padding", "fused_activation_function")
                                       else "<i4", default) if ot else default
        ops.append(Op(kind, [tensors[j] if j >= 0 else None for j in o.array("inputs", "<i4")],
                      [tensors[j] for j in o.array("outputs", "<i4")], opts))
    return Graph(ops, [tensors[j] for j in sg.array("inputs", "<i4")],
                 [tensors[j] for j in sg.array("outputs", "<i4")])


def dequantize(t: Tensor) -> np.ndarray:
    """A constant tensor as float32: ``(q - zero_point) * scale``, per tensor or per channel."""
    if t.data is None:
        raise ValueError(f"tensor {t.name!r} holds no constant data")
    if np.issubdtype(t.data.dtype, np.floating):
        return t.data.astype(np.float32)
    scale, zp = t.scale.astype(np.float64), t.zero_point.astype(np.float64)
    if scale.size == 0:
        raise ValueError(f"integer tensor {t.name!r} has no quantisation scale")
    if zp.size == 0:
        zp = np.zeros(1)
    q = t.data.astype(np.float64)
    if scale.size > 1 or zp.size > 1:
        n = t.data.shape[t.axis]
        if scale.size not in (1, n) or zp.size not in (1, n):
            raise ValueError(f"tensor {t.name!r}: {scale.size} scales / {zp.size} zero points for "
                             f"{n} channels along axis {t.axis}")
        shape = [1] * q.ndim
        shape[t.axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q - zp) * scale).astype(np.float32)


def conv_weight_to_torch(w: np.ndarray) -> np.ndarray:
    """TFLite CONV_2D weight OHWI -> torch Conv2d OIHW."""
    return np.ascontiguousarray(w.transpose(0, 3, 1, 2))


def depthwise_weight_to_torch(w: np.ndarray) -> np.ndarray:
    """TFLite DEPTHWISE_CONV_2D weight [1, H, W, C*M] -> torch grouped Conv2d [C*M, 1, H, W]
    (TFLite's output channel c*M + m and torch's both read input channel c)."""
    if w.ndim != 4 or w.shape[0] != 1:
        raise ValueError(f"depthwise weight must be [1, H, W, C*M], got {w.shape}")
    return np.ascontiguousarray(w[0].transpose(2, 0, 1)[:, None])


def fold_input_normalization(weight: np.ndarray, bias: np.ndarray, in_scale: float, in_zero: float,
                             mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First conv (OIHW) re-expressed for input ``(u - mean) / std`` instead of ``(u - in_zero) * in_scale``.

    ``(u - z) s = a x + b`` with ``x = (u - mean) / std``, ``a = s std``, ``b = s (mean - z)``
    per input channel, so ``W' = W a`` and ``bias' = bias + sum W b`` (exact wherever the
    convolution reads no zero padding).
    """
    w = weight.astype(np.float64)
    a = in_scale * np.asarray(std, np.float64)
    b = in_scale * (np.asarray(mean, np.float64) - in_zero)
    new_w = w * a[None, :, None, None]
    new_b = bias.astype(np.float64) + np.einsum("oihw,i->o", w, b)
    return new_w.astype(np.float32), new_b.astype(np.float32)


def torchvision_pairs(net) -> list[tuple[str, str, bool]]:
    """(conv key, BatchNorm key, followed by ReLU6) for every conv of ``net.features``, in order."""
    from torch import nn
    from torchvision.ops.misc import Conv2dNormActivation

    pairs: list[tuple[str, str, bool]] = []
    activated: set[str] = set()
    for name, mod in net.features.named_modules(prefix="features"):
        if isinstance(mod, Conv2dNormActivation):
            activated.add(f"{name}.0")
        if isinstance(mod, nn.Conv2d):
            pairs.append((name, "", name in activated))
        elif isinstance(mod, nn.BatchNorm2d):
            if not pairs or pairs[-1][1]:
                raise ValueError(f"{name}: a BatchNorm without its convolution")
            pairs[-1] = (pairs[-1][0], name, pairs[-1][2])
    return pairs


@dataclass
class Conversion:
    state: dict  # torch state dict (features.* [+ classifier.1.*]), fp32 tensors
    input_scale: float
    input_zero_point: int
    folded_input: bool
    layers: list[str]  # TFLite weight tensor names in mapping order


def convert(data: bytes, fold_input: bool = True, classifier: bool = False) -> Conversion:
    """TFLite MobileNetV2 1.0 bytes -> torchvision ``mobilenet_v2()`` state dict (fp32)."""
    import torch
    import torchvision

    graph = read_tflite(data)
    convs = [op for op in graph.ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    if not convs:
        raise ValueError("no convolution in the TFLite graph")
    head, body = convs[-1], convs[:-1]
    net = torchvision.models.mobilenet_v2(weights=None)
    pairs = torchvision_pairs(net)
    if len(body) != len(pairs):
        raise ValueError(f"TFLite graph has {len(body)} feature convolutions, torchvision "
                         f"mobilenet_v2 {len(pairs)}: not a MobileNetV2 1.0")
    adds = sum(op.kind == "ADD" for op in graph.ops)
    residuals = sum(getattr(m, "use_res_connect", False) for m in net.features)
    if adds != residuals:
        raise ValueError(f"TFLite graph has {adds} ADDs, mobilenet_v2 {residuals} residuals")
    modules = dict(net.named_modules())
    state = {k: v.clone() for k, v in net.state_dict().items()}
    layers = []
    for i, (op, (conv_key, bn_key, relu6)) in enumerate(zip(body, pairs, strict=True)):
        conv = modules[conv_key]
        w_t, b_t = op.inputs[1], op.inputs[2]
        w = dequantize(w_t)
        depthwise = op.kind == "DEPTHWISE_CONV_2D"
        w = depthwise_weight_to_torch(w) if depthwise else conv_weight_to_torch(w)
        where = f"layer {i} ({w_t.name.split(';')[0]} -> {conv_key})"
        if tuple(w.shape) != tuple(conv.weight.shape) or depthwise != (conv.groups > 1):
            raise ValueError(f"{where}: TFLite {op.kind} {w.shape} vs torch {tuple(conv.weight.shape)} "
                             f"groups={conv.groups}")
        o = op.options
        dilation = (o["dilation_h_factor"], o["dilation_w_factor"])
        if (o["stride_h"], o["stride_w"]) != conv.stride or dilation != (1, 1):
            raise ValueError(f"{where}: stride {o['stride_h'], o['stride_w']} vs {conv.stride}")
        k = conv.kernel_size[0]
        if (k > 1 and PADDING[o["padding"]] != "SAME") or conv.padding != (k // 2,) * 2:
            raise ValueError(f"{where}: padding {PADDING[o['padding']]} vs torch {conv.padding}")
        act = ACTIVATIONS.get(o["fused_activation_function"], "?")
        if act != ("RELU6" if relu6 else "NONE"):
            raise ValueError(f"{where}: TFLite activation {act}, torch {'ReLU6' if relu6 else 'none'}")
        bias = dequantize(b_t) if b_t is not None else np.zeros(w.shape[0], np.float32)
        if i == 0:
            x = op.inputs[0]
            if x.scale.size != 1:
                raise ValueError(f"input tensor {x.name!r} carries no per-tensor quantisation, so "
                                 "the input scaling the weights expect is unknown (a float model?)")
            in_scale, in_zero = float(x.scale[0]), int(x.zero_point[0]) if x.zero_point.size else 0
            if fold_input:
                from edge_mtl.runtime.preprocess import MEAN, STD

                w, bias = fold_input_normalization(w, bias, in_scale, in_zero, MEAN, STD)
        state[f"{conv_key}.weight"] = torch.from_numpy(w.copy())
        n = w.shape[0]
        state[f"{bn_key}.weight"] = torch.ones(n)
        state[f"{bn_key}.bias"] = torch.from_numpy(bias.astype(np.float32).copy())
        state[f"{bn_key}.running_mean"] = torch.zeros(n)
        state[f"{bn_key}.running_var"] = torch.full((n,), 1.0 - BN_EPS)
        state[f"{bn_key}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
        layers.append(w_t.name.split(";")[0])
    hw = dequantize(head.inputs[1])
    hb = dequantize(head.inputs[2])
    hw = hw.reshape(hw.shape[0], -1)
    if hw.shape != (1001, 1280):
        raise ValueError(f"classifier {head.inputs[1].name!r} is {hw.shape}, expected (1001, 1280)")
    state["classifier.1.weight"] = torch.from_numpy(hw[1:].copy())  # row 0: 'background'
    state["classifier.1.bias"] = torch.from_numpy(hb[1:].copy())
    layers.append(head.inputs[1].name.split(";")[0])
    if not classifier:
        state = {k: v for k, v in state.items() if k.startswith("features.")}
    return Conversion(state, in_scale, in_zero, fold_input, layers)


def storage(state: dict, fp32: bool = False) -> dict:
    """The state dict as written: conv/linear weights fp16 (unless ``fp32``), BatchNorm fp32."""
    import torch

    out = {}
    for k, v in state.items():
        half = not fp32 and v.is_floating_point() and v.ndim >= 2  # conv / linear weights
        out[k] = v.to(torch.float16) if half else v.contiguous()
    return out


def save(state: dict, path: Path) -> None:
    """``torch.save`` into memory, then one atomic write: the bytes depend on the weights only
    (not on the file's name), so a re-conversion reproduces the shipped file byte for byte."""
    import io

    import torch

    from edge_mtl.files import write_atomic

    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(path, buf.getvalue())


# ------------------------------------------------------------------ BatchNorm statistics

def bn_images(n: int, size: tuple[int, int] = BN_SIZE, seed0: int = BN_SEED0) -> np.ndarray:
    """``n`` frames of the synthetic world (seeds ``seed0``, ``seed0 + 1``, ...) pre-processed as
    the project does (letterbox to ``size``, ImageNet mean/std): float32 [n, 3, H, W]."""
    from edge_mtl.data.world import render_random
    from edge_mtl.runtime.preprocess import preprocess

    return np.stack([preprocess(render_random(seed0 + i).sample.image, size) for i in range(n)])


def to_raw_input(x: np.ndarray, scale: float, zero_point: float) -> np.ndarray:
    """ImageNet-normalised RGB [N, 3, H, W] -> the TFLite input scaling ``(u - zero_point) * scale``."""
    from edge_mtl.runtime.preprocess import MEAN, STD

    u = x * STD[None, :, None, None] + MEAN[None, :, None, None]
    return ((u - zero_point) * scale).astype(np.float32)


def _features_net(state: dict, tf_padding: bool):
    """torchvision ``mobilenet_v2()`` holding ``state`` (``features.*`` [+ classifier]), in eval mode."""
    import torch
    import torchvision

    from edge_mtl.model.backbone import tf_same_padding

    net = torchvision.models.mobilenet_v2(weights=None)
    floats = {k: v.float() if v.is_floating_point() else v for k, v in state.items()
              if isinstance(v, torch.Tensor)}
    missing = net.load_state_dict(floats, strict=False).missing_keys
    if any(k.startswith("features.") for k in missing):
        raise ValueError(f"state misses {missing[:3]}")
    if tf_padding:
        tf_same_padding(net.features)
    return net.eval()


def bn_statistics(state: dict, images: np.ndarray, tf_padding: bool = True, batch: int = 4
                  ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Per BatchNorm of ``features``: the (mean, biased variance) per channel of its input over
    ``images`` [N, 3, H, W], in one eval-mode pass (BN statistics do not change the eval-mode
    function, so one pass sees every layer's input as the network computes it), and the network's
    final feature map of the first ``batch`` images (for the check in ``main``)."""
    import torch
    from torch import nn

    net = _features_net(state, tf_padding)
    sums: dict[str, list] = {}

    def collect(name):
        def hook(_module, args):
            x = args[0].detach().double()
            acc = sums.setdefault(name, [0.0, 0.0, 0])
            acc[0] = acc[0] + x.sum((0, 2, 3))
            acc[1] = acc[1] + (x * x).sum((0, 2, 3))
            acc[2] += x.numel() // x.shape[1]
        return hook

    handles = [m.register_forward_pre_hook(collect(name))
               for name, m in net.features.named_modules(prefix="features") if isinstance(m, nn.BatchNorm2d)]
    first = None
    try:
        with torch.no_grad():
            for i in range(0, len(images), batch):
                out = net.features(torch.from_numpy(np.ascontiguousarray(images[i:i + batch])))
                first = out.numpy() if first is None else first
    finally:
        for h in handles:
            h.remove()
    stats = {}
    for name, (s1, s2, n) in sums.items():
        mean = s1 / n
        stats[name] = (mean.numpy(), (s2 / n - mean * mean).clamp_min(0).numpy())
    return stats, first


def with_bn_statistics(state: dict, stats: dict[str, tuple[np.ndarray, np.ndarray]],
                       eps: float = BN_EPS) -> dict:
    """``state`` with each identity + bias BatchNorm re-expressed around its input statistics
    (mean m, variance v): running_mean m, running_var v, weight sqrt(v + eps), bias m + b. The
    eval-mode function is unchanged (``(x - m) / sqrt(v + eps) * sqrt(v + eps) + m + b = x + b``);
    in train mode, a batch whose statistics are close to (m, v) is normalised close to that too."""
    import torch

    out = dict(state)
    for key, (m, v) in stats.items():
        w, rm, rv = (state[f"{key}.{k}"].double() for k in ("weight", "running_mean", "running_var"))
        identity = bool(torch.all(w == 1) and torch.all(rm == 0)) and torch.allclose(rv, 1 - eps + 0 * rv)
        if not identity:
            raise ValueError(f"{key}: not an identity + bias BatchNorm (statistics already set?)")
        m64, v64 = torch.from_numpy(m).double(), torch.from_numpy(v).double()
        out[f"{key}.running_mean"] = m64.float()
        out[f"{key}.running_var"] = v64.float()
        out[f"{key}.weight"] = torch.sqrt(v64 + eps).float()
        out[f"{key}.bias"] = (state[f"{key}.bias"].double() + m64).float()
    return out


def folded_eval(state: dict, eps: float = BN_EPS) -> dict[str, tuple]:
    """conv key -> (weight, bias) of each conv + BatchNorm as one eval-mode affine map, in float64:
    what the network computes in eval mode, whatever statistics its BatchNorms hold."""
    import torch
    import torchvision

    out = {}
    for conv_key, bn_key, _ in torchvision_pairs(torchvision.models.mobilenet_v2(weights=None)):
        w, b, rm, rv = (state[f"{bn_key}.{k}"].double()
                        for k in ("weight", "bias", "running_mean", "running_var"))
        a = w / torch.sqrt(rv + eps)
        out[conv_key] = (state[f"{conv_key}.weight"].double() * a.view(-1, 1, 1, 1), b - rm * a)
    return out


# ------------------------------------------------------------------ verification (optional)

def _interpreter(path: str):
    for mod in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite"):
        try:
            module = __import__(mod, fromlist=["Interpreter"])
        except ImportError:
            continue
        return module.Interpreter(model_path=path, experimental_preserve_all_tensors=True)
    raise SystemExit("--verify needs a TFLite interpreter: pip install ai-edge-litert "
                     "(or tflite-runtime); it is not a project dependency")


def _square_crops(bgr: np.ndarray, crops: int, size: int = 224) -> list[np.ndarray]:
    """``crops`` square crops spread along the long side (1: the centre one), each resized to ``size``."""
    import cv2

    h, w = bgr.shape[:2]
    s = min(h, w)
    long = max(h, w)
    starts = [(long - s) // 2] if crops == 1 else np.linspace(0, long - s, crops).round().astype(int)
    out = []
    for a in starts:
        sq = bgr[:, a:a + s] if w >= h else bgr[a:a + s]
        out.append(cv2.resize(sq[:s, :s], (size, size), interpolation=cv2.INTER_AREA))
    return out


def verification_images(paths: list[str], synthetic: int, crops: int, video_frames: int
                        ) -> list[tuple[str, np.ndarray]]:
    """(label, BGR uint8 224x224) from image files, folders, videos and the synthetic world."""
    import cv2

    from edge_mtl.imageio import read_image

    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else [p]
    out = []
    for f in files:
        suffix = f.suffix.lower()
        if suffix in (".jpg", ".jpeg", ".png"):
            frames = [(f.name, read_image(f))]
        elif suffix in (".mp4", ".avi", ".mkv"):
            cap = cv2.VideoCapture(str(f))
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            frames = []
            for j in np.linspace(0, n - 1, video_frames).round().astype(int):
                cap.set(cv2.CAP_PROP_POS_FRAMES, int(j))
                ok, frame = cap.read()
                if ok:
                    frames.append((f"{f.name}#{j}", frame))
            cap.release()
        else:
            continue
        for name, frame in frames:
            out += [(f"{name}[{c}]", img) for c, img in enumerate(_square_crops(frame, crops))]
    if synthetic:
        from edge_mtl.data.world import render_random

        for seed in range(synthetic):
            image = render_random(seed).sample.image  # BGR 1280x720
            out += [(f"synth{seed}[{c}]", img) for c, img in enumerate(_square_crops(image, crops))]
    return out


def _agreement(ref: np.ndarray, got: np.ndarray) -> dict:
    top1 = float(np.mean(ref.argmax(1) == got.argmax(1)))
    r5, g5 = np.argsort(-ref, 1)[:, :5], np.argsort(-got, 1)[:, :5]
    top5 = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(r5, g5, strict=True)]))
    ref1_in_got5 = float(np.mean([a[0] in b for a, b in zip(r5, g5, strict=True)]))
    corr = [float(np.corrcoef(a, b)[0, 1]) for a, b in zip(ref, got, strict=True)]
    return {"top1_agree": top1, "top5_overlap": top5, "ref_top1_in_top5": ref1_in_got5,
            "corr_mean": float(np.mean(corr)), "corr_min": float(np.min(corr)),
            "max_abs_diff": float(np.abs(ref - got).max()), "ref_logit_std": float(ref.std())}


def _correlation(a: np.ndarray, b: np.ndarray) -> dict:
    """Per-sample Pearson correlation of two batches (each sample flattened): mean and min."""
    c = [float(np.corrcoef(x.ravel(), y.ravel())[0, 1]) for x, y in zip(a, b, strict=True)]
    return {"corr_mean": float(np.mean(c)), "corr_min": float(np.min(c))}


def verify(tflite_path: str, images: list[tuple[str, np.ndarray]], shipped: dict, fp32: bool = False,
           labels: list[str] | None = None, bn_check: int = 8) -> dict:
    """The converted torch models against the TFLite interpreter on ``images`` (BGR uint8
    224x224): the conversion itself (identity BN, raw and folded input, both paddings) with weights
    rounded as stored (fp16 unless ``fp32``), and ``shipped`` (the state as written, BatchNorm
    statistics included) with its classifier added. Then train-mode against eval-mode BatchNorm,
    identity BN against ``shipped``, on ``images`` as one batch and on ``bn_check`` synthetic
    frames at 384x640 that the statistics were not estimated on (one batch)."""
    import torch

    from edge_mtl.runtime.preprocess import normalize

    interp = _interpreter(tflite_path)
    interp.allocate_tensors()
    data = Path(tflite_path).read_bytes()
    graph = read_tflite(data)
    conversion_raw, conversion = (convert(data, fold_input=f, classifier=True) for f in (False, True))
    for c in (conversion_raw, conversion):
        c.state = {k: v.float() if v.is_floating_point() else v for k, v in storage(c.state, fp32).items()}
    meta = shipped.get(META_KEY, {})
    folded_shipped = meta.get("input") != "raw"
    base = conversion if folded_shipped else conversion_raw
    shipped_full = dict(base.state) | {k: v.float() if v.is_floating_point() else v
                                       for k, v in shipped.items() if k.startswith("features.")}
    softmax = next(op for op in graph.ops if op.kind == "SOFTMAX")
    logit_t = softmax.inputs[0]
    inp = interp.get_input_details()[0]
    ref = []
    for _, bgr in images:
        interp.set_tensor(inp["index"], bgr[None, :, :, ::-1].copy())  # RGB uint8 NHWC
        interp.invoke()
        q = interp.get_tensor(logit_t.index).reshape(-1).astype(np.float64)
        ref.append(((q - logit_t.zero_point[0]) * logit_t.scale[0])[1:])  # drop 'background'
    ref = np.stack(ref).astype(np.float32)

    def run(state: dict, same: bool, x: torch.Tensor, train: bool = False, features: bool = False):
        net = _features_net(state, same)  # a new net each time: train mode moves running stats
        net.train(train)
        with torch.no_grad():
            return (net.features(x) if features else net(x)).numpy()

    u = np.stack([bgr[:, :, ::-1] for _, bgr in images]).astype(np.float32)  # RGB
    x_raw = torch.from_numpy((u - conversion_raw.input_zero_point) * conversion_raw.input_scale
                             ).permute(0, 3, 1, 2).contiguous()
    x_proj = torch.from_numpy(np.stack([normalize(bgr) for _, bgr in images]))
    x_ship = x_proj if folded_shipped else x_raw
    raw_same = run(conversion_raw.state, True, x_raw)
    raw_sym = run(conversion_raw.state, False, x_raw)
    folded_sym = run(conversion.state, False, x_proj)
    folded_same = run(conversion.state, True, x_proj)
    ship_same = run(shipped_full, True, x_ship)
    ship_sym = run(shipped_full, False, x_ship)
    # The input fold: first conv + BN of folded (ImageNet input) vs raw, TF padding (bottom/right).
    first = []
    for state, x in ((conversion_raw.state, x_raw), (conversion.state, x_proj)):
        net = _features_net(state, True)
        with torch.no_grad():
            first.append(net.features[0][1](net.features[0][0](x)))
    d = (first[0] - first[1]).abs()
    interior = d[:, :, :-1, :-1].max().item()
    border = max(d[:, :, -1:].max().item(), d[:, :, :, -1:].max().item())
    pad = "TF 'SAME' padding"
    report = {
        "images": len(images),
        f"tflite vs torch ({pad}, raw input, identity BN)": _agreement(ref, raw_same),
        "tflite vs torch (torchvision padding, raw input, identity BN)": _agreement(ref, raw_sym),
        "tflite vs torch (torchvision padding, folded ImageNet input, identity BN)":
            _agreement(ref, folded_sym),
        f"tflite vs torch ({pad}, folded ImageNet input, identity BN)": _agreement(ref, folded_same),
        f"tflite vs shipped ({pad}: model.tf_padding true)": _agreement(ref, ship_same),
        "tflite vs shipped (torchvision padding: model.tf_padding false)": _agreement(ref, ship_sym),
        f"torch raw vs folded ({pad})": _agreement(raw_same, folded_same),
        "shipped vs identity BN, eval mode: max |logit diff|": float(np.abs(
            ship_same - (folded_same if folded_shipped else raw_same)).max()),
        f"fold: first conv |diff| interior / border ({pad})": (interior, border),
    }
    synth = np.array([name.startswith("synth") for name, _ in images])
    if 0 < synth.sum() < len(images):  # the synthetic crops move with the renderer, the files do not
        for group, idx in (("image/video files", ~synth), ("synthetic", synth)):
            for label, got in (("TF 'SAME' padding", ship_same), ("torchvision padding", ship_sym)):
                report[f"tflite vs shipped ({label}), the {idx.sum()} {group} crops"] = _agreement(
                    ref[idx], got[idx])
    ident = conversion.state if folded_shipped else conversion_raw.state
    for label, state in (("identity BN", ident), ("shipped BN statistics", shipped_full)):
        report[f"train vs eval BN, {label}, the {len(images)} crops as one batch (logits)"] = _agreement(
            run(state, True, x_ship), run(state, True, x_ship, train=True))
    if bn_check:
        frames = bn_images(bn_check, seed0=BN_SEED0 + 10_000)
        if not folded_shipped:
            frames = to_raw_input(frames, conversion_raw.input_scale, conversion_raw.input_zero_point)
        x = torch.from_numpy(frames)
        for label, state in (("identity BN", ident), ("shipped BN statistics", shipped_full)):
            key = f"train vs eval BN, {label}, {bn_check} held-out synthetic 384x640 frames as one batch"
            report[key + " (logits)"] = _correlation(run(state, True, x), run(state, True, x, train=True))
            report[key + " (stride-32 features)"] = _correlation(
                run(state, True, x, features=True), run(state, True, x, train=True, features=True))
    if labels:
        report["top1"] = [(name, labels[int(r.argmax()) + 1], labels[int(f.argmax()) + 1])
                          for (name, _), r, f in zip(images, ref, ship_same, strict=True)]
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tflite", help="mobilenet_v2_1.0_224_quant.tflite (read in place)")
    p.add_argument("--out", required=True, help="state dict to write (.pt)")
    p.add_argument("--no-fold-input", action="store_true",
                   help="keep the TFLite input scaling ((u - 128) / 128); default: fold ImageNet mean/std in")
    p.add_argument("--classifier", action="store_true", help="also write classifier.1.* (1000 classes)")
    p.add_argument("--fp32", action="store_true", help="store conv weights in fp32 (default fp16)")
    p.add_argument("--bn-images", type=int, default=32, metavar="N",
                   help="estimate BatchNorm statistics on N synthetic frames at 384x640 with TF padding "
                        f"(seeds {BN_SEED0}, {BN_SEED0 + 1}, ...; default 32); 0: identity + bias BatchNorm")
    p.add_argument("--verify", nargs="*", metavar="PATH", default=None,
                   help="images / folders / videos to compare against a TFLite interpreter on")
    p.add_argument("--synthetic", type=int, default=0, help="also verify on N rendered synthetic frames")
    p.add_argument("--crops", type=int, default=1, help="square crops per verification frame (1 = centre)")
    p.add_argument("--video-frames", type=int, default=4, help="frames sampled per verification video")
    p.add_argument("--bn-check", type=int, default=8, metavar="N",
                   help="--verify: train- vs eval-mode BatchNorm on N held-out synthetic frames (one batch)")
    args = p.parse_args(argv)
    if args.bn_images < 0:
        p.error("--bn-images must be >= 0")
    data = Path(args.tflite).read_bytes()
    conv = convert(data, fold_input=not args.no_fold_input, classifier=args.classifier)
    state = storage(conv.state, args.fp32)
    bn_note = "identity + bias BatchNorm (eval mode only)"
    if args.bn_images:
        import torch

        images = bn_images(args.bn_images)
        if not conv.folded_input:
            images = to_raw_input(images, conv.input_scale, conv.input_zero_point)
        stats, before = bn_statistics(state, images, tf_padding=True)
        state = with_bn_statistics(state, stats)
        # Eval mode computes the same function as before (up to float32 rounding).
        with torch.no_grad():
            after = _features_net(state, True).features(torch.from_numpy(images[:len(before)])).numpy()
        diff = float(np.abs(after - before).max())
        bn_note = (f"BatchNorm statistics of {args.bn_images} synthetic frames (seeds {BN_SEED0}.."
                   f"{BN_SEED0 + args.bn_images - 1}, {BN_SIZE[0]}x{BN_SIZE[1]}, TF padding); eval-mode "
                   f"features max |diff| {diff:.2g} (of max {np.abs(before).max():.3g})")
    meta = {"source": Path(args.tflite).name, "tf_padding": True,
            "input": "raw" if args.no_fold_input else "imagenet",
            "input_scaling": f"(u - {conv.input_zero_point}) * {conv.input_scale!r}",
            "bn_images": args.bn_images, "bn_seed0": BN_SEED0 if args.bn_images else -1,
            "bn_size": list(BN_SIZE) if args.bn_images else []}
    save(state | {META_KEY: meta}, Path(args.out))
    n = sum(v.numel() for k, v in state.items() if v.is_floating_point() and "running" not in k)
    print(f"{args.out}: {len(state)} tensors, {n / 1e6:.2f} M parameters, "
          f"{Path(args.out).stat().st_size / 1e6:.1f} MB; TFLite input scaling (u - {conv.input_zero_point})"
          f" * {conv.input_scale:g} {'folded into ImageNet mean/std' if conv.folded_input else 'kept'}; "
          f"{bn_note}; expects model.tf_padding: true")
    if args.verify is not None:
        import json

        labels_path = Path(args.tflite).with_name("imagenet_labels.txt")
        labels = labels_path.read_text().splitlines() if labels_path.is_file() else None
        images = verification_images(args.verify, args.synthetic, args.crops, args.video_frames)
        if not images:
            raise SystemExit("--verify found no images")
        shipped = dict(state) | {META_KEY: meta}
        print(json.dumps(verify(args.tflite, images, shipped, args.fp32, labels, args.bn_check), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Pre-processing in the graph (``edge-mtl export --uint8-input``): the exported network reads the
fitted BGR uint8 frame ``[B, H, W, 3]`` as OpenCV gives it and does the rest itself, so the CPU
only resizes (`edge_mtl.runtime.preprocess`, input format ``uint8``).

The graph starts ``Cast`` (uint8 -> float: TensorRT reads a uint8 input only straight into a Cast,
NVIDIA/TensorRT#3985) -> ``Transpose`` (NHWC -> NCHW) -> a fixed 1x1 ``Conv`` that swaps BGR to
RGB and applies ``(v - mean) / std``, then the network as exported with a float input. INT8
keeps that convolution in float (`preprocess_nodes`): its input spans 0..255, and an int8 scale
over that range would lose every other grey level before the network sees the frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from edge_mtl.runtime.preprocess import MEAN, STD

PREPROCESS_OPS = ("Cast", "Transpose", "Conv")  # the graph's first nodes, in order


def normalize_weights() -> tuple[np.ndarray, np.ndarray]:
    """The 1x1 convolution's weight [3, 3, 1, 1] and bias [3]: output channel c (R, G, B) is
    input channel 2 - c (B, G, R) times 1 / STD[c], plus -MEAN[c] / STD[c]."""
    weight = np.zeros((3, 3, 1, 1), np.float32)
    for c in range(3):
        weight[c, 2 - c] = 1.0 / STD[c]
    return weight, (-MEAN / STD).astype(np.float32)


@contextmanager
def uint8_input(model: Any) -> Iterator[Any]:
    """``model`` reading uint8 NHWC BGR frames while the block runs (a forward pre-hook, so the
    network's own node names do not change), then as before."""
    import torch
    import torch.nn.functional as F

    weight, bias = (torch.from_numpy(a) for a in normalize_weights())

    def hook(module: Any, args: tuple) -> tuple:
        image, *rest = args
        x = image.to(torch.float32).permute(0, 3, 1, 2)  # the Cast first, as TensorRT needs
        return (F.conv2d(x, weight, bias), *rest)

    handle = model.register_forward_pre_hook(hook)
    try:
        yield model
    finally:
        handle.remove()


def preprocess_nodes(graph: Any) -> list[str]:
    """The names of the in-graph pre-processing nodes (`PREPROCESS_OPS`, following the input);
    empty for a graph with a float input."""
    import onnx

    if not graph.input or graph.input[0].type.tensor_type.elem_type != onnx.TensorProto.UINT8:
        return []
    names, tensor = [], graph.input[0].name
    for op in PREPROCESS_OPS:
        node = next((n for n in graph.node if tensor in n.input), None)
        if node is None or node.op_type != op:
            found = "nothing" if node is None else f"a {node.op_type}"
            raise ValueError(f"a uint8-input graph must start {' -> '.join(PREPROCESS_OPS)}; after "
                             f"{tensor!r} comes {found}")
        names.append(node.name)
        tensor = node.output[0]
    return names

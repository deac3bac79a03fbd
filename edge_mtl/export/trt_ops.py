"""ONNX operators TensorRT's ONNX parser (and DLA) accept, per lint target. Pure data.

Taken on 2026-11-25 from stored copies of the published sources named in ``SOURCES``:

* ``tensorrt-8.5`` (JetPack 5): onnx-tensorrt ``docs/operators.md``, the revision headed
  "TensorRT 8.5 supports operators up to Opset 17" (commit 6d0ab7be32), ops marked ``Y``.
* ``tensorrt-10`` (JetPack 6 releases that ship a TensorRT 10.x): a floor valid for every 10.x. No
  10.3 table was readable, so this is the 10.15 table (``main``, "opset 9 to opset 24") minus the ops
  ``docs/Changelog.md`` says arrived after 10.0 (DeformConv 10.1; Blackman/Hamming/HannWindow 10.4;
  STFT 10.5; Attention 10.14; RotaryEmbedding, RMSNormalization, TensorScatter 10.15), with the opset
  range of the 10.0 revision ("opset 9 to opset 20").
* ``dla`` (Orin DLA, JetPack 5): NVIDIA/Deep-Learning-Accelerator-SW ``operators/README.md`` ("Orin DLA
  support through TensorRT" = Native), ops Native in both its TensorRT 8.5 and 8.6 revisions, plus the ops it
  says are "inferred at build time". Cos (Native in 8.5, RFE in 8.6) and Split (Native from 8.6 only) are
  left out. Layer limits in ``RESTRICTIONS["dla"]`` come from TensorRT's "DLA Supported Layers and
  Restrictions" page ("latest" edition; the 8.5/8.6 edition could not be read) and the notes there.

DLA limits for every layer (current guide): static shapes only, build and runtime dims equal, batch
<= 4096, non-batch dims <= 8192, FP16/INT8 only.

Only the default ONNX domain ("" / "ai.onnx"). ``RESTRICTIONS[t]`` may also hold a note for an op that is
*not* in ``SUPPORTED_OPS[t]``: that note says why it is missing there.
"""

from __future__ import annotations

TARGETS = ("tensorrt-8.5", "tensorrt-10", "dla")

# (min, max) ONNX opset of the default domain. The 8.5 table states no lower bound, hence 1.
OPSET_RANGE: dict[str, tuple[int, int]] = {
    "tensorrt-8.5": (1, 17),
    "tensorrt-10": (9, 20),
    "dla": (1, 17),  # parsed by TensorRT 8.5 on JetPack 5
}

SUPPORTED_OPS: dict[str, frozenset[str]] = {
    "tensorrt-8.5": frozenset(
        {
            "Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh",
            "AveragePool", "BatchNormalization", "Cast", "Ceil", "Celu", "Clip", "Concat", "Constant",
            "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum", "DepthToSpace",
            "DequantizeLinear", "Div", "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand",
            "EyeLike", "Flatten", "Floor", "GRU", "Gather", "GatherElements", "GatherND", "Gemm",
            "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "Greater", "GreaterOrEqual", "GridSample",
            "HardSigmoid", "HardSwish", "Identity", "If", "ImageScaler", "InstanceNormalization", "IsNaN",
            "LRN", "LSTM", "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "Loop",
            "LpNormalization", "LpPool", "MatMul", "Max", "MaxPool", "Mean", "MeanVarianceNormalization",
            "Min", "Mod", "Mul", "Neg", "NonMaxSuppression", "NonZero", "Not", "OneHot", "Or", "PRelu",
            "Pad", "ParametricSoftplus", "Pow", "QuantizeLinear", "RNN", "RandomNormal", "RandomNormalLike",
            "RandomUniform", "RandomUniformLike", "Range", "Reciprocal", "ReduceL1", "ReduceL2",
            "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd",
            "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Resize", "ReverseSequence", "RoiAlign",
            "Round", "ScaledTanh", "Scan", "Scatter", "ScatterElements", "ScatterND", "Selu", "Shape",
            "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Size", "Slice", "Softmax", "Softplus", "Softsign",
            "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tan", "Tanh", "ThresholdedRelu",
            "Tile", "TopK", "Transpose", "Trilu", "Unsqueeze", "Upsample", "Where", "Xor",
        }
    ),
    "tensorrt-10": frozenset(
        {
            "Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh",
            "AveragePool", "BatchNormalization", "Cast", "CastLike", "Ceil", "Celu", "Clip", "Concat",
            "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum", "DepthToSpace",
            "DequantizeLinear", "Div", "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand",
            "EyeLike", "Flatten", "Floor", "GRU", "Gather", "GatherElements", "GatherND", "Gelu", "Gemm",
            "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "Greater", "GreaterOrEqual", "GridSample",
            "GroupNormalization", "HardSigmoid", "HardSwish", "Hardmax", "Identity", "If", "ImageScaler",
            "InstanceNormalization", "IsInf", "IsNaN", "LRN", "LSTM", "LayerNormalization", "LeakyRelu",
            "Less", "LessOrEqual", "Log", "LogSoftmax", "Loop", "LpNormalization", "LpPool", "MatMul",
            "Max", "MaxPool", "Mean", "MeanVarianceNormalization", "Min", "Mish", "Mod", "Mul", "Neg",
            "NonMaxSuppression", "NonZero", "Not", "OneHot", "Or", "PRelu", "Pad", "ParametricSoftplus",
            "Pow", "QuantizeLinear", "RNN", "RandomNormal", "RandomNormalLike", "RandomUniform",
            "RandomUniformLike", "Range", "Reciprocal", "ReduceL1", "ReduceL2", "ReduceLogSum",
            "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum",
            "ReduceSumSquare", "Relu", "Reshape", "Resize", "ReverseSequence", "RoiAlign", "Round",
            "ScaledTanh", "Scan", "Scatter", "ScatterElements", "ScatterND", "Selu", "Shape", "Shrink",
            "Sigmoid", "Sign", "Sin", "Sinh", "Size", "Slice", "Softmax", "Softplus", "Softsign",
            "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tan", "Tanh", "ThresholdedRelu",
            "Tile", "TopK", "Transpose", "Trilu", "Unsqueeze", "Upsample", "Where", "Xor",
        }
    ),
    "dla": frozenset(
        {
            "Abs", "Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant",
            "ConstantOfShape", "Conv", "ConvTranspose", "Equal", "Gemm", "LRN", "LeakyRelu", "MatMul",
            "Max", "MaxPool", "Mul", "PRelu", "Relu", "Reshape", "Resize", "Shape", "Sigmoid", "Slice",
            "Softmax", "Sub", "Sum", "Tanh", "Transpose", "Upsample",
        }
    ),
}

_RESIZE_MODES = (
    "mode nearest|linear; coordinate_transformation_mode half_pixel|pytorch_half_pixel|"
    "tf_half_pixel_for_nn|asymmetric|align_corners; nearest_mode floor|ceil|round_prefer_floor|"
    "round_prefer_ceil"
)
_DLA_ACTIVATION = "DLA Activation layer: 2D only (ReLU, Sigmoid, TanH, Clipped ReLU, Leaky ReLU)"
_DLA_ELEMENTWISE = "DLA ElementWise layer: 2D only"
_DLA_BUILD_TIME = "not a DLA layer: must fold to a build-time constant (static shapes)"
_DLA_NOT_VIA_TRT = "NOT on DLA through TensorRT 8.5/8.6 (RFE; DLA SW 3.14 has it natively) -> GPU fallback"

RESTRICTIONS: dict[str, dict[str, str]] = {
    "tensorrt-8.5": {
        "AveragePool": "2D or 3D pooling only",
        "ConstantOfShape": "table lists FP32 only (INT64 is cast down to INT32, clamped)",
        "DequantizeLinear": "INT8 input only; `x_zero_point` must be 0",
        "MaxPool": "2D or 3D pooling only; `Indices` output unsupported",
        "QuantizeLinear": "FP32/FP16 input; `y_zero_point` must be 0",
        "Resize": _RESIZE_MODES,
        "Slice": "`axes` must be an initializer",
        "Squeeze": "`axes` must be an initializer",
        "Unsqueeze": "`axes` must be a constant tensor",
    },
    "tensorrt-10": {
        "AveragePool": "2D or 3D pooling only; `dilations` empty or all ones",
        "DequantizeLinear": "`x_zero_point` must be 0",
        "Dropout": "`is_training` must be an initializer evaluating to False",
        "MaxPool": "2D or 3D pooling only; `Indices` output unsupported; `dilations` empty or all ones",
        "QuantizeLinear": "`y_zero_point` must be 0",
        "Resize": _RESIZE_MODES + "; aspect ratio policy stretch only; no antialiasing",
        "Squeeze": "`axes` must be resolvable to a constant",
        "Unsqueeze": "`axes` must be resolvable to a constant",
    },
    "dla": {
        "Add": _DLA_ELEMENTWISE + " (or Scale layer with a constant operand)",
        "BatchNormalization": "maps to the DLA Scale layer",
        "Clip": _DLA_ACTIVATION + "; Clip is the Clipped ReLU",
        "Concat": "channel axis only; >= 2 inputs; same spatial dims",
        "Constant": "constant-folded into the DLA op that consumes it",
        "ConstantOfShape": _DLA_BUILD_TIME,
        "Conv": "2D only; kernel [1, 32]; stride [1, 8]; channels [1, 8192]",
        "ConvTranspose": "2D only; no grouped or dilated deconvolution; padding must be 0",
        "Equal": "INT8 only; output must be cast to FP16/INT8 immediately",
        "Gemm": "second input must be a constant; Conv/FC limits apply",
        "LeakyRelu": _DLA_ACTIVATION,
        "MatMul": "second input must be a constant; Conv/FC limits apply",
        "Max": _DLA_ELEMENTWISE,
        "Mul": _DLA_ELEMENTWISE + " (or Scale layer with a constant operand)",
        "PRelu": "slope must be a build-time constant",
        "Relu": _DLA_ACTIVATION,
        "Resize": (
            "nearest: N,C scales 1 and integer H,W scales in [1, 32] (TRT 8.2 guide); "
            "linear: half_pixel only (TRT builder message)"
        ),
        "Shape": _DLA_BUILD_TIME,
        "Sigmoid": _DLA_ACTIVATION,
        "Sub": _DLA_ELEMENTWISE,
        "Sum": _DLA_ELEMENTWISE,
        "Tanh": _DLA_ACTIVATION,
        # Not in SUPPORTED_OPS["dla"]:
        "DequantizeLinear": "no DLA op: fold Q/DQ into INT8 scales (implicit quantization)",
        "Div": "NOT on DLA through TensorRT 8.5/8.6 (the 10.x guide lists Div under ElementWise)",
        "Exp": _DLA_NOT_VIA_TRT,
        "Gather": "NOT native on DLA; NVIDIA only gives an op reconstruction recipe",
        "GlobalAveragePool": _DLA_NOT_VIA_TRT,
        "HardSigmoid": _DLA_NOT_VIA_TRT,
        "HardSwish": _DLA_NOT_VIA_TRT,
        "Min": "NOT on DLA through TensorRT 8.5/8.6 (the 10.x guide lists Min under ElementWise)",
        "QuantizeLinear": "no DLA op: fold Q/DQ into INT8 scales (implicit quantization)",
        "ReduceMean": _DLA_NOT_VIA_TRT,
        "Softplus": _DLA_NOT_VIA_TRT,
        "Split": "Native on DLA only in the TensorRT 8.6 table (parser turns it into Slice)",
        "Unsqueeze": "NOT on DLA through TensorRT (RFE)",
    },
}

SOURCES: dict[str, str] = {
    "tensorrt-8.5": (
        "https://github.com/onnx/onnx-tensorrt/blob/release/8.5-GA/docs/operators.md "
        "(revision headed 'TensorRT 8.5', commit 6d0ab7be324d02c7feb3a306b6fdbeae84f71ddc)"
    ),
    "tensorrt-10": (
        "https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md "
        "(revision headed 'TensorRT 10.15'; no release/10.x revision found) minus additions after 10.0 per "
        "https://github.com/onnx/onnx-tensorrt/blob/main/docs/Changelog.md; opset range from the "
        "revision headed 'TensorRT 10.0' (commit not shown)"
    ),
    "dla": (
        "https://github.com/NVIDIA/Deep-Learning-Accelerator-SW/blob/main/operators/README.md "
        "(TRT 8.5 revision 07df2338fba5086679f730650b14575211a83445, TRT 8.6 revision "
        "372cea3d515c5c28a8a85d981e8c5517f6847bdd); "
        "https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/dla-layer-restrictions.html "
        "(summary table, first rows only); "
        "https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/operators/ParametricReLU.html; "
        "Resize: TRT 8.2.1 guide as quoted at "
        "https://forums.developer.nvidia.com/t/unable-to-run-resize-layer-on-dla-on-xavier/219158"
    ),
}

"""onnxruntime backend: CPU everywhere; the CUDA execution provider when installed.

The TensorRT execution provider is never chosen automatically: without configuration (engine
cache, precision, workspace) it silently builds an engine on every session start. Use the
``tensorrt`` backend (`edge-mtl build-engine`) for TensorRT, or pass ``providers=[...]``
explicitly.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from edge_mtl.compat import zip_strict
from edge_mtl.export.metadata import load_onnx, model_info, parse_metadata
from edge_mtl.files import sha256
from edge_mtl.runtime.backend import Backend
from edge_mtl.runtime.preprocess import MEAN, STD, input_dtype
from edge_mtl.types import OUTPUT_NAMES

# Providers that run on a GPU (``device`` reports "cuda" when the session's first is one of them).
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
# Those chosen automatically: CUDA only (TensorRT's provider: see the module docstring).
AUTO_GPU_PROVIDERS = ("CUDAExecutionProvider",)


def choose_providers(device: str, available: list[str]) -> list[str]:
    """``cpu`` -> CPU only; ``cuda`` -> the CUDA provider (error if absent);
    ``auto`` -> CUDA when present; CPU always last as the fallback. Never TensorRT's provider."""
    gpu = [p for p in AUTO_GPU_PROVIDERS if p in available]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" and not gpu:
        raise RuntimeError("onnxruntime backend: device 'cuda' asked for, but this onnxruntime has "
                           f"no CUDA execution provider (available: {available}); "
                           "install onnxruntime-gpu")
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"unknown device {device!r}; choose cpu, cuda or auto")
    return [*gpu, "CPUExecutionProvider"]


def onnx_precision(path: str | os.PathLike, session: Any = None) -> str:
    """``int8`` for a Q/DQ model, ``fp16`` for a half-precision graph, else ``fp32``.

    Read from the graph with the ``onnx`` package; a runtime-only install (no ``onnx``) asks
    onnxruntime instead (``session``, or a CPU session of ``path``): the ``edge_mtl.int8``
    metadata that `edge-mtl calibrate` writes, and the input's element type."""
    try:
        import onnx
    except ImportError:
        if session is None:
            session = cpu_session(path)
        if "edge_mtl.int8" in session.get_modelmeta().custom_metadata_map:
            return "int8"
        return "fp16" if session.get_inputs()[0].type == "tensor(float16)" else "fp32"
    model = load_onnx(path, load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    if "QuantizeLinear" in ops or "DequantizeLinear" in ops:
        return "int8"
    inputs = model.graph.input
    return "fp16" if inputs and inputs[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 else "fp32"


def cpu_session(path: str | os.PathLike) -> Any:
    """A plain onnxruntime CPU session of ``path`` (to read its metadata and signature)."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        raise ValueError(f"{path}: onnxruntime cannot load it ({type(e).__name__}: {e})") from None


def onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The model's ``metadata_props``, through ``onnx`` or, without it, onnxruntime."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        return dict(cpu_session(path).get_modelmeta().custom_metadata_map)
    return {p.key: p.value for p in load_onnx(path, load_external_data=False).metadata_props}


def session_options(threads: int | None = None, spin: bool = False) -> Any:
    """onnxruntime `SessionOptions`: all graph optimisations; ``threads`` intra-op threads
    (``None``: one per core); ``spin``: whether those threads busy-wait after each run.

    Spinning is off by default: a spinning pool keeps the cores busy after ``run`` returns, so
    the pre-processing, post-processing and drawing that follow (OpenCV, numpy) and any other
    process fight it for the CPU. Camera loop, 2 cores, 384x640 FP32 (`bench_loop`): on a quiet
    machine the two are even (spinning: infer ~2 ms faster, pre ~1.4 ms slower as OpenCV's
    resize loses the second core; 33-35 FPS either way); with other processes busy, spinning
    doubled the infer p50 (58 -> 108 ms, 75 -> 136 ms).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
    return opts


def _check_signature(session: Any, input_name: str, path: str) -> list:
    """The input's shape, once the graph is known to read ``input_name`` and write every output
    name (otherwise ``run`` would fail later, with onnxruntime's own error)."""
    inputs = [i.name for i in session.get_inputs()]
    missing = sorted(set(OUTPUT_NAMES) - {o.name for o in session.get_outputs()})
    if inputs != [input_name] or missing:
        raise ValueError(f"{path}: the graph reads {inputs} and lacks outputs {missing}; an edge_mtl "
                         f"model reads [{input_name!r}] and writes {list(OUTPUT_NAMES)}")
    return session.get_inputs()[0].shape


class OnnxRuntimeBackend(Backend):
    """Runs an exported (or INT8 Q/DQ) ONNX model through an onnxruntime session.

    ``threads`` / ``spin``: see `session_options` (no spinning by default).
    """

    name = "onnxruntime"

    def __init__(self, model: str | os.PathLike, device: str = "auto",
                 providers: list[str] | None = None, threads: int | None = None, spin: bool = False):
        import onnxruntime as ort

        path = str(model)
        self.threads, self.spin = threads, spin
        opts = session_options(threads, spin)
        chosen = providers or choose_providers(device, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(path, opts, providers=chosen)
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise ValueError(f"{path}: onnxruntime cannot load it ({type(e).__name__}: {e})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        meta = parse_metadata(props, path)
        if not (np.allclose(meta["mean"], MEAN, atol=1e-3) and np.allclose(meta["std"], STD, atol=1e-3)):
            raise ValueError(f"{path}: normalisation mean/std {meta['mean']}/{meta['std']} differ from "
                             "this version's pre-processing; re-export the model")
        self.info = model_info(props, path, sha256(path))
        self.input_name = meta["input_name"]
        shape = _check_signature(self.session, self.input_name, path)
        self.batch = shape[0] if isinstance(shape[0], int) else None
        self.providers = self.session.get_providers()
        self.device = "cuda" if self.providers[0] in GPU_PROVIDERS else "cpu"
        self.precision = onnx_precision(path, self.session)

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = images.astype(input_dtype(self.info.input_format), copy=False)
        outs = self.session.run(list(OUTPUT_NAMES), {self.input_name: x})
        return dict(zip_strict(OUTPUT_NAMES, outs))

    def runtime_info(self) -> dict[str, Any]:
        return {"providers": self.providers, "threads": self.threads, "spin": self.spin}

    def close(self) -> None:
        self.session = None

"""ONNX -> TensorRT engine, with the JSON sidecar that lets the runtime refuse stale engines.

Precision: ``fp16``; ``int8`` and ``best`` build an ONNX with Q/DQ nodes as explicit INT8 (the
scales are in the graph) and an FP32 ONNX as implicit INT8 through the entropy calibrator and its
cache (``calib``; the path DLA and older JetPacks need). Either way FP16 is enabled next to INT8
where the GPU has fast FP16, so the layers left in float run in half precision (as NVIDIA's
samples and ``trtexec --int8 --fp16`` do); ``best`` refuses a GPU without fast FP16, ``int8``
then builds INT8 + FP32.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from edge_mtl.export.check import QDQ_OPS
from edge_mtl.export.metadata import load_onnx, parse_metadata
from edge_mtl.files import sha256, write_atomic
from edge_mtl.quantize.calibset import CalibrationSet, load_calibration_set
from edge_mtl.trt.api import (
    Device,
    device_info,
    import_cudart,
    import_tensorrt,
    network_flags,
    require_version,
    shared_logger,
)
from edge_mtl.trt.calibrator import make_entropy_calibrator
from edge_mtl.trt.sidecar import PRECISIONS, make_sidecar, write_sidecar


def _read_onnx(path: Path) -> tuple[Any, dict[str, Any], bool]:
    """The graph (no external weights), its edge_mtl metadata and whether it holds Q/DQ nodes."""
    model = load_onnx(path, load_external_data=False)
    meta = parse_metadata({p.key: p.value for p in model.metadata_props}, str(path))
    return model, meta, any(n.op_type in QDQ_OPS for n in model.graph.node)


def _int8_mode(onnx_path: Path, precision: str, qdq: bool, calib: object) -> str | None:
    """``explicit`` / ``implicit`` / None, refusing combinations that cannot mean what they say."""
    if precision == "fp16":
        if qdq:
            raise ValueError(f"{onnx_path}: holds Q/DQ nodes (an INT8 model); build it with "
                             "precision int8 or best")
        if calib is not None:
            raise ValueError("a calibration set applies to INT8 builds only (precision int8 or best)")
        return None
    if qdq:
        if calib is not None:
            raise ValueError(f"{onnx_path}: holds Q/DQ nodes, so its INT8 scales are already in the graph; "
                             "drop the calibration set (it is for an FP32 ONNX)")
        return "explicit"
    if calib is None:
        raise ValueError(f"{onnx_path}: an FP32 model (no Q/DQ nodes), so INT8 needs calibration: pass a "
                         "calibration set (--calib), or quantize it first with `edge-mtl calibrate`")
    return "implicit"


def _flags(precision: str, int8: str | None, builder: Any, device: Device) -> list[str]:
    """Builder flag names for the precision, refused when the GPU lacks fast FP16/INT8."""
    gpu = f"{device.name} (compute capability {device.compute_capability})"
    if precision in ("fp16", "best") and not builder.platform_has_fast_fp16:
        raise RuntimeError(f"{gpu} has no fast FP16; an fp16/best engine would not be faster than FP32")
    if int8 is not None and not builder.platform_has_fast_int8:
        raise RuntimeError(f"{gpu} has no fast INT8; build with precision fp16")
    if int8 is None:
        return ["FP16"]
    return ["INT8", "FP16"] if builder.platform_has_fast_fp16 else ["INT8"]


def _parser_errors(parser: Any, model: Any, onnx_path: Path, version: str) -> str:
    nodes = model.graph.node
    lines = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        index = error.node()
        where = f"node {nodes[index].name!r} ({nodes[index].op_type})" if 0 <= index < len(nodes) else "graph"
        lines.append(f"  {where}: {error.desc()}")
    return f"{onnx_path}: TensorRT {version}'s ONNX parser rejects it:\n" + "\n".join(lines)


def _check_io(network: Any, onnx_path: Path, meta: dict[str, Any]) -> tuple[str, list[int], list[str]]:
    """The parsed network's input name and static shape, and its output names."""
    inp = network.get_input(0)
    shape = [int(d) for d in inp.shape]
    h, w = meta["input_size"]
    want = [3, h, w] if meta["input_format"] == "float" else [h, w, 3]
    if network.num_inputs != 1 or inp.name != meta["input_name"] or shape[1:] != want or min(shape) < 1:
        raise ValueError(f"{onnx_path}: expected one static input {meta['input_name']!r} "
                         f"[B, {', '.join(str(d) for d in want)}], TensorRT sees {network.num_inputs} "
                         f"input(s), {inp.name!r} {shape}")
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    missing = sorted(set(meta["output_names"]) - set(outputs))
    if missing:
        raise ValueError(f"{onnx_path}: outputs {missing} of its metadata are not network outputs {outputs}")
    return inp.name, shape, outputs


def _attach_timing_cache(config: Any, path: Path, logger: Any) -> None:
    """Start from the cache file when there is one, else from an empty cache.

    A corrupt cache, or one of another TensorRT version, fails in ``create_timing_cache`` (which
    logs an error and returns None, or raises); one of a GPU with other device properties makes
    ``set_timing_cache`` return False. Both are dropped with a warning naming the file.
    """
    cache = None
    if path.is_file():
        mark = logger.mark()
        try:
            cache = config.create_timing_cache(path.read_bytes())
            why = logger.errors_since(mark, last=1)
        except Exception as e:
            why = f"{type(e).__name__}: {e}"
        if cache is None:
            print(f"warning: timing cache {path} is corrupt or from another TensorRT version ({why}); "
                  "starting from an empty cache", file=sys.stderr)
    if cache is None:
        cache = config.create_timing_cache(b"")
    if not config.set_timing_cache(cache, False):
        print(f"warning: timing cache {path} was recorded on a GPU with other device properties; "
              "starting from an empty cache", file=sys.stderr)
        config.set_timing_cache(config.create_timing_cache(b""), False)


def _configure(trt: ModuleType, builder: Any, flags: list[str], workspace_mb: int, dla_core: int | None,
               timing_cache: Path | None, logger: Any) -> Any:
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
    for flag in flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if timing_cache is not None:
        _attach_timing_cache(config, timing_cache, logger)
    return config


def _calib_cache_path(out: Path, onnx_sha: str, calib_set: CalibrationSet, limit: int | None,
                      version: str) -> Path:
    """Next to the engine, named by a key of the ONNX, the images used and the TensorRT version,
    so a stale cache is never picked up."""
    key = "|".join([onnx_sha, *calib_set.hashes[:limit], version])
    return out.with_name(f"{out.name}.{hashlib.sha256(key.encode()).hexdigest()[:12]}.calib")


def build_engine(onnx_path: str | os.PathLike, out: str | os.PathLike, precision: str = "fp16",
                 dla_core: int | None = None, workspace_mb: int = 1024,
                 timing_cache: str | os.PathLike | None = None,
                 calib: CalibrationSet | str | os.PathLike | None = None, calib_limit: int | None = None,
                 calib_cache: str | os.PathLike | None = None,
                 progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """Build ``onnx_path`` into the engine ``out`` (written atomically) and its sidecar
    ``out.json``; returns the engine path and the sidecar.

    ``dla_core``: build for that DLA core (Jetson Xavier/Orin); layers DLA cannot run fall back to
    the GPU. ``timing_cache``: a file read before and updated after the build (faster rebuilds).
    ``calib``: calibration set (a ``CalibrationSet`` or a spec for ``load_calibration_set``) for
    implicit INT8, of which the first ``calib_limit`` images are used; its cache goes to
    ``calib_cache`` (default: next to the engine, named after the ONNX, images and TensorRT).
    """
    onnx_path, out = Path(onnx_path), Path(out)
    timing_cache = Path(timing_cache) if timing_cache is not None else None
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {list(PRECISIONS)}")
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model {onnx_path} not found")
    if workspace_mb <= 0:
        raise ValueError(f"workspace must be a positive number of MB, got {workspace_mb}")
    if dla_core is not None and dla_core < 0:
        raise ValueError(f"DLA core must be 0 or more, got {dla_core}")
    model, meta, qdq = _read_onnx(onnx_path)
    int8 = _int8_mode(onnx_path, precision, qdq, calib)
    if dla_core is not None and int8 == "explicit":
        raise ValueError(f"{onnx_path}: holds Q/DQ nodes, and DLA runs implicit INT8 only; build "
                         "the FP32 ONNX for DLA with a calibration set (--calib), or drop --dla-core")

    def say(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr)

    trt = import_tensorrt()
    require_version(trt, build=True)
    cudart = import_cudart()
    device = device_info(cudart)
    logger = shared_logger(trt)
    builder = trt.Builder(logger)
    flags = _flags(precision, int8, builder, device)
    if dla_core is not None:
        if dla_core >= builder.num_DLA_cores:
            raise RuntimeError(f"DLA core {dla_core} asked for, but {device.name} has "
                               f"{builder.num_DLA_cores} DLA cores (DLA exists on Jetson Xavier and Orin)")
        flags.append("GPU_FALLBACK")

    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)  # owns the weights: keep it alive until the build is done
    say(f"parsing {onnx_path} with TensorRT {trt.__version__}")
    if not parser.parse_from_file(str(onnx_path)):
        raise ValueError(_parser_errors(parser, model, onnx_path, trt.__version__))
    input_name, input_shape, outputs = _check_io(network, onnx_path, meta)
    config = _configure(trt, builder, flags, workspace_mb, dla_core, timing_cache, logger)
    calibrator, calibration = None, None
    if int8 == "implicit":
        if meta["input_format"] == "uint8":
            raise ValueError(f"{onnx_path}: reads uint8 frames, and implicit INT8 would quantize its "
                             "normalising convolution over 0..255; quantize it first (`edge-mtl "
                             "quantize`, which keeps that layer in float) and build the Q/DQ model")
        calib_set = calib if isinstance(calib, CalibrationSet) else load_calibration_set(calib,
                                                                                         progress=progress)
        cache = Path(calib_cache) if calib_cache is not None else _calib_cache_path(
            out, sha256(onnx_path), calib_set, calib_limit, trt.__version__)
        calibrator = make_entropy_calibrator(trt, cudart, calib_set, input_shape, cache, calib_limit,
                                             meta["resize"])
        config.int8_calibrator = calibrator
        calibration = {"set": calib_set.name, "manifest": str(calib_set.manifest), "limit": calib_limit,
                       "cache": str(cache.resolve())}
    target = f"DLA core {dla_core} of {device.name}" if dla_core is not None else device.name
    say(f"building a {precision} engine for {target} (this takes minutes)")
    mark = logger.mark()
    try:
        plan = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.free()
    if calibrator is not None and calibrator.error is not None:
        with contextlib.suppress(OSError):  # scales of a calibration cut short: never reuse them
            cache.unlink(missing_ok=True)
        raise calibrator.error
    if plan is None:
        raise RuntimeError(f"TensorRT {trt.__version__} could not build {onnx_path}: "
                           f"{logger.errors_since(mark)}")
    write_atomic(out, bytes(plan))
    if timing_cache is not None:
        write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    if calibrator is not None:
        calibration.update({"images": calibrator.images, "cache_reused": calibrator.cache_read})

    build = {"flags": flags, "workspace_mb": workspace_mb, "dla_core": dla_core,
             "timing_cache": str(timing_cache.resolve()) if timing_cache is not None else None,
             "int8": int8, "calibration": calibration}
    model_meta = {k: meta[k] for k in ("input_size", "mean", "std", "class_names", "output_names",
                                       "backbone", "params", "checkpoint_sha256", "resize",
                                       "canonical_focal", "input_format")}
    sidecar = make_sidecar(out, tensorrt_version=trt.__version__,
                           device={"name": device.name, "compute_capability": device.compute_capability},
                           precision=precision, input_name=input_name, input_shape=input_shape,
                           output_names=outputs, onnx=onnx_path, build=build, model=model_meta)
    write_sidecar(out, sidecar)
    say(f"wrote {out} and {out.name}.json")
    return out, sidecar

"""The main job, ``edge-mtl demo``: the whole deployment path on the embedded default, in one call.

Steps (each timed, its status recorded in ``DIR/demo.json``, schema ``edge_mtl.demo/1``):

1. export       checkpoint -> ``model.onnx`` (parity-checked against PyTorch)
2. check-onnx   lint for tensorrt-8.5, tensorrt-10 and dla (GPU fallback); a TensorRT error fails
3. calibrate    explicit INT8 -> ``model.int8.onnx`` on the default calibration set (its rendered
                frames are cached under ``calibration/cache/``), then linted for TensorRT too
4. eval         a fresh validation set (seed 7, never trained or calibrated on) rendered into
                ``DIR/val`` (reused when complete); FP32 and INT8 onnxruntime -> ``eval_*.json``
5. tensorrt     FP16 and INT8 engines, evaluated, when TensorRT, cuda-python and a GPU are
                present; otherwise "skipped" with exactly what is missing
6. bench        per-stage latency of every model built -> ``bench_*.json``
7. drive-video  a coherent synthetic drive -> ``drive.mp4``
8. camera       the camera loop, headless, on that video -> ``demo_annotated.mp4`` + ``camera_*.json``
9. report       ``report.md``, ``report.json`` and PNG plots from every JSON above

Re-running into the same folder first removes the products this job writes (and nothing else).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge_mtl.files import to_json, write_atomic
from edge_mtl.paths import DEFAULT_CHECKPOINT

SCHEMA = "edge_mtl.demo/1"
DEFAULT_OUT = "runs/demo"
STEPS: tuple[str, ...] = ("export", "check-onnx", "calibrate", "eval", "tensorrt", "bench",
                          "drive-video", "camera", "report")
CHECK_TARGETS: tuple[str, ...] = ("tensorrt-8.5", "tensorrt-10", "dla")
# Seeds used elsewhere: 1000 trains the released model, 7 renders data/val, 424242 the
# calibration set. The demo's val set is seed 7 (the first N frames of the val distribution,
# disjoint from training and calibration); the drive uses its own seed.
VAL_SEED = 7
DRIVE_SEED = 4
DRIVE_FPS = 30.0
# Every file this job writes at the top of DIR (removed before a run so none is stale).
PRODUCTS: tuple[str, ...] = (
    "demo.json", "model.onnx", "model.int8.onnx", "model.fp16.engine", "model.fp16.engine.json",
    "model.int8.engine", "model.int8.engine.json",
    "eval_onnxruntime_fp32.json", "eval_onnxruntime_int8.json",
    "eval_tensorrt_fp16.json", "eval_tensorrt_int8.json",
    "bench_onnxruntime_fp32.json", "bench_onnxruntime_int8.json",
    "bench_tensorrt_fp16.json", "bench_tensorrt_int8.json",
    "drive.mp4", "demo_annotated.mp4", "camera_onnxruntime_fp32.json", "camera_tensorrt_fp16.json",
    "report.md", "report.json",
)


def tensorrt_missing() -> list[str]:
    """What stands between this machine and a TensorRT engine build (empty: nothing)."""
    from edge_mtl.trt.api import device_info, import_cudart, import_tensorrt, require_version

    missing = []
    try:
        require_version(import_tensorrt(), build=True)
    except RuntimeError as e:
        missing.append(str(e))
    try:
        cudart = import_cudart()
    except RuntimeError as e:
        missing.append(str(e))
    else:
        try:
            device_info(cudart)
        except RuntimeError as e:
            missing.append(str(e))
    return missing


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, to_json(data, indent=2) + "\n")


def _metrics_line(result: dict) -> str:
    m = result["metrics"]
    parts = []
    if "det" in m:
        parts.append(f"mAP50 {m['det']['map50']:.3f}, mAP {m['det']['map']:.3f}")
    if "lane" in m:
        parts.append(f"lane IoU {m['lane']['iou']:.3f}")
    if "depth" in m:
        parts.append(f"depth AbsRel {m['depth']['abs_rel']:.3f}")
    return "; ".join(parts)


class _Record:
    """``demo.json``: every step with its status (pending, done, skipped, failed, interrupted),
    seconds and products; rewritten after each step so an interrupted run still says how far it came."""

    def __init__(self, out: Path, log: Callable[[str], object], settings: dict[str, Any]):
        self.out, self.log = out, log
        self.started = time.perf_counter()
        self.data: dict[str, Any] = {
            "schema": SCHEMA, "out": str(out.resolve()), "status": "running", "settings": settings,
            "steps": [{"index": i + 1, "name": name, "status": "pending"} for i, name in enumerate(STEPS)],
            "seconds": None,
        }

    def entry(self, name: str) -> dict[str, Any]:
        return self.data["steps"][STEPS.index(name)]

    @contextmanager
    def step(self, name: str, title: str) -> Iterator[dict[str, Any]]:
        entry = self.entry(name)
        entry.update(title=title, status="running")
        self.log(f"\n[{entry['index']}/{len(STEPS)}] {title}")
        t0 = time.perf_counter()
        try:
            yield entry
        except BaseException as e:
            status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            entry.update(status=status, error=f"{type(e).__name__}: {e}",
                         seconds=round(time.perf_counter() - t0, 1))
            self.finish(status)
            raise
        if entry["status"] == "running":
            entry["status"] = "done"
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        self.log(f"[{entry['index']}/{len(STEPS)}] {name}: {entry['status']} in {entry['seconds']:.1f} s")
        self.write()

    def products(self, entry: dict[str, Any], *paths: Path) -> None:
        entry.setdefault("products", []).extend(os.path.relpath(p, self.out) for p in paths)

    def write(self) -> None:
        self.data["seconds"] = round(time.perf_counter() - self.started, 1)
        _write_json(self.out / "demo.json", self.data)

    def finish(self, status: str) -> None:
        self.data["status"] = status
        self.write()


def _render_val(root: Path, num: int, seed: int, progress: bool) -> bool:
    """Render the val set into ``root`` unless a complete one of that seed and size is there;
    True when it was reused."""
    from edge_mtl.data.format import synthesize_once

    return synthesize_once(root, num, seed, progress=progress)[1]


def _write_drive(path: Path, frames: int, seed: int, progress: bool) -> tuple[int, int]:
    """Render the drive into ``path`` (mp4v, written to a temporary name, then moved: `Recorder`)."""
    from tqdm import tqdm

    from edge_mtl.data.drive import drive_images
    from edge_mtl.video import Recorder

    with Recorder(path, DRIVE_FPS) as video:
        for image in tqdm(drive_images(seed, frames, DRIVE_FPS), total=frames, desc="drive",
                          unit="frame", disable=not progress):
            video.write(image)
        size = video.size or (0, 0)
    return size


def run_demo(out: str | os.PathLike = DEFAULT_OUT, checkpoint: str | os.PathLike = DEFAULT_CHECKPOINT,
             calib: str | os.PathLike | None = None, calib_images: int = 64, calib_method: str = "percentile",
             val_num: int = 100, drive_frames: int = 300, bench_frames: int = 100, bench_warmup: int = 10,
             progress: bool = True, log: Callable[[str], object] = print) -> dict[str, Any]:
    """Run the nine steps (module docstring) into ``out``; returns what ``demo.json`` holds.

    ``calib``: calibration set for step 3 (``load_calibration_set``; default: the synthetic
    default recipe), of which the first ``calib_images`` are used. ``val_num`` frames are
    evaluated, ``drive_frames`` rendered at 30 FPS, ``bench_frames`` timed per model.
    """
    from edge_mtl.bench import benchmark
    from edge_mtl.camera.loop import run_camera
    from edge_mtl.evaluate import evaluate
    from edge_mtl.export.check import check_onnx
    from edge_mtl.export.onnx import export_onnx
    from edge_mtl.quantize.calibset import load_calibration_set
    from edge_mtl.quantize.qdq import quantize_qdq

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} not found (--checkpoint; the default is "
                                f"{DEFAULT_CHECKPOINT})")
    for name, value in (("--calib-images", calib_images), ("--val-num", val_num),
                        ("--drive-frames", drive_frames), ("--bench-frames", bench_frames)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in PRODUCTS:
        (out / name).unlink(missing_ok=True)
    settings = {"checkpoint": str(checkpoint), "calib": str(calib) if calib else "default",
                "calib_images": calib_images, "calib_method": calib_method, "val_num": val_num,
                "val_seed": VAL_SEED, "drive_frames": drive_frames, "drive_seed": DRIVE_SEED,
                "bench_frames": bench_frames, "bench_warmup": bench_warmup}
    rec = _Record(out, log, settings)
    rec.write()
    fp32, int8 = out / "model.onnx", out / "model.int8.onnx"
    engines: dict[str, Path] = {}

    with rec.step("export", f"export ONNX ({checkpoint.name})") as st:
        r = export_onnx(checkpoint, fp32)
        worst = max(v for diffs in r.parity.values() for v in diffs.values())
        st["details"] = {"opset": r.opset, "simplifier": r.simplifier, "nodes_exported": r.nodes_before,
                         "nodes": r.nodes_after, "parity_max_abs_diff": worst,
                         "megabytes": round(fp32.stat().st_size / 2**20, 2)}
        rec.products(st, fp32)
        log(f"{fp32}: opset {r.opset}, {r.nodes_before} -> {r.nodes_after} nodes ({r.simplifier}), "
            f"parity with PyTorch: max |diff| {worst:.1e}")

    def lint(model: Path, targets: tuple[str, ...]) -> dict[str, dict[str, int]]:
        counts = {}
        for target in targets:
            findings = check_onnx(model, target, allow_gpu_fallback=target == "dla")
            errors = [f for f in findings if f.level == "error"]
            counts[target] = {"errors": len(errors), "warnings": len(findings) - len(errors)}
            log(f"  {model.name} {target:>12}: {'FAIL' if errors else 'OK'} ({len(errors)} errors, "
                f"{len(findings) - len(errors)} warnings" + (", GPU fallback" if target == "dla" else "")
                + ")")
            if errors and target.startswith("tensorrt"):
                raise ValueError(f"{model}: check-onnx {target} found {len(errors)} error(s): "
                                 + "; ".join(str(f) for f in errors[:5]))
        return counts

    with rec.step("check-onnx", "check-onnx (tensorrt-8.5, tensorrt-10, dla with GPU fallback)") as st:
        st["details"] = {"findings": lint(fp32, CHECK_TARGETS)}

    with rec.step("calibrate", f"calibrate INT8 ({calib_images} images, {calib_method})") as st:
        calib_set = load_calibration_set(calib, progress=progress)
        q = quantize_qdq(fp32, int8, calib_set, method=calib_method, images=calib_images,
                         progress=progress)  # written atomically
        log(f"{int8}: {q.method} calibration on {q.images} images of {calib_set.name} "
            f"({calib_set.manifest}), {q.quantized_nodes} quantized tensors, "
            f"{len(q.kept_nodes)} nodes kept in float")
        st["details"] = {"set": calib_set.name, "manifest": str(calib_set.manifest), "images": q.images,
                         "method": q.method, "quantized_tensors": q.quantized_nodes,
                         "megabytes": round(int8.stat().st_size / 2**20, 2),
                         "findings": lint(int8, ("tensorrt-8.5", "tensorrt-10"))}
        rec.products(st, int8)

    val = out / "val"
    with rec.step("eval", f"eval FP32 and INT8 onnxruntime ({val_num} val frames, seed {VAL_SEED})") as st:
        reused = _render_val(val, val_num, VAL_SEED, progress)
        log(f"val set {val}: {'reused' if reused else 'rendered'} ({val_num} frames, seed {VAL_SEED})")
        st["details"] = {"val": str(val), "val_num": val_num, "val_seed": VAL_SEED, "val_reused": reused}
        for model, precision in ((fp32, "fp32"), (int8, "int8")):
            result = evaluate(model, val, backend="onnxruntime", device="cpu", progress=progress)
            path = out / f"eval_onnxruntime_{precision}.json"
            _write_json(path, result)
            rec.products(st, path)
            log(f"  {precision}: {_metrics_line(result)}  ({result['seconds']:.0f} s)")

    with rec.step("tensorrt", "TensorRT engines (FP16, INT8)") as st:
        missing = tensorrt_missing()
        if missing:
            st.update(status="skipped", reason="; ".join(missing))
            log("TensorRT engine: not built, because:\n" + "\n".join(f"  - {m}" for m in missing))
        else:
            from edge_mtl.trt.build import build_engine

            for model, precision in ((fp32, "fp16"), (int8, "int8")):
                path, sidecar = build_engine(model, out / f"model.{precision}.engine", precision=precision,
                                             progress=progress)
                engines[precision] = path
                log(f"{path}: TensorRT {sidecar['tensorrt_version']} {precision} engine")
                result = evaluate(path, val, backend="tensorrt", device="cuda", progress=progress)
                ev = out / f"eval_tensorrt_{precision}.json"
                _write_json(ev, result)
                rec.products(st, path, Path(f"{path}.json"), ev)
                log(f"  {precision}: {_metrics_line(result)}")

    with rec.step("bench", f"latency bench ({bench_frames} frames per model)") as st:
        runs = [(fp32, "onnxruntime", "cpu", "fp32"), (int8, "onnxruntime", "cpu", "int8")]
        runs += [(p, "tensorrt", "cuda", prec) for prec, p in engines.items()]
        st["details"] = {}
        for model, backend, device, precision in runs:
            result = benchmark(model, backend, device, frames=bench_frames, warmup=bench_warmup,
                               progress=progress)
            path = out / f"bench_{backend}_{precision}.json"
            _write_json(path, result)
            rec.products(st, path)
            p50, fps = result["model_only_ms"]["p50"], result["fps"]["e2e"]
            st["details"][f"{backend}_{precision}"] = {"model_only_p50_ms": p50, "fps_e2e": fps}
            log(f"  {backend} {precision} on {result['device']}: model {p50:.1f} ms p50, "
                f"end to end {fps:.1f} FPS")

    video = out / "drive.mp4"
    with rec.step("drive-video", f"render a synthetic drive ({drive_frames} frames, "
                                 f"{drive_frames / DRIVE_FPS:.1f} s at {DRIVE_FPS:.0f} FPS)") as st:
        w, h = _write_drive(video, drive_frames, DRIVE_SEED, progress)
        st["details"] = {"frames": drive_frames, "fps": DRIVE_FPS, "seed": DRIVE_SEED, "size": [h, w]}
        rec.products(st, video)

    camera_model, camera_backend = ((engines["fp16"], "tensorrt") if "fp16" in engines
                                    else (fp32, "onnxruntime"))
    camera_json = out / ("camera_tensorrt_fp16.json" if "fp16" in engines else "camera_onnxruntime_fp32.json")
    annotated = out / "demo_annotated.mp4"
    with rec.step("camera", f"camera loop, headless, on {video.name} ({camera_backend})") as st:
        s = run_camera(video, camera_model, camera_backend, "cuda" if camera_backend == "tensorrt" else "cpu",
                       headless=True, record=annotated, bench_json=camera_json, log=log)
        st["details"] = {"frames": s["frames"], "fps_mean": s["fps"]["mean"], "fps_p50": s["fps"]["p50"],
                         "stop_reason": s["stop_reason"], "pre_post_draw_ms": s["pre_post_draw_ms"]}
        rec.products(st, annotated, camera_json)

    with rec.step("report", "report (markdown, JSON, PNG plots)") as st:
        from edge_mtl.report import build_report

        build_report(run_dirs=[out], out_dir=out)
        rec.products(st, *sorted({out / "report.md", out / "report.json", *out.glob("*.png")}))

    rec.finish("done")
    _summary(rec.data, out, log)
    return rec.data


def _summary(data: dict[str, Any], out: Path, log: Callable[[str], object]) -> None:
    lines = [f"\ndemo done in {data['seconds']:.0f} s ({out}):"]
    for st in data["steps"]:
        note = ""
        if st["status"] == "skipped":
            note = ("  engine not built (what is missing: above and in demo.json)"
                    if st["name"] == "tensorrt" else f"  ({st.get('reason')})")
        lines.append(f"  [{st['index']}/{len(STEPS)}] {st['name']:<12} {st['status']:<8} "
                     f"{st.get('seconds', 0):6.1f} s{note}")
    lines.append(f"  report:          {out / 'report.md'}")
    lines.append(f"  annotated video: {out / 'demo_annotated.mp4'}")
    lines.append(f"  steps and times: {out / 'demo.json'}")
    log("\n".join(lines))

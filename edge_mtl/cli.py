"""The `edge-mtl` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_mtl.compat import require_python310
from edge_mtl.config import READER_FORMATS, non_negative_int, positive_float, positive_int
from edge_mtl.paths import DEFAULT_CONFIG
from edge_mtl.study.plan import DYNAMIC, STUDY_CONFIG
from edge_mtl.study.plan import STEPS as STUDY_STEPS
from edge_mtl.study.plan import VAL_NUM as STUDY_VAL_NUM

# What `pip install edge-mtl` leaves out (the `train` extra): the runtime runs without them.
TRAINING_PACKAGES = ("torch", "torchvision", "onnxslim", "onnxsim", "tensorboard")
# The commands that also run on Python 3.8 (JetPack 5; edge_mtl/compat.py); the others need 3.10.
PY38_COMMANDS = ("synth", "eval", "check-onnx", "calibrate", "build-engine", "bench", "camera", "report")


def _cmd_synth(args: argparse.Namespace) -> int:
    from edge_mtl.data.format import parse_drop_labels, synthesize

    drops = parse_drop_labels(args.drop_labels)
    root = synthesize(args.out, args.num, args.seed, drops, workers=args.workers,
                      sequence=args.sequence, force=args.force)
    print(f"wrote {args.num} samples to {root}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from edge_mtl.config import Config, apply_overrides
    from edge_mtl.train import train

    if args.resume and args.config is None:  # the run's own settings, as it was started
        from edge_mtl.checkpoint import read_checkpoint

        cfg = Config.from_dict(read_checkpoint(args.resume)["config"], source=f"{args.resume}:config")
    else:
        cfg = Config.load(args.config or DEFAULT_CONFIG)
    overrides = list(args.set or [])
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    cfg = apply_overrides(cfg, overrides)
    # Paths are set as given (a YAML parse could turn "123" or "a: b" into something else).
    cfg.train.data = args.data or cfg.train.data  # --data is repeatable: a mix
    out_set = args.out or any(o.startswith("train.out=") for o in overrides)
    if args.resume and not out_set:  # resuming continues in the run's own folder
        cfg.train.out = str(Path(args.resume).parent)
    cfg.train.out = args.out or cfg.train.out
    path = train(cfg, resume=args.resume, force=args.force, strict=args.strict)
    print(f"checkpoint: {path}")
    return 0


def _cmd_check_data(args: argparse.Namespace) -> int:
    from edge_mtl.data.preflight import check_dataset

    result = check_dataset(args.data, workers=args.workers, strict=args.strict,
                           options=_data_options(args))
    for problem in result.bad:
        print(problem.reason)
    print(result.summary() + f" ({result.seconds:.1f} s)")
    if args.json:
        from edge_mtl.files import to_json, write_atomic

        write_atomic(args.json, to_json(result.to_dict(), indent=2) + "\n")
    return 1 if result.bad else 0


def _data_option_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-option", action="append", metavar="KEY=VALUE",
                        help="a reader option of --data's format (value in YAML), e.g. lane_width=6 or "
                             "'class_map={Car: car, Van: ignore}'; see docs/DATASETS.md")


def _data_options(args: argparse.Namespace) -> dict:
    """``--data-option KEY=VALUE`` items as reader options for the format of ``--data``."""
    import yaml

    from edge_mtl.data.formats import DataSpec

    options = {}
    for item in args.data_option or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--data-option {item!r}: expected KEY=VALUE")
        try:
            options[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ValueError(f"--data-option {item!r}: the value is not valid YAML ({e})") from None
    return {DataSpec.parse(args.data).format: options} if options else {}


def _cmd_eval(args: argparse.Namespace) -> int:
    from edge_mtl.evaluate import evaluate

    result = evaluate(args.model, args.data, limit=args.limit, backend=args.backend,
                      device=args.device, strict=args.strict, options=_data_options(args),
                      depth_crop=None if args.depth_crop == "none" else args.depth_crop)
    _emit_json(result, args.json)
    return 0


def _emit_json(result: dict, path: str | None) -> None:
    from edge_mtl.files import to_json, write_atomic

    text = to_json(result, indent=2)  # NaN / inf -> null: strict JSON
    if path:
        write_atomic(path, text + "\n")
    print(text)


def _cmd_export(args: argparse.Namespace) -> int:
    from edge_mtl.export.onnx import export_onnx

    r = export_onnx(args.checkpoint, args.out, opset=args.opset, simplifier=args.simplifier,
                    input_format="uint8" if args.uint8_input else "float")
    print(f"{r.path}: opset {r.opset}, {r.nodes_before} nodes exported, {r.nodes_after} after "
          f"{r.simplifier}")
    for stage, diffs in r.parity.items():
        print(f"  parity {stage:>10}: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    return 0


def _cmd_check_onnx(args: argparse.Namespace) -> int:
    from edge_mtl.export.check import check_onnx

    findings = check_onnx(args.model, args.target, allow_gpu_fallback=args.allow_gpu_fallback)
    for f in findings:
        print(f)
    errors = sum(f.level == "error" for f in findings)
    print(f"{args.model}: {'FAIL' if errors else 'OK'} for {args.target} "
          f"({errors} errors, {len(findings) - errors} warnings)")
    return 1 if errors else 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from edge_mtl.quantize.calibset import load_calibration_set
    from edge_mtl.quantize.qdq import quantize_qdq

    calib = load_calibration_set(args.calib)
    keep = None if args.keep is None else [k for k in args.keep if k != "none"]
    r = quantize_qdq(args.model, args.out, calib, method=args.method, images=args.images, keep=keep)
    print(f"{r.path}: INT8 Q/DQ, {r.method} calibration on {r.images} images of {calib.name}"
          f"{' (cached ranges)' if r.cache_hit else ''}, {r.quantized_nodes} quantized tensors, "
          f"{len(r.kept_nodes)} nodes kept in float")
    return 0


def _cmd_int8_sensitivity(args: argparse.Namespace) -> int:
    from edge_mtl.quantize.calibset import load_calibration_set
    from edge_mtl.quantize.qdq import keep_prefixes
    from edge_mtl.quantize.sensitivity import candidate_groups, sweep

    kept = keep_prefixes(args.keep)
    groups = args.group or [g for g in candidate_groups(args.model, depth=args.depth)
                            if not (kept and g.startswith(kept))]
    result = sweep(args.model, load_calibration_set(args.calib), args.data, groups=groups,
                   limit=args.limit, method=args.method, images=args.images, keep=args.keep)
    if not any(r["loss"] for r in result["rows"]):
        raise ValueError(f"{args.data}: no labelled task to compare, so no headline metric")
    best = sorted(result["rows"][1:], key=lambda r: max(r["loss"].values(), default=0.0))
    print("groups whose float precision helps most (headline loss vs FP32 with it in float):")
    for r in best[:8]:
        print(f"  {r['group']:32s} " + ", ".join(f"{t} {100 * v:+.2f} %" for t, v in r["loss"].items()))
    if args.json:
        _emit_json(result, args.json)
    return 0


def _cmd_build_engine(args: argparse.Namespace) -> int:
    from edge_mtl.trt.build import build_engine

    path, sidecar = build_engine(args.model, args.out, precision=args.precision,
                                 dla_core=args.dla_core, workspace_mb=args.workspace,
                                 timing_cache=args.timing_cache, calib=args.calib)
    print(f"{path}: TensorRT {sidecar['tensorrt_version']} {sidecar['precision']} engine "
          f"(sidecar {path}.json)")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from edge_mtl.bench import benchmark
    from edge_mtl.runtime.backend import backend_for

    options = {k: v for k, v in (("threads", args.ort_threads), ("spin", args.ort_spin)) if v}
    chosen = args.backend if args.backend != "auto" else backend_for(args.model)
    if options and chosen != "onnxruntime":
        raise ValueError(f"--ort-threads/--ort-spin apply to the onnxruntime backend, not {chosen} "
                         f"({args.model})")
    result = benchmark(args.model, args.backend, args.device, frames=args.frames,
                       warmup=args.warmup, source=args.images, **options)
    _emit_json(result, args.json)
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    from edge_mtl.checkpoint import release
    from edge_mtl.files import sha256

    dst = release(args.checkpoint, args.out)
    print(f"{dst}  sha256={sha256(dst)}")
    return 0


def _cmd_camera(args: argparse.Namespace) -> int:
    from edge_mtl.camera.loop import run_camera

    focal = args.focal
    if args.calib:
        from edge_mtl.camera.calib import focal_from_file

        focal = focal_from_file(args.calib)
    run_camera(args.source, args.model, args.backend, args.device, headless=args.headless,
               record=args.record, max_frames=args.max_frames, bench_json=args.bench_json,
               width=args.width, height=args.height, fps=args.fps, flip_method=args.flip_method,
               focal=focal, serial=args.serial)
    return 0


def _cmd_real_check(args: argparse.Namespace) -> int:
    from edge_mtl.real_check import real_check, summary_lines

    result = real_check(args.model, args.out, shared=args.shared, backend=args.backend, device=args.device,
                        max_frames=args.max_frames)
    print("\n".join(summary_lines(result)))
    return 0


def _cmd_adapt_bn(args: argparse.Namespace) -> int:
    from edge_mtl.adapt import adapt_bn

    summary = adapt_bn(args.checkpoint, args.source, args.out, every=args.every)
    print(f"{args.out}: BatchNorm statistics of {summary['re_estimated']} of {summary['batchnorm_layers']} "
          f"layers re-estimated on {summary['frames']} frames of {', '.join(summary['sources'])}")
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    from edge_mtl.study.main import run_study

    report = run_study(args.out, data=args.data, config=args.config, size=args.size, steps=args.steps,
                       batch_size=args.batch_size, seeds=args.seeds, train_num=args.train_num,
                       val_num=args.val_num, strategies=tuple(args.strategy or DYNAMIC), device=args.device)
    print(report.read_text().split("\n## Setup")[0])
    print(f"report: {report}")
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HEIGHTxWIDTH, e.g. 192x320") from None
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise argparse.ArgumentTypeError(f"{text!r}: both sides must be positive multiples of 32")
    return h, w


def _cmd_report(args: argparse.Namespace) -> int:
    from edge_mtl.report import build_report

    report = build_report(args.run_dirs, args.out or args.run_dirs[0])
    invalid = [f"{f['row']}: {f['label']} is invalid ({f['invalid']})" for f in report["accuracy"]["flags"]
               if f.get("invalid")]
    for line in report["notes"] + [f"skipped {s['path']}: {s['why']}" for s in report["skipped"]] + invalid:
        print(f"note: {line}", file=sys.stderr)
    for path in report["files"].values():
        print(path)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from edge_mtl.demo import DEFAULT_CHECKPOINT, run_demo

    run_demo(args.out, args.checkpoint or DEFAULT_CHECKPOINT, calib=args.calib,
             calib_images=args.calib_images, val_num=args.val_num, drive_frames=args.drive_frames,
             bench_frames=args.bench_frames)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-mtl", description="Multi-task perception for edge GPUs.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="render a synthetic driving dataset")
    s.add_argument("--out", required=True, help="output folder (must not hold a dataset yet)")
    s.add_argument("--num", type=positive_int, required=True, help="number of frames")
    s.add_argument("--seed", type=non_negative_int, default=0)
    s.add_argument("--drop-labels", default=None,
                   help="per-task probability of dropping a sample's label, e.g. det=0.3,lane=0.3,depth=0.5")
    s.add_argument("--workers", type=positive_int, default=None, help="render processes (default: all cores)")
    s.add_argument("--sequence", action="store_true",
                   help="render one temporally coherent drive (30 FPS) instead of independent scenes")
    s.add_argument("--force", action="store_true", help="replace a dataset already in --out")
    s.set_defaults(func=_cmd_synth)

    t = sub.add_parser("train", help="train the tri-task network")
    t.add_argument("--config", help=f"YAML config (default: the --resume checkpoint's own, else "
                                    f"{DEFAULT_CONFIG.relative_to(DEFAULT_CONFIG.parents[1])})")
    t.add_argument("--data", action="append", metavar="FORMAT:PATH[@WEIGHT]",
                   help=f"a training dataset, repeatable to mix several (overrides train.data); FORMAT "
                        f"one of {', '.join(READER_FORMATS)}; a bare PATH is synth")
    t.add_argument("--out", help="run folder (overrides train.out)")
    t.add_argument("--steps", type=positive_int, help="optimizer steps (overrides train.steps)")
    t.add_argument("--resume", help="checkpoint to resume from (e.g. RUN/last.pt); the run goes on in its "
                                    "folder unless --out says otherwise")
    t.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override any config value, e.g. --set train.batch_size=4")
    t.add_argument("--force", action="store_true",
                   help="start over in a run folder that already holds a run (replaces its log and last.pt)")
    t.add_argument("--strict", action="store_true",
                   help="stop at the first bad sample (default: skip them, listed in RUN/data_check.json)")
    t.set_defaults(func=_cmd_train)

    k = sub.add_parser("check-data", help="read and validate every sample of a dataset, any format "
                                          "(train runs this first)")
    k.add_argument("data", metavar="FORMAT:PATH", help="dataset (a bare PATH is a synth folder)")
    _data_option_arg(k)
    k.add_argument("--workers", type=positive_int, default=None, help="processes (default: all cores)")
    k.add_argument("--strict", action="store_true", help="stop at the first bad sample")
    k.add_argument("--json", help="write the report (every bad file and why) here")
    k.set_defaults(func=_cmd_check_data)

    e = sub.add_parser("eval", help="evaluate a model (.pt, .onnx, .engine) on a dataset folder")
    e.add_argument("model")
    e.add_argument("--data", required=True, metavar="FORMAT:PATH",
                   help=f"dataset to evaluate on; FORMAT one of {', '.join(READER_FORMATS)}; a bare PATH "
                        "is a synth folder")
    _data_option_arg(e)
    e.add_argument("--depth-crop", default="auto", choices=("auto", "garg", "eigen", "none"),
                   help="depth scored inside this crop (KITTI convention); auto: garg on KITTI formats, "
                        "none elsewhere")
    e.add_argument("--json", help="write the evaluation JSON here")
    e.add_argument("--limit", type=positive_int, help="evaluate only the first N samples")
    e.add_argument("--strict", action="store_true",
                   help="stop at the first unreadable sample (default: skip it, listed in the JSON)")
    _backend_args(e, default_device="cpu")
    e.set_defaults(func=_cmd_eval)

    x = sub.add_parser("export", help="export a checkpoint to static-shape ONNX (checked for parity)")
    x.add_argument("checkpoint")
    x.add_argument("--out", required=True, help="ONNX file to write")
    x.add_argument("--opset", type=int, default=17)
    x.add_argument("--simplifier", default="onnxslim", choices=("onnxslim", "onnxsim", "none"))
    x.add_argument("--uint8-input", action="store_true",
                   help="the graph reads the fitted BGR uint8 frame [B, H, W, 3] and normalises it "
                        "itself (Cast, Transpose, a 1x1 Conv), so the CPU only resizes")
    x.set_defaults(func=_cmd_export)

    c = sub.add_parser("check-onnx", help="lint an ONNX model for a TensorRT target")
    c.add_argument("model")
    c.add_argument("--target", default="tensorrt-10", choices=("tensorrt-8.5", "tensorrt-10", "dla"))
    c.add_argument("--allow-gpu-fallback", action="store_true",
                   help="dla: report layers DLA cannot run as warnings (they run on the GPU)")
    c.set_defaults(func=_cmd_check_onnx)

    q = sub.add_parser("calibrate", help="INT8-calibrate an ONNX model into explicit Q/DQ form")
    q.add_argument("model", help="FP32 ONNX from `edge-mtl export`")
    q.add_argument("--calib", default=None,
                   help="calibration set: recipe .yaml, manifest .json or folder of frames "
                        "(default: calibration/synth_default.yaml)")
    q.add_argument("--out", required=True, help="INT8 ONNX file to write")
    q.add_argument("--method", default="percentile", choices=("entropy", "minmax", "percentile"))
    q.add_argument("--images", type=positive_int, help="use at most N images of the set")
    q.add_argument("--keep", action="append", metavar="GROUP|/PREFIX",
                   help="keep layers in float: stem, backbone, neck, det_head, decoder, lane_head, "
                        "depth_head, heads, or a node-name prefix; repeatable; 'none' quantizes "
                        "every layer (default: /backbone/features.1/, /backbone/features.7/, decoder "
                        "and depth_head, the groups "
                        "`edge-mtl int8-sensitivity` found)")
    q.set_defaults(func=_cmd_calibrate)

    v = sub.add_parser("int8-sensitivity", help="which layer groups cost accuracy in INT8: one "
                                                "Q/DQ model per group left in float, evaluated")
    v.add_argument("model", help="FP32 ONNX from `edge-mtl export`")
    v.add_argument("--data", required=True, help="dataset folder to evaluate on")
    v.add_argument("--limit", type=positive_int, default=100,
                   help="frames of --data per model (default: 100)")
    v.add_argument("--calib", default=None, help="calibration set (default: calibration/synth_default.yaml)")
    v.add_argument("--method", default="percentile", choices=("entropy", "minmax", "percentile"))
    v.add_argument("--images", type=positive_int, help="calibration images (default: the whole set)")
    v.add_argument("--keep", action="append", metavar="GROUP|/PREFIX", help="always kept in float")
    v.add_argument("--group", action="append", metavar="/PREFIX",
                   help="candidate groups (default: every weighted-layer prefix --depth levels deep)")
    v.add_argument("--depth", type=positive_int, default=3, help="prefix depth of the default groups")
    v.add_argument("--json", help="write every row (metrics and losses) here")
    v.set_defaults(func=_cmd_int8_sensitivity)

    g = sub.add_parser("build-engine", help="build a TensorRT engine (needs TensorRT and a GPU)")
    g.add_argument("model", help="ONNX model (FP32, or INT8 Q/DQ from `edge-mtl calibrate`)")
    g.add_argument("--out", required=True, help="engine file to write (+ a .json sidecar)")
    g.add_argument("--precision", default="fp16", choices=("fp16", "int8", "best"))
    g.add_argument("--dla-core", type=non_negative_int, help="build for this DLA core (Jetson Orin / Xavier)")
    g.add_argument("--workspace", type=positive_int, default=1024, help="builder workspace in MB")
    g.add_argument("--timing-cache", help="timing cache file, read and updated")
    g.add_argument("--calib", help="calibration set for implicit INT8 (an FP32 ONNX with --precision int8)")
    g.set_defaults(func=_cmd_build_engine)

    b = sub.add_parser("bench", help="latency per stage and FPS of a model on a backend")
    b.add_argument("--model", required=True, help=".pt, .onnx or .engine")
    b.add_argument("--frames", type=positive_int, default=200)
    b.add_argument("--warmup", type=non_negative_int, default=20)
    b.add_argument("--images", help="folder of frames to use (default: rendered 1280x720 frames)")
    b.add_argument("--json", help="write the benchmark JSON here")
    b.add_argument("--ort-threads", type=positive_int,
                   help="onnxruntime intra-op threads (default: one per core)")
    b.add_argument("--ort-spin", action="store_true",
                   help="onnxruntime threads busy-wait between runs (its own default; faster for the "
                        "network alone, slower for the camera loop, so off by default here)")
    _backend_args(b, default_device="auto")
    b.set_defaults(func=_cmd_bench)

    r = sub.add_parser("release", help="strip a training checkpoint into a small fp16 release file")
    r.add_argument("checkpoint")
    r.add_argument("--out", required=True)
    r.set_defaults(func=_cmd_release)

    m = sub.add_parser("camera", help="run a model on a camera, stream, video or folder, with an overlay")
    m.add_argument("--source", required=True,
                   help="0 (webcam), /dev/video0, csi://0 (Jetson), rtsp://... or http(s)://..., a video "
                        "file, a folder of images, or a GStreamer pipeline (contains '!')")
    m.add_argument("--model", default=None,
                   help="a .pt, .onnx or .engine file, run as named (never replaced by a sibling; an error "
                        "if it cannot open), or a stem without a suffix (runs/deploy/model) to take the "
                        "best of its .engine/.onnx/.pt (default: models/tritask_mnv2.pt)")
    m.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime", "tensorrt"),
                   help="default: for a named file, its backend on the best device; for a stem, tensorrt > "
                        "onnxruntime-GPU > torch-CUDA > onnxruntime-CPU > torch-CPU among the files present. "
                        "Must match a named file's suffix")
    m.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    m.add_argument("--headless", action="store_true", help="no window (also automatic without a display)")
    m.add_argument("--record", help="write the drawn frames to this .mp4 (mp4v; written as NAME.partial.mp4, "
                                    "renamed when the run ends)")
    m.add_argument("--max-frames", type=positive_int, help="stop after N frames")
    m.add_argument("--bench-json", help="write the run summary (frames, dropped, corrupt frames, FPS, "
                                        "per-stage ms, stop reason) here, also when the loop fails once "
                                        "started")
    m.add_argument("--width", type=positive_int, help="capture width (csi, webcam; csi default 1280)")
    m.add_argument("--height", type=positive_int, help="capture height (csi, webcam; csi default 720)")
    m.add_argument("--fps", type=positive_int, help="capture frame rate (csi, webcam; csi default 30)")
    m.add_argument("--flip-method", type=int, default=0, help="csi: nvvidconv flip-method (0-7)")
    m.add_argument("--serial", action="store_true",
                   help="run capture, pre, infer and post + draw one after the other on one frame at a "
                        "time (the loop before the pipeline; for comparison). Default: the stages "
                        "overlap on threads, a live source keeping the newest frame")
    lens = m.add_mutually_exclusive_group()
    lens.add_argument("--focal", type=positive_float, metavar="PX",
                      help="the camera's focal length in pixels of its frames, for metric depth "
                           "(default: 0.8 x frame width, a 64 degree horizontal field of view)")
    lens.add_argument("--calib", metavar="FILE",
                      help="read the focal length from a calibration file: KITTI calib (P2 or P_rect_02), "
                           "or YAML/JSON with fx or an OpenCV camera_matrix")
    m.set_defaults(func=_cmd_camera)

    rc = sub.add_parser("real-check", help="score a model on the real material in ../shared/data: KITTI "
                                           "tracking eval + display-threshold counts, a label-free summary "
                                           "of the road videos and BDD100K frames, a contact sheet")
    rc.add_argument("model", help=".pt, .onnx or .engine")
    rc.add_argument("--shared", default="../shared/data",
                    help="folder holding real_dev/kitti_tracking, real_video/*.mp4 and bdd_frames/ "
                         "(default: %(default)s, from the current directory); a missing one is skipped")
    rc.add_argument("--out", required=True, help="folder for real_check.json and contact_sheet.png")
    rc.add_argument("--max-frames", type=positive_int, default=60,
                    help="frames per video or folder, evenly spaced (default: %(default)s)")
    _backend_args(rc, default_device="cpu")
    rc.set_defaults(func=_cmd_real_check)

    ab = sub.add_parser("adapt-bn", help="re-estimate a checkpoint's BatchNorm statistics on unlabelled "
                                         "frames of the target domain (AdaBN; no weight changes)")
    ab.add_argument("checkpoint", help="a training checkpoint or release file (.pt)")
    ab.add_argument("--source", action="append", required=True,
                    help="an image folder or a video file (repeatable)")
    ab.add_argument("--out", required=True, help="the adapted checkpoint to write")
    ab.add_argument("--every", type=positive_int, default=1, help="use every N-th frame (default: 1)")
    ab.set_defaults(func=_cmd_adapt_bn)

    st = sub.add_parser("study", help="the multi-task evidence: single-task models vs the tri-task model "
                                      "under every weighting strategy, fixed weights, random weights and "
                                      "a missing-label ablation, over seeds -> Delta m, cost, Pareto plot")
    st.add_argument("--out", default="benchmarks/mtl_study", help="report folder (default: %(default)s); "
                    "its runs/ keep every run, so an interrupted study resumes")
    st.add_argument("--data", default="data/study", help="rendered study data (default: %(default)s)")
    st.add_argument("--config", default=STUDY_CONFIG,
                    help="base recipe (default: %(default)s); input size and schedule come from below")
    st.add_argument("--size", type=_size, default=(160, 288), help="input HEIGHTxWIDTH (default: 160x288)")
    st.add_argument("--steps", type=positive_int, default=STUDY_STEPS,
                    help="steps per run (default: %(default)s; with the defaults under 2 h on 2 CPU cores)")
    st.add_argument("--batch-size", type=positive_int, default=8)
    st.add_argument("--seeds", type=positive_int, default=2, help="seeds per configuration (default: 2)")
    st.add_argument("--train-num", type=positive_int, default=800, help="training frames (default: 800)")
    st.add_argument("--val-num", type=positive_int, default=STUDY_VAL_NUM,
                    help="validation frames (default: %(default)s)")
    st.add_argument("--strategy", action="append", choices=DYNAMIC,
                    help="only these strategies (repeatable; default: all)")
    st.add_argument("--device", default="cpu", help="evaluation device (training picks the GPU itself)")
    st.set_defaults(func=_cmd_study)

    o = sub.add_parser("report", help="FPS / accuracy quantization report (markdown, JSON, PNG plots) "
                                      "from run folders of eval, bench and camera JSONs")
    o.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="folders whose top-level *.json are read (eval, bench, camera JSONs)")
    o.add_argument("--out", help="folder for report.md, report.json and plots (default: first RUN_DIR)")
    o.set_defaults(func=_cmd_report)

    d = sub.add_parser("demo", help="the main job: export, check, calibrate INT8, eval, engine (when "
                                    "TensorRT is here), bench, drive video, camera loop, report")
    d.add_argument("--out", default="runs/demo", help="run folder (default: %(default)s)")
    d.add_argument("--checkpoint", default=None,
                   help="checkpoint to deploy (default: models/tritask_mnv2.pt)")
    d.add_argument("--calib", default=None,
                   help="calibration set (default: calibration/synth_default.yaml, cached)")
    d.add_argument("--calib-images", type=positive_int, default=64,
                   help="INT8 calibration images (default: 64)")
    d.add_argument("--val-num", type=positive_int, default=100, help="val frames to evaluate (default: 100)")
    d.add_argument("--drive-frames", type=positive_int, default=300,
                   help="frames of the drive video at 30 FPS (default: 300)")
    d.add_argument("--bench-frames", type=positive_int, default=100,
                   help="frames timed per model (default: 100)")
    d.set_defaults(func=_cmd_demo)
    return p


def _backend_args(p: argparse.ArgumentParser, default_device: str) -> None:
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime", "tensorrt"),
                   help="default: from the model file's suffix")
    p.add_argument("--device", default=default_device, choices=("auto", "cpu", "cuda"))


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean bad input rather than a bug: one line, exit status 2."""
    import yaml

    try:
        from google.protobuf.message import DecodeError
    except ImportError:  # no protobuf installed, so nothing raises its errors
        DecodeError = ValueError
    # OSError: FileNotFoundError...
    return (ValueError, OSError, RuntimeError, ImportError, FloatingPointError, yaml.YAMLError, DecodeError)


def one_line(e: BaseException) -> str:
    """An error message on one line (some libraries raise pages)."""
    return " ".join(str(e).split()) or type(e).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command. A user error ends as one line on stderr and exit status 2 (argparse's
    usage errors too: returned, not raised); only bugs show a traceback."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse has printed the usage error (2) or the help (0)
        return e.code if isinstance(e.code, int) else 2
    try:
        if args.command not in PY38_COMMANDS:
            require_python310("this command")
        return args.func(args)
    except KeyboardInterrupt:
        print(f"edge-mtl {args.command}: interrupted", file=sys.stderr)
        return 130
    except user_errors() as e:
        print(f"edge-mtl {args.command}: error: {one_line(e)}{_extra_hint(e)}", file=sys.stderr)
        return 2


def _extra_hint(e: BaseException) -> str:
    """For a training package a runtime-only install lacks: how to get it."""
    name = getattr(e, "name", None) or ""
    if not isinstance(e, ModuleNotFoundError) or name.split(".")[0] not in TRAINING_PACKAGES:
        return ""
    return (f"; this command needs {name}, which the runtime-only install leaves out: "
            "pip install 'edge-mtl[train]' (-e '.[train]' in a checkout)")


if __name__ == "__main__":
    sys.exit(main())

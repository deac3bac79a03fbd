"""Score a model on the project's real material (``../shared/data``) in one pass -> JSON + contact sheet.

Sources, each optional (a missing or unreadable one is listed under ``skipped`` by name):

- ``real_dev/kitti_tracking`` (labelled): `edge_mtl.evaluate.evaluate` on ``kitti-tracking:PATH``
  (car AP@0.5, mAP, LiDAR depth AbsRel...), then a second pass at the *display* threshold
  (`PostprocessConfig`'s defaults: score 0.55, NMS IoU 0.45) that counts detections per frame
  against the labelled objects per frame (boxes of the classes we model, after the class map;
  ignore regions and DontCare not counted). The issue's target is at most `TARGET_RATIO` times
  as many detections.
- ``real_video/*.mp4`` (one source per clip) and ``bdd_frames/`` (a folder of frames): no labels,
  so a summary of what the model predicts: detections per frame at the display threshold, the
  predicted depth of the road just ahead (`road_patch`), and the fraction of the frame marked lane.
  Their focal length is unknown, so depth uses the assumed 64 degree camera (``fx = 0.8 x width``,
  ``focal_assumed: true``). At most ``max_frames`` frames per source, evenly spaced.

The road patch is rows 70-80 % of the frame's height and columns 40-60 % of its width: the road a
few metres ahead of the camera on KITTI and dash-cam frames, and above the bonnet and dashboard,
which in the BDD100K frames start at about 80 % of the height. For a flat road, the assumed focal,
the horizon at mid-height and a camera 1.5 m up, the patch's median row lies ``4.8 w / h`` metres
ahead (8.5 m for 16:9), given per source as ``flat_ground_m`` (a reference, not a label); on KITTI
the LiDAR's median depth in the same patch is given beside the prediction.

Every frame goes through the one pre-processing (the model's resize rule) and post-processing.
``OUT/real_check.json`` (schema ``edge_mtl.real_check/1``, strict JSON) and ``OUT/contact_sheet.png``
(one row per source, up to `SHEET_PER_SOURCE` frames each, with the camera overlay and the road
patch drawn) are written; `summary_lines` is what the command prints.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_mtl.data.checks import DatasetError
from edge_mtl.imageio import read_frames, video_frame_count
from edge_mtl.runtime.backend import Backend
from edge_mtl.runtime.postprocess import PostprocessConfig
from edge_mtl.types import DEFAULT_FOCAL_RATIO, Prediction

SCHEMA = "edge_mtl.real_check/1"
DEFAULT_SHARED = Path("..") / "shared" / "data"
KITTI_DIR = Path("real_dev") / "kitti_tracking"
VIDEO_DIR = Path("real_video")
FRAMES_DIR = Path("bdd_frames")
DISPLAY = PostprocessConfig()  # what the camera overlay shows
TARGET_RATIO = 1.5  # display-threshold detections per labelled object, at most (issue 12)
ROAD_ROWS = (0.70, 0.80)  # fraction of the frame height: the road patch's rows [start, end)
ROAD_COLS = (0.40, 0.60)  # fraction of the frame width: its columns [start, end)
FLAT_GROUND_MOUNT_M = 1.5  # camera height of the flat-ground reference (the synthetic camera's)
DEFAULT_MAX_FRAMES = 60
SHEET_PER_SOURCE = 4  # contact-sheet frames per source (evenly spaced among those sampled)
CELL = (270, 480)  # contact-sheet thumbnail (h, w); each frame fitted inside, aspect kept
LABEL_HEIGHT = 24  # the caption bar under each thumbnail


class BrokenModelError(RuntimeError):
    """The network gave non-finite outputs: a model fault, not a source's, so it stops the check."""


@dataclass(frozen=True)
class Source:
    """One piece of real material: ``kind`` is ``kitti-tracking``, ``video`` or ``images``."""

    name: str
    kind: str
    path: Path


@dataclass
class _Cell:
    """A contact-sheet thumbnail and its caption."""

    image: np.ndarray
    caption: str


@dataclass
class _Result:
    """What one source's pass collected."""

    per_frame: list[dict] = field(default_factory=list)
    cells: list[_Cell] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def find_sources(shared: str | os.PathLike) -> tuple[list[Source], list[dict]]:
    """The sources present under ``shared`` and the skipped ones (``{"source", "path", "reason"}``)."""
    root = Path(shared)
    found: list[Source] = []
    skipped: list[dict] = []

    def skip(name: str, path: Path, reason: str) -> None:
        skipped.append({"source": name, "path": str(path), "reason": reason})

    kitti = root / KITTI_DIR
    if kitti.is_dir():
        found.append(Source("kitti_tracking", "kitti-tracking", kitti))
    else:
        skip("kitti_tracking", kitti, "not found")
    videos = root / VIDEO_DIR
    clips = sorted(p for p in videos.glob("*.mp4") if p.is_file()) if videos.is_dir() else []
    found += [Source(p.stem, "video", p) for p in clips]
    if not clips:
        skip("real_video", videos, "no .mp4 files" if videos.is_dir() else "not found")
    frames = root / FRAMES_DIR
    if frames.is_dir():
        found.append(Source(FRAMES_DIR.name, "images", frames))
    else:
        skip(FRAMES_DIR.name, frames, "not found")
    return found, skipped


def road_patch(frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1): the road patch's rows ``r0:r1`` and columns ``c0:c1`` in a frame of
    ``frame_size`` (h, w): ``int(fraction * size)`` of `ROAD_ROWS` / `ROAD_COLS`, at least 1 px."""
    h, w = frame_size
    r0, c0 = int(ROAD_ROWS[0] * h), int(ROAD_COLS[0] * w)
    return r0, max(int(ROAD_ROWS[1] * h), r0 + 1), c0, max(int(ROAD_COLS[1] * w), c0 + 1)


def road_depth(depth: np.ndarray) -> float | None:
    """Median of the valid (> 0) depth in the road patch (metres), None when it holds none."""
    r0, r1, c0, c1 = road_patch(depth.shape[:2])
    values = depth[r0:r1, c0:c1]
    values = values[values > 0]
    return float(np.median(values)) if values.size else None


def flat_ground_depth(frame_size: tuple[int, int], mount: float = FLAT_GROUND_MOUNT_M) -> float:
    """Depth of the road patch's median row on a flat road seen by the assumed camera
    (``fx = 0.8 w``, horizon at mid-height, ``mount`` metres up): ``fx * mount / (v - h / 2)``."""
    h, w = frame_size
    r0, r1, _, _ = road_patch(frame_size)
    v = (r0 + r1 - 1) / 2 + 0.5  # the pixel centre of the median row
    return DEFAULT_FOCAL_RATIO * w * mount / (v - h / 2)


def sample_indices(count: int, limit: int | None) -> list[int]:
    """At most ``limit`` of ``range(count)``, evenly spaced, first and last included."""
    if count <= 0:
        return []
    if limit is None or limit >= count:
        return list(range(count))
    return sorted({round(v) for v in np.linspace(0, count - 1, limit)})


def stats(values: list[float | int | None]) -> dict[str, float | None]:
    """mean, median, p10, p90, min, max of the non-None values (all None when there are none)."""
    v = np.asarray([x for x in values if x is not None], np.float64)
    if v.size == 0:
        return dict.fromkeys(("mean", "median", "p10", "p90", "min", "max"))
    return {"mean": float(v.mean()), "median": float(np.median(v)), "p10": float(np.percentile(v, 10)),
            "p90": float(np.percentile(v, 90)), "min": float(v.min()), "max": float(v.max())}


def predict(runner: Backend, image: np.ndarray, fx: float | None,
            cfg: PostprocessConfig = DISPLAY) -> Prediction:
    """One BGR frame through the one pre-processing, the network and the one post-processing,
    depth in metres for a camera of focal ``fx`` (None: the assumed 64 degree camera)."""
    from edge_mtl.runtime.postprocess import postprocess
    from edge_mtl.runtime.preprocess import preprocess

    geometry = runner.info.geometry(image.shape[:2])
    raw = runner.infer(preprocess(image, runner.info.input_size, mode=runner.info.resize,
                                  input_format=runner.info.input_format)[None])
    broken = [k for k, v in raw.items() if not np.isfinite(v).all()]
    if broken:
        raise BrokenModelError(f"{runner.info.path}: non-finite {', '.join(broken)}; the model is broken")
    scale = runner.info.depth_scale(geometry, fx)
    return postprocess({k: v[0] for k, v in raw.items()}, geometry, cfg, scale)


def _frame_record(index: int, name: str, pred: Prediction, class_names: tuple[str, ...]) -> dict:
    counts = np.bincount(pred.classes, minlength=len(class_names)) if len(pred.classes) else \
        np.zeros(len(class_names), np.int64)
    return {"index": index, "name": name, "detections": len(pred.boxes),
            "by_class": {n: int(c) for n, c in zip(class_names, counts, strict=False)},
            "road_depth_m": road_depth(pred.depth), "lane_fraction": float(pred.lane.mean())}


def _cell(image: np.ndarray, pred: Prediction, caption: str, class_names: tuple[str, ...]) -> _Cell:
    """The frame with the camera overlay and the road patch drawn, fitted into a `CELL` thumbnail."""
    import cv2

    from edge_mtl.camera.overlay import draw_overlay

    drawn = draw_overlay(image.copy(), pred, None, class_names)
    r0, r1, c0, c1 = road_patch(image.shape[:2])
    thick = max(2, image.shape[1] // 320)
    cv2.rectangle(drawn, (c0, r0), (c1 - 1, r1 - 1), (0, 255, 255), thick)
    h, w = image.shape[:2]
    s = min(CELL[0] / h, CELL[1] / w)
    tw, th = max(1, round(w * s)), max(1, round(h * s))
    thumb = np.full((*CELL, 3), 32, np.uint8)
    y, x = (CELL[0] - th) // 2, (CELL[1] - tw) // 2
    thumb[y:y + th, x:x + tw] = cv2.resize(drawn, (tw, th), interpolation=cv2.INTER_AREA)
    return _Cell(thumb, caption)


def _caption(source: str, record: dict) -> str:
    depth = record["road_depth_m"]
    text = f"{source} #{record['index']}: {record['detections']} det"
    if "labelled" in record:
        text += f" / {record['labelled']} labelled"
    return text + ("" if depth is None else f", road {depth:.1f} m")


def contact_sheet(rows: list[list[_Cell]]) -> np.ndarray:
    """One row of thumbnails per source (``len(rows)`` x the longest row), each captioned below."""
    import cv2

    cols = max((len(r) for r in rows), default=0)
    ch, cw = CELL[0] + LABEL_HEIGHT, CELL[1]
    sheet = np.zeros((len(rows) * ch, cols * cw, 3), np.uint8)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            y, x = i * ch, j * cw
            sheet[y:y + CELL[0], x:x + cw] = cell.image
            cv2.putText(sheet, cell.caption, (x + 6, y + CELL[0] + LABEL_HEIGHT - 7), 0, 0.5,
                        (255, 255, 255), 1, cv2.LINE_AA)
    return sheet


def _kitti(runner: Backend, src: Source, progress: bool) -> _Result:
    """Evaluate (eval's own pass, low score threshold), then count at the display threshold."""
    from tqdm import tqdm

    from edge_mtl.data.formats import DataSpec, open_reader
    from edge_mtl.evaluate import evaluate, in_view

    spec = f"{src.kind}:{src.path}"
    reader = open_reader(DataSpec.parse(spec))
    names = runner.info.class_names
    result = _Result()
    skipped: list[dict] = []
    sheet = set(sample_indices(len(reader), SHEET_PER_SOURCE))
    for i in tqdm(range(len(reader)), desc=f"{src.name} (display)", unit="img", disable=not progress):
        try:
            sample = reader[i]
        except DatasetError as e:
            print(f"warning: real-check skips {e}", file=sys.stderr)
            skipped.append({"file": reader.source(i), "reason": str(e)})
            continue
        sample = in_view(sample, runner.info.geometry(sample.image.shape[:2]))
        pred = predict(runner, sample.image, sample.camera.fx)
        record = _frame_record(i, sample.name, pred, names)
        record["labelled"] = 0 if sample.boxes is None else len(sample.boxes)
        record["ignore_regions"] = 0 if sample.ignore is None else len(sample.ignore)
        record["road_depth_lidar_m"] = None if sample.depth is None else road_depth(sample.depth)
        record["focal_px"] = float(sample.camera.fx)
        result.per_frame.append(record)
        if i in sheet:
            result.cells.append(_cell(sample.image, pred, _caption(src.name, record), names))
    if not result.per_frame:
        raise DatasetError(f"{spec}: none of the {len(reader)} frames could be read; "
                           f"first: {skipped[0]['reason'] if skipped else 'no frames'}")
    ev = evaluate(runner, spec, progress=progress)
    det, depth = ev["metrics"].get("det", {}), ev["metrics"].get("depth", {})
    frames = result.per_frame
    total_det, total_gt = sum(r["detections"] for r in frames), sum(r["labelled"] for r in frames)
    ratio = total_det / total_gt if total_gt else None
    result.extra = {
        "labelled": True, "spec": spec, "skipped_frames": skipped,
        "car_ap50": (det.get("ap50_per_class") or {}).get("car"), "map50": det.get("map50"),
        "map": det.get("map"), "depth_abs_rel": depth.get("abs_rel"), "depth_rmse": depth.get("rmse"),
        "depth_delta1": depth.get("delta1"),
        "labelled_per_frame": stats([r["labelled"] for r in frames]),
        "detections_vs_labelled": ratio, "target_max_ratio": TARGET_RATIO,
        "within_target": None if ratio is None else ratio <= TARGET_RATIO,
        "road_depth_lidar_m": stats([r["road_depth_lidar_m"] for r in frames]),
        "eval": {k: ev[k] for k in ("schema", "data", "metrics", "seconds")},
    }
    return result


def _unlabelled(runner: Backend, src: Source, limit: int | None, progress: bool) -> _Result:
    """Detections, road-patch depth and lane fraction per sampled frame of a clip or a folder."""
    from tqdm import tqdm

    from edge_mtl.camera.sources import ImageFolderSource

    names = runner.info.class_names
    result = _Result()
    if src.kind == "video":
        count = video_frame_count(src.path)
        wanted = sample_indices(count, limit)
        frames = ((i, image) for i, _, image in read_frames(src.path, indices=wanted, kinds=("video",)))
        label = lambda i: f"frame {i}"  # noqa: E731
        corrupt: list[str] = []
    else:
        folder = ImageFolderSource.from_folder(src.path)
        count = len(folder.paths)
        wanted = sample_indices(count, limit)
        chosen = ImageFolderSource([folder.paths[i] for i in wanted], str(src.path))
        frames = ((wanted[f.index], f.image) for f in chosen)
        label = lambda i: folder.paths[i].name  # noqa: E731
        corrupt = chosen.corrupt
    if not wanted:
        raise ValueError(f"{src.path}: no frames")
    sheet = {wanted[k] for k in sample_indices(len(wanted), SHEET_PER_SOURCE)}
    size: tuple[int, int] | None = None
    for i, image in tqdm(frames, total=len(wanted), desc=src.name, unit="img", disable=not progress):
        size = size or image.shape[:2]
        pred = predict(runner, image, None)
        record = _frame_record(i, label(i), pred, names)
        record["focal_px"] = DEFAULT_FOCAL_RATIO * image.shape[1]
        result.per_frame.append(record)
        if i in sheet:
            result.cells.append(_cell(image, pred, _caption(src.name, record), names))
    if not result.per_frame:
        raise ValueError(f"{src.path}: none of the {len(wanted)} sampled frames could be read")
    result.extra = {"labelled": False, "frames_in_source": count, "corrupt_frames": list(corrupt),
                    "frame_size": list(size), "flat_ground_m": flat_ground_depth(size)}
    return result


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def real_check(model: str | os.PathLike | Backend, out: str | os.PathLike,
               shared: str | os.PathLike = DEFAULT_SHARED, backend: str = "auto", device: str = "cpu",
               max_frames: int | None = DEFAULT_MAX_FRAMES, progress: bool = True,
               log: Callable[[str], object] | None = None) -> dict:
    """Run every source found under ``shared`` through ``model`` (a path opened with ``backend``
    on ``device``, or an open backend); write ``out/real_check.json`` and ``out/contact_sheet.png``
    and return the JSON's content. FileNotFoundError when no source is there at all; RuntimeError
    when none of those found could be read."""
    import cv2

    from edge_mtl.files import to_json, write_atomic
    from edge_mtl.runtime.backend import open_backend

    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    log = log or (lambda msg: print(msg, file=sys.stderr))
    root = Path(shared).resolve()
    sources, skipped = find_sources(root)
    if not sources:
        raise FileNotFoundError(f"no real material under {root}: none of {KITTI_DIR}/, {VIDEO_DIR}/*.mp4, "
                                f"{FRAMES_DIR}/ found (--shared names the folder that holds them)")
    start = time.perf_counter()
    runner = model if isinstance(model, Backend) else open_backend(model, backend, device)
    try:
        results: dict[str, dict] = {}
        rows: list[list[_Cell]] = []
        for src in sources:
            try:
                r = _kitti(runner, src, progress) if src.kind == "kitti-tracking" else \
                    _unlabelled(runner, src, max_frames, progress)
            except BrokenModelError:
                raise
            except (DatasetError, ValueError, OSError, RuntimeError) as e:
                log(f"real-check: skipping {src.name} ({src.path}): {_one_line(e)}")
                skipped.append({"source": src.name, "path": str(src.path), "reason": _one_line(e)})
                continue
            frames = r.per_frame
            results[src.name] = {
                "kind": src.kind, "path": str(src.path), "frames": len(frames),
                "focal_assumed": src.kind != "kitti-tracking",
                "detections_per_frame": stats([f["detections"] for f in frames]),
                "detections_by_class": {n: sum(f["by_class"][n] for f in frames)
                                        for n in runner.info.class_names},
                "road_depth_m": stats([f["road_depth_m"] for f in frames]),
                "lane_fraction": stats([f["lane_fraction"] for f in frames]),
                **r.extra, "per_frame": frames}
            if r.cells:
                rows.append(r.cells)
        if not results:
            raise RuntimeError(f"none of the sources under {root} could be read: "
                               + "; ".join(f"{s['source']}: {s['reason']}" for s in skipped))
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        sheet_path = out / "contact_sheet.png"
        ok, png = cv2.imencode(".png", contact_sheet(rows))
        if not ok:
            raise RuntimeError(f"cannot encode {sheet_path}")
        write_atomic(sheet_path, png.tobytes())
        result = {
            "schema": SCHEMA, "model": runner.info.to_dict(), **runner.describe(),
            "input_size": list(runner.info.input_size), "shared": str(root), "max_frames": max_frames,
            "display_threshold": DISPLAY.score_threshold,
            "road_patch": {"rows": list(ROAD_ROWS), "cols": list(ROAD_COLS),
                           "what": "median predicted depth (m) in rows 70-80 % of the frame height, "
                                   "columns 40-60 % of its width: the road a few metres ahead"},
            "focal_note": "kitti-tracking: fx from the calibration (P2); others: unknown, the assumed "
                          "64 degree camera (fx = 0.8 x width)",
            "sources": results, "skipped": skipped,
            "contact_sheet": str(sheet_path), "seconds": round(time.perf_counter() - start, 2)}
        json_path = out / "real_check.json"
        write_atomic(json_path, to_json(result, indent=2) + "\n")
        result["json"] = str(json_path)
        return result
    finally:
        if runner is not model:
            runner.close()


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def summary_lines(result: dict) -> list[str]:
    """The short summary the command prints: a few lines per source, the skipped ones, the files."""
    lines = [f"real-check: {result['model']['path']} on {result['backend']} {result['device']} "
             f"({result['precision']}); detections counted at score >= {result['display_threshold']:g}"]
    for name, s in result["sources"].items():
        det, road, lane = s["detections_per_frame"], s["road_depth_m"], s["lane_fraction"]
        if s["labelled"]:
            gt = s["labelled_per_frame"]
            verdict = "n/a" if s["within_target"] is None else ("ok" if s["within_target"] else "OVER")
            lines += [f"{name}: {s['frames']} frames; car AP@0.5 {_fmt(s['car_ap50'], '.3f')}, mAP@0.5 "
                      f"{_fmt(s['map50'], '.3f')}, depth AbsRel {_fmt(s['depth_abs_rel'], '.3f')}",
                      f"  detections/frame {_fmt(det['mean'], '.1f')} vs {_fmt(gt['mean'], '.1f')} labelled: "
                      f"{_fmt(s['detections_vs_labelled'], '.2f')}x (target <= {s['target_max_ratio']:g}x: "
                      f"{verdict})"]
            reference = f"LiDAR {_fmt(s['road_depth_lidar_m']['median'], '.1f')} m"
        else:
            lines += [f"{name}: {s['frames']} of {s['frames_in_source']} frames; detections/frame mean "
                      f"{_fmt(det['mean'], '.1f')}, median {_fmt(det['median'], '.0f')}, "
                      f"max {_fmt(det['max'], '.0f')}"]
            reference = f"flat-ground reference {_fmt(s['flat_ground_m'], '.1f')} m; focal assumed"
        lines.append(f"  road ahead {_fmt(road['median'], '.1f')} m median (p10-p90 "
                     f"{_fmt(road['p10'], '.1f')}-{_fmt(road['p90'], '.1f')}; {reference}); "
                     f"lane {_fmt(100 * lane['mean'], '.1f')} % of the frame")
    lines += [f"skipped {s['source']} ({s['path']}): {s['reason']}" for s in result["skipped"]]
    lines.append(f"wrote {result['json']} and {result['contact_sheet']}")
    return lines

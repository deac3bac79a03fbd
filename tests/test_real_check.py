"""`edge-mtl real-check`: KITTI tracking eval + display counts, label-free video / frame summaries,
the contact sheet, skipped sources, and a run on the real ../shared/data when it is there."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_mtl.cli import main
from edge_mtl.data.formats.kitti import DEFAULT_CLASS_MAP
from edge_mtl.paths import DEFAULT_CHECKPOINT
from edge_mtl.real_check import CELL, LABEL_HEIGHT, SCHEMA, real_check, sample_indices
from edge_mtl.runtime.backend import open_backend
from edge_mtl.runtime.postprocess import PostprocessConfig, postprocess
from edge_mtl.runtime.preprocess import preprocess
from tests.data.formats.make_kitti import car_label, other_labels, write_kitti_tracking
from tests.helpers import SHARED_DATA

KITTI_FRAMES, VIDEO_FRAMES, MAX_FRAMES = 3, 10, 4
RELEASED = DEFAULT_CHECKPOINT


def _road_scene(h: int, w: int, k: int) -> np.ndarray:
    """A frame with sky, a road and a moving bright block (frame ``k``)."""
    image = np.zeros((h, w, 3), np.uint8)
    image[: h // 2] = (200, 150, 90)
    image[h // 2:] = (70, 70, 70)
    x = 10 + 8 * k
    image[h // 2 - 12: h // 2 + 6, x: x + 24] = (40, 40, 200)
    image[int(0.75 * h):, w // 2 - 2: w // 2 + 2] = 255
    return image


def _write_video(path: Path, frames: int, size: tuple[int, int] = (96, 160)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (size[1], size[0]))
    assert writer.isOpened()
    for k in range(frames):
        writer.write(_road_scene(*size, k))
    writer.release()
    return path


def _write_jpgs(folder: Path, count: int = 2, size: tuple[int, int] = (112, 200)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        cv2.imwrite(str(folder / f"frame{k}.jpg"), _road_scene(*size, k))
    return folder


def _fixture_labelled() -> list[int]:
    """Objects of a modelled class per frame, as write_kitti_tracking writes them (the last frame
    of a sequence has no label lines)."""
    per_frame = []
    for i in range(KITTI_FRAMES):
        objects = [car_label(i, 128, 64), *other_labels(128, 64)] if i < KITTI_FRAMES - 1 else []
        per_frame.append(sum(DEFAULT_CLASS_MAP.get(o[0]) in ("car", "truck", "pedestrian") for o in objects))
    return per_frame


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shared") / "data"
    write_kitti_tracking(root / "real_dev" / "kitti_tracking", sequences=("0000",), frames=KITTI_FRAMES)
    _write_video(root / "real_video" / "clip.mp4", VIDEO_FRAMES)
    _write_jpgs(root / "bdd_frames")
    return root


@pytest.fixture(scope="module")
def run(shared, tiny_checkpoint, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("rc_out")
    result = real_check(tiny_checkpoint, out, shared=shared, max_frames=MAX_FRAMES, progress=False)
    return result, out


def _strict(path: Path) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-strict JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_json_fields_and_counts(run):
    out = run[1]
    data = _strict(out / "real_check.json")
    assert data["schema"] == SCHEMA and data["backend"] == "torch" and data["skipped"] == []
    assert list(data["sources"]) == ["kitti_tracking", "clip", "bdd_frames"]
    assert data["road_patch"]["rows"] == [0.7, 0.8] and data["road_patch"]["cols"] == [0.4, 0.6]

    kitti = data["sources"]["kitti_tracking"]
    assert kitti["labelled"] is True and kitti["focal_assumed"] is False and kitti["frames"] == KITTI_FRAMES
    labelled = [f["labelled"] for f in kitti["per_frame"]]
    assert labelled == _fixture_labelled() == [2, 2, 0]
    total = sum(f["detections"] for f in kitti["per_frame"])
    assert kitti["detections_vs_labelled"] == pytest.approx(total / sum(labelled))
    assert kitti["within_target"] == (total / sum(labelled) <= 1.5)
    assert kitti["eval"]["data"]["num_samples"] == KITTI_FRAMES
    det = kitti["eval"]["metrics"]["det"]
    assert kitti["car_ap50"] == det["ap50_per_class"].get("car") and kitti["map50"] == det["map50"]
    assert kitti["depth_abs_rel"] == kitti["eval"]["metrics"]["depth"]["abs_rel"]
    assert kitti["road_depth_lidar_m"]["median"] is not None  # the fixture's Velodyne road points

    clip = data["sources"]["clip"]
    assert clip["labelled"] is False and clip["focal_assumed"] is True
    assert clip["frames"] == MAX_FRAMES and clip["frames_in_source"] == VIDEO_FRAMES
    assert [f["index"] for f in clip["per_frame"]] == sample_indices(VIDEO_FRAMES, MAX_FRAMES) == [0, 3, 6, 9]
    assert clip["frame_size"] == [96, 160] and clip["per_frame"][0]["focal_px"] == pytest.approx(0.8 * 160)
    frames = data["sources"]["bdd_frames"]
    assert frames["frames"] == frames["frames_in_source"] == 2
    assert [f["name"] for f in frames["per_frame"]] == ["frame0.jpg", "frame1.jpg"]
    for s in data["sources"].values():
        counts = [f["detections"] for f in s["per_frame"]]
        assert s["detections_per_frame"]["max"] == max(counts)
        assert s["detections_per_frame"]["mean"] == pytest.approx(np.mean(counts))
        assert sum(s["detections_by_class"].values()) == sum(counts)
        assert all(0.0 <= f["lane_fraction"] <= 1.0 for f in s["per_frame"])


def _video_frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    for i in range(max(indices) + 1):
        ok, image = cap.read()
        assert ok
        if i in indices:
            frames.append(image)
    cap.release()
    return frames


def test_road_patch_depth_is_the_median_of_the_documented_patch(run, shared, tiny_checkpoint):
    """Recomputed here: rows 70-80 % of the height, columns 40-60 % of the width, of the depth
    predicted with the assumed focal (0.8 x width); detections at score 0.55, NMS IoU 0.45."""
    data = run[0]
    runner = open_backend(tiny_checkpoint, device="cpu")
    clip = data["sources"]["clip"]
    jpgs = sorted((shared / "bdd_frames").glob("*.jpg"))
    clip_frames = _video_frames(shared / "real_video" / "clip.mp4", [f["index"] for f in clip["per_frame"]])
    cases = [(clip, clip_frames), (data["sources"]["bdd_frames"], [cv2.imread(str(p)) for p in jpgs])]
    for source, images in cases:
        expected = []
        for record, image in zip(source["per_frame"], images, strict=True):
            h, w = image.shape[:2]
            geometry = runner.info.geometry((h, w))
            raw = runner.infer(preprocess(image, runner.info.input_size, mode=runner.info.resize)[None])
            scale = runner.info.depth_scale(geometry, 0.8 * w)  # the assumed 64 degree camera
            display = PostprocessConfig(score_threshold=0.55, iou_threshold=0.45)
            pred = postprocess({k: v[0] for k, v in raw.items()}, geometry, display, scale)
            patch = pred.depth[int(0.7 * h):int(0.8 * h), int(0.4 * w):int(0.6 * w)]
            assert record["road_depth_m"] == pytest.approx(float(np.median(patch)), rel=1e-6)
            assert record["detections"] == len(pred.boxes)
            assert record["lane_fraction"] == pytest.approx(float(pred.lane.mean()))
            expected.append(float(np.median(patch)))
        assert source["road_depth_m"]["median"] == pytest.approx(float(np.median(expected)), rel=1e-6)
        assert source["road_depth_m"]["min"] == pytest.approx(min(expected), rel=1e-6)
    runner.close()


def test_contact_sheet_grid(run):
    result, out = run
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and result["contact_sheet"] == str(out / "contact_sheet.png")
    # one row per source (kitti 3 frames, clip 4 of 4 sampled, bdd 2), as many columns as the longest
    assert sheet.shape == (3 * (CELL[0] + LABEL_HEIGHT), 4 * CELL[1], 3)
    assert sheet[CELL[0] + LABEL_HEIGHT:, :CELL[1]].any()  # the clip's first thumbnail is drawn
    assert not sheet[2 * (CELL[0] + LABEL_HEIGHT):, 2 * CELL[1]:].any()  # bdd has only 2 cells


def test_missing_sources_are_skipped_by_name(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    """Only bdd_frames there, plus an mp4 that is not a video: the rest is skipped by name; the
    default --shared is ../shared/data from the current directory."""
    _write_jpgs(tmp_path / "shared" / "data" / "bdd_frames", count=1)
    (tmp_path / "shared" / "data" / "real_video").mkdir()
    (tmp_path / "shared" / "data" / "real_video" / "broken.mp4").write_text("not a video")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert main(["real-check", tiny_checkpoint, "--out", "out"]) == 0
    printed = capsys.readouterr()
    data = _strict(tmp_path / "work" / "out" / "real_check.json")
    assert list(data["sources"]) == ["bdd_frames"] and data["sources"]["bdd_frames"]["frames"] == 1
    assert {s["source"]: s["reason"] for s in data["skipped"]}["kitti_tracking"] == "not found"
    assert [s["source"] for s in data["skipped"]] == ["kitti_tracking", "broken"]
    assert "skipped kitti_tracking" in printed.out and "skipped broken" in printed.out
    assert "bdd_frames: 1 of 1 frames" in printed.out
    sheet = cv2.imread(str(tmp_path / "work" / "out" / "contact_sheet.png"))
    assert sheet.shape == (CELL[0] + LABEL_HEIGHT, CELL[1], 3)


def test_nothing_found_exits_2(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["real-check", tiny_checkpoint, "--shared", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edge-mtl real-check: error: no real material under")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not (SHARED_DATA.is_dir() and RELEASED.is_file()),
                    reason="../shared/data or the released checkpoint absent")
def test_real_shared_data(tmp_path, capsys):
    assert main(["real-check", str(RELEASED), "--shared", str(SHARED_DATA), "--out", str(tmp_path),
                 "--max-frames", "2"]) == 0
    assert "kitti_tracking: 2 frames; car AP@0.5" in capsys.readouterr().out
    data = _strict(tmp_path / "real_check.json")
    assert data["skipped"] == [] and data["input_size"] == [384, 640]
    videos = {p.stem for p in (SHARED_DATA / "real_video").glob("*.mp4")}
    assert set(data["sources"]) == {"kitti_tracking", "bdd_frames", *videos}
    kitti = data["sources"]["kitti_tracking"]
    assert kitti["frames"] == 2 and kitti["labelled_per_frame"]["min"] > 0
    for name, s in data["sources"].items():
        assert s["frames"] == 2 and s["road_depth_m"]["median"] > 0, name
        assert s["focal_assumed"] is (name != "kitti_tracking")
    sheet = cv2.imread(str(tmp_path / "contact_sheet.png"))
    assert sheet.shape[0] == len(data["sources"]) * (CELL[0] + LABEL_HEIGHT)

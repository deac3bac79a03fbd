from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from edge_mtl.camera.sources import (
    ImageFolderSource,
    LiveSource,
    MemorySource,
    SourceSpec,
    VideoFileSource,
    csi_pipeline,
    open_capture,
    open_source,
    opencv_has_gstreamer,
    parse_source,
)
from edge_mtl.runtime.preprocess import to_bgr

CSI0 = ("nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 ! "
        "nvvidconv flip-method=0 ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
        "appsink drop=1 max-buffers=1")


class FakeCapture:
    """Delivers ``frames`` frames (pixel value = sequence number), then fails; ``period`` s apart."""

    def __init__(self, frames: int = 10**9, period: float = 0.001, start: int = 0):
        self.left, self.period, self.n = frames, period, start
        self.released = False

    def read(self):
        if self.left <= 0:
            return False, None
        time.sleep(self.period)
        self.left -= 1
        self.n += 1
        return True, np.full((6, 8), self.n % 256, np.uint8)  # gray: read() must convert it

    def release(self):
        self.released = True


def write_video(path, frames: int, size=(160, 96)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 40 * i, np.uint8))
    writer.release()


@pytest.mark.parametrize("value,kind,target,api", [
    ("0", "webcam", 0, "ANY"),
    (1, "webcam", 1, "ANY"),
    ("/dev/video2", "v4l2", "/dev/video2", "V4L2"),
    ("v4l2:///dev/video1", "v4l2", "/dev/video1", "V4L2"),
    ("rtsp://10.0.0.5:8554/cam", "stream", "rtsp://10.0.0.5:8554/cam", "ANY"),
    ("http://cam.local/video.mjpg", "stream", "http://cam.local/video.mjpg", "ANY"),
    ("https://example.com/live.m3u8", "stream", "https://example.com/live.m3u8", "ANY"),
    ("videotestsrc ! videoconvert ! appsink", "gstreamer", "videotestsrc ! videoconvert ! appsink",
     "GSTREAMER"),
    ("csi://0", "csi", CSI0, "GSTREAMER"),
])
def test_uri_kinds_map_to_their_opener(value, kind, target, api):
    spec = parse_source(value)
    assert (spec.kind, spec.target, spec.api) == (kind, target, api)
    assert spec.live


def test_csi_expansion_takes_size_rate_and_flip():
    spec = parse_source("csi://1", width=1920, height=1080, fps=60, flip_method=2)
    assert spec.target == csi_pipeline(1, 1920, 1080, 60, 2)
    assert spec.target.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1920,"
                                  "height=1080,framerate=60/1 ! nvvidconv flip-method=2 ! ")
    assert spec.target.endswith("appsink drop=1 max-buffers=1")
    assert (spec.width, spec.height, spec.fps) == (1920, 1080, 60)
    with pytest.raises(ValueError, match="csi://N"):
        parse_source("csi://left")
    with pytest.raises(ValueError, match="flip method"):
        csi_pipeline(0, flip_method=9)
    with pytest.raises(ValueError, match="fps"):
        csi_pipeline(0, fps=0)


def test_paths_map_to_folder_image_and_file(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "clip.mp4").write_bytes(b"")
    assert parse_source(tmp_path).kind == "folder"
    assert parse_source(tmp_path / "a.png").kind == "image"
    assert parse_source(tmp_path / "clip.mp4").kind == "file"
    assert parse_source(f"file://{tmp_path / 'clip.mp4'}").target == str(tmp_path / "clip.mp4")
    assert not parse_source(tmp_path).live
    with pytest.raises(FileNotFoundError, match=r"nope\.mp4"):
        parse_source(tmp_path / "nope.mp4")


def test_open_source_dispatches_each_kind(tmp_path):
    opened: list[SourceSpec] = []

    def opener(spec):
        opened.append(spec)
        return FakeCapture(frames=0)

    write_video(tmp_path / "v.mp4", 1)
    for value in ("0", "/dev/video0", "csi://0", "rtsp://h/x", "a ! appsink"):
        src = open_source(value, opener=opener, max_attempts=0)
        assert isinstance(src, LiveSource) and src.live
        src.close()
    assert [s.kind for s in opened] == ["webcam", "v4l2", "csi", "stream", "gstreamer"]
    assert opened[2].target == CSI0
    with open_source(tmp_path / "v.mp4", opener=opener) as src:
        assert isinstance(src, VideoFileSource) and not src.live
    cv2.imwrite(str(tmp_path / "f.png"), np.zeros((4, 4, 3), np.uint8))
    assert isinstance(open_source(tmp_path), ImageFolderSource)
    assert isinstance(open_source(tmp_path / "f.png"), ImageFolderSource)
    mem = MemorySource([np.zeros((4, 4, 3), np.uint8)])
    assert open_source(mem) is mem


@pytest.mark.skipif(opencv_has_gstreamer(), reason="this OpenCV has GStreamer")
def test_gstreamer_source_without_gstreamer_says_so():
    with pytest.raises(RuntimeError, match="GStreamer"):
        open_capture(parse_source("csi://0"))


def test_folder_reads_in_natural_order_and_converts_to_bgr(tmp_path):
    cv2.imwrite(str(tmp_path / "frame10.png"), np.full((20, 30, 3), 10, np.uint8))
    cv2.imwrite(str(tmp_path / "frame2.png"), np.full((12, 16), 2, np.uint8))  # gray, other size
    bgra = np.zeros((20, 30, 4), np.uint8)
    bgra[..., :3], bgra[..., 3] = (1, 2, 3), 128
    cv2.imwrite(str(tmp_path / "frame1.png"), bgra)
    (tmp_path / "notes.txt").write_text("not an image")
    with open_source(tmp_path) as src:
        frames = list(src)
        assert src.read() is None and src.dropped == 0
    assert [f.index for f in frames] == [0, 1, 2]
    assert all(f.image.dtype == np.uint8 and f.image.ndim == 3 and f.image.shape[2] == 3 for f in frames)
    assert frames[0].image[0, 0].tolist() == [1, 2, 3]  # BGRA -> BGR, alpha dropped
    assert frames[1].image.shape == (12, 16, 3) and frames[1].image[0, 0].tolist() == [2, 2, 2]
    assert frames[2].image[0, 0].tolist() == [10, 10, 10]


def test_empty_folder_and_unreadable_image_name_the_path(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        open_source(tmp_path)
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"bad\.jpg"):
        open_source(tmp_path).read()


def test_to_bgr_conversions():
    assert to_bgr(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5, 3)
    assert to_bgr(np.full((4, 5), 0x1234, np.uint16))[0, 0].tolist() == [0x12] * 3
    bgr = np.zeros((4, 5, 3), np.uint8)
    assert to_bgr(bgr) is bgr
    with pytest.raises(ValueError, match="dtype float32"):
        to_bgr(np.zeros((4, 5, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        to_bgr(np.zeros((4, 5, 2), np.uint8))


def test_file_source_reads_every_frame_then_ends(tmp_path):
    write_video(tmp_path / "clip.mp4", 4)
    with open_source(tmp_path / "clip.mp4") as src:
        frames = list(src)
        assert src.read() is None
    assert [f.index for f in frames] == [0, 1, 2, 3] and src.dropped == 0
    assert frames[0].image.shape == (96, 160, 3)


def test_live_source_keeps_the_newest_frame_and_counts_drops():
    src = LiveSource(parse_source("0"), lambda spec: FakeCapture(period=0.001), log=lambda m: None)
    try:
        got = []
        for _ in range(5):
            time.sleep(0.03)  # slower than the camera: frames pile up and all but the newest go
            got.append(src.read())
    finally:
        src.close()
    indices = [f.index for f in got]
    assert indices == sorted(set(indices)) and max(np.diff(indices)) > 1
    assert src.dropped > 0
    pending = src._latest is not None
    assert src.captured == len(got) + src.dropped + pending
    assert got[-1].image.shape == (6, 8, 3)  # gray camera frame converted


def test_live_source_reopens_with_exponential_backoff():
    caps = iter([FakeCapture(frames=2), RuntimeError("gone"), RuntimeError("still gone"),
                 FakeCapture(start=100)])

    def opener(spec):
        item = next(caps)
        if isinstance(item, Exception):
            raise item
        return item

    delays: list[float] = []
    first_read = threading.Event()

    def sleep(delay: float) -> None:  # the reopen waits until the test has its first frame
        delays.append(delay)
        first_read.wait(5)

    src = LiveSource(parse_source("rtsp://cam/x"), opener, sleep=sleep, log=lambda m: None)
    try:
        first = src.read()
        first_read.set()
        deadline = time.monotonic() + 5
        after = src.read()
        while after.image[0, 0, 0] < 100 and time.monotonic() < deadline:
            after = src.read()  # until a frame from the reopened capture arrives
    finally:
        src.close()
    assert first.index in (0, 1) and first.image[0, 0, 0] in (1, 2)
    assert delays == [0.5, 1.0, 2.0] and src.reopens == 1
    assert after.image[0, 0, 0] > 100 and after.index >= 2


def opener_then_error(caps: list, message: str):
    """An opener that hands out ``caps`` one by one, then fails with ``message``."""
    def opener(spec):
        if caps:
            return caps.pop()
        raise RuntimeError(message)
    return opener


def test_live_source_gives_up_with_a_clear_error():
    opener = opener_then_error([FakeCapture(frames=0)], "no device")
    delays: list[float] = []
    src = LiveSource(parse_source("/dev/video7"), opener, max_attempts=3, backoff_max=1.5,
                     sleep=delays.append, log=lambda m: None)
    with pytest.raises(RuntimeError, match=r"/dev/video7.*3 attempts.*no device"):
        src.read()
    src.close()
    assert delays == [0.5, 1.0, 1.5]


def test_close_stops_the_capture_thread():
    src = LiveSource(parse_source("0"), lambda spec: FakeCapture(), log=lambda m: None)
    src.read()
    src.close()
    assert not any(t.name == "capture 0" and t.is_alive() for t in threading.enumerate())
    assert src.read() is None


def test_read_waits_out_the_back_off_and_reports_the_real_error():
    """read_timeout shorter than the whole back-off: the reopen error, not a timeout, surfaces."""
    opener = opener_then_error([FakeCapture(frames=1)], "device gone")
    src = LiveSource(parse_source("/dev/video9"), opener, max_attempts=3, backoff=0.05,
                     read_timeout=0.06, log=lambda m: None)
    try:
        assert src.read() is not None
        with pytest.raises(RuntimeError, match=r"3 attempts.*device gone"):
            src.read()
    finally:
        src.close()


def test_folder_skips_corrupt_frames_with_a_warning_naming_each(tmp_path):
    cv2.imwrite(str(tmp_path / "0.png"), np.full((12, 16), 7, np.uint8))  # gray: IMREAD_UNCHANGED kept
    jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 256, (40, 60, 3), np.uint8))[1].tobytes()
    (tmp_path / "1.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # cv2.imread decodes this, partly grey
    png = (tmp_path / "0.png").read_bytes()
    (tmp_path / "2.png").write_bytes(png[:-12])  # no IEND chunk
    cv2.imwrite(str(tmp_path / "3.png"), np.full((12, 16, 3), 9, np.uint8))
    warnings: list[str] = []
    src = open_source(tmp_path, log=warnings.append)
    frames = list(src)
    assert [f.index for f in frames] == [0, 3]  # the gap says which were skipped
    assert frames[0].image.shape == (12, 16, 3) and frames[0].image[0, 0].tolist() == [7, 7, 7]
    assert src.corrupt == [str(tmp_path / "1.jpg"), str(tmp_path / "2.png")]
    assert len(warnings) == 2
    assert "1.jpg: truncated JPEG" in warnings[0] and "2.png: truncated PNG" in warnings[1]


def test_a_folder_whose_every_frame_is_corrupt_is_an_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    (tmp_path / "b.png").write_bytes(b"")
    src = open_source(tmp_path, log=lambda msg: None)
    with pytest.raises(ValueError, match=r"all 2 images are corrupt \(first: .*a\.jpg: truncated JPEG"):
        src.read()
    assert src.corrupt == [str(tmp_path / "a.jpg"), str(tmp_path / "b.png")]

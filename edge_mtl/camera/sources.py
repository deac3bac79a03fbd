"""Frame sources for the camera loop, opened from a URI or value.

``parse_source`` maps a value to a `SourceSpec` (what to open and how):

==========================================  ===========  ==========================================
value                                       kind         opened with
==========================================  ===========  ==========================================
``0``, ``1`` (an int or a digit string)     webcam       ``cv2.VideoCapture(index)``
``/dev/videoN``, ``v4l2:///dev/videoN``     v4l2         ``cv2.VideoCapture(path, CAP_V4L2)``
``csi://N``                                 csi          `csi_pipeline` (nvarguscamerasrc), GStreamer
a string containing ``!``                   gstreamer    ``cv2.VideoCapture(pipeline, CAP_GSTREAMER)``
``rtsp://``, ``rtmp://``, ``http(s)://``…   stream       ``cv2.VideoCapture(url)``
a folder                                    folder       its images, in natural sort order
an image file                               image        that one image
any other file (``file://`` optional)       file         ``cv2.VideoCapture(path)``
==========================================  ===========  ==========================================

Live kinds (webcam, v4l2, csi, gstreamer, stream) are read on a capture thread that keeps only
the newest frame: a frame not read before the next one arrives is dropped and counted, so the loop
always works on the freshest image. A live source that stops delivering is reopened with
exponential back-off (bounded attempts, then `read` raises). Files and folders are read in
order, in the caller's thread, with no drops; a corrupt image in a folder (truncated, say) is
skipped with a warning and listed in ``corrupt``. Every frame leaves `FrameSource.read` as BGR uint8
(`edge_mtl.runtime.preprocess.to_bgr`), whatever its channel count.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_mtl.imageio import CorruptImageError, read_image
from edge_mtl.runtime.preprocess import to_bgr

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
LIVE_KINDS = ("webcam", "v4l2", "csi", "gstreamer", "stream")
CSI_DEFAULTS = {"width": 1280, "height": 720, "fps": 30}


def csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30,
                 flip_method: int = 0) -> str:
    """The GStreamer pipeline for a Jetson CSI camera (as in NVIDIA's and JetsonHacks' samples).

    ``nvarguscamerasrc`` captures through the ISP into NVMM memory, ``nvvidconv`` flips and leaves
    NVMM as BGRx, ``videoconvert`` drops the x, and ``appsink drop=1 max-buffers=1`` keeps only
    the newest frame. ``width``/``height``/``fps`` must be a mode the sensor offers
    (``gst-inspect-1.0 nvarguscamerasrc`` / the sensor's mode table); ``flip_method`` 0-7 as in
    ``nvvidconv`` (2 = rotate 180°).
    """
    if not (isinstance(sensor_id, int) and sensor_id >= 0):
        raise ValueError(f"csi camera: sensor id must be an integer >= 0, got {sensor_id!r}")
    for name, value in (("width", width), ("height", height), ("fps", fps)):
        if not (isinstance(value, int) and value > 0):
            raise ValueError(f"csi camera: {name} must be a positive integer, got {value!r}")
    if flip_method not in range(8):
        raise ValueError(f"csi camera: flip method must be 0-7, got {flip_method!r}")
    return (f"nvarguscamerasrc sensor-id={sensor_id} ! "
            f"video/x-raw(memory:NVMM),width={width},height={height},framerate={fps}/1 ! "
            f"nvvidconv flip-method={flip_method} ! video/x-raw,format=BGRx ! "
            "videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1")


@dataclass(frozen=True)
class SourceSpec:
    """What a source value means: ``target`` is what ``cv2.VideoCapture`` (or the folder reader)
    opens, with ``api`` the ``cv2.CAP_*`` preference name (``ANY``, ``V4L2``, ``GSTREAMER``)."""

    value: str
    kind: str
    target: str | int
    api: str = "ANY"
    width: int | None = None  # asked of webcams / v4l2 devices (csi: in the pipeline)
    height: int | None = None
    fps: float | None = None

    @property
    def live(self) -> bool:
        return self.kind in LIVE_KINDS


def parse_source(value: str | int | Path, width: int | None = None, height: int | None = None,
                 fps: int | None = None, flip_method: int = 0) -> SourceSpec:
    """Map a source value (see the module table) to a `SourceSpec`; nothing is opened."""
    text = str(value).strip()
    if isinstance(value, int) or text.isdigit():
        return SourceSpec(text, "webcam", int(text), width=width, height=height, fps=fps)
    if text.startswith("csi://"):
        sensor = text[len("csi://"):]
        if not sensor.isdigit():
            raise ValueError(f"source {text!r}: expected csi://N with N the sensor id (0, 1, ...)")
        size = {"width": width or CSI_DEFAULTS["width"], "height": height or CSI_DEFAULTS["height"],
                "fps": int(fps or CSI_DEFAULTS["fps"])}
        return SourceSpec(text, "csi", csi_pipeline(int(sensor), flip_method=flip_method, **size),
                          "GSTREAMER", size["width"], size["height"], size["fps"])
    if "!" in text:
        return SourceSpec(text, "gstreamer", text, "GSTREAMER")
    if text.startswith("v4l2://"):
        text = text[len("v4l2://"):]
    if re.fullmatch(r"/dev/video\d+", text):
        return SourceSpec(str(value), "v4l2", text, "V4L2", width=width, height=height, fps=fps)
    if text.lower().startswith(STREAM_SCHEMES):
        return SourceSpec(text, "stream", text)
    path = Path(text[len("file://"):] if text.startswith("file://") else text).expanduser()
    if path.is_dir():
        return SourceSpec(text, "folder", str(path))
    if path.is_file():
        kind = "image" if path.suffix.lower() in IMAGE_SUFFIXES else "file"
        return SourceSpec(text, kind, str(path))
    raise FileNotFoundError(f"source {text!r}: no such file or folder, and not a camera index, "
                            "/dev/videoN, csi://N, rtsp/http URL or GStreamer pipeline (with '!')")


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the sources use (tests pass fakes)."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def release(self) -> None: ...


def opencv_has_gstreamer() -> bool:
    import cv2

    return bool(re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()))


def open_capture(spec: SourceSpec) -> Any:
    """Open ``spec`` with OpenCV; RuntimeError (naming the source) when it does not open."""
    import cv2

    if spec.api == "GSTREAMER" and not opencv_has_gstreamer():
        raise RuntimeError(f"source {spec.value!r} needs OpenCV built with GStreamer (JetPack's OpenCV "
                           f"is; the opencv-python wheels are not); this cv2 {cv2.__version__} has no "
                           "GStreamer support")
    cap = cv2.VideoCapture(spec.target, getattr(cv2, f"CAP_{spec.api}"))
    if not cap.isOpened():
        cap.release()
        what = f" ({spec.target})" if spec.kind == "csi" else ""
        raise RuntimeError(f"cannot open source {spec.value!r}{what} as {spec.kind} "
                           f"through OpenCV's {spec.api} backend")
    if spec.live:
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # best effort: not every backend has a buffer size
    if spec.kind in ("webcam", "v4l2"):
        for prop, v in ((cv2.CAP_PROP_FRAME_WIDTH, spec.width), (cv2.CAP_PROP_FRAME_HEIGHT, spec.height),
                        (cv2.CAP_PROP_FPS, spec.fps)):
            if v:
                cap.set(prop, v)
    return cap


def capture_fps(cap: Any) -> float | None:
    """The frame rate a capture reports, when it reports a plausible one."""
    import cv2

    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
    except (AttributeError, cv2.error):
        return None
    return fps if 0 < fps <= 240 else None


@dataclass(frozen=True)
class Frame:
    """A BGR uint8 frame, its sequence number at the source (gaps: frames dropped) and when it
    was captured (``time.perf_counter()``: a live source's grab, otherwise the end of the read),
    from which the camera loop measures capture-to-display latency."""

    image: np.ndarray
    index: int
    captured: float = 0.0


class FrameSource(ABC):
    """Frames until the end: ``read() -> Frame | None`` (None at the end of a file or folder)."""

    kind: str = "source"
    live: bool = False
    description: str = ""
    fps: float | None = None  # the source's nominal frame rate, when known
    dropped: int = 0  # live sources: frames replaced by a newer one before they were read
    corrupt: Sequence[str] = ()  # image folders: files skipped as corrupt, in order

    @abstractmethod
    def _read(self) -> tuple[Any, ...] | None:
        """The next raw frame (any channel count) and its sequence number, or None at the end;
        optionally a third element, its capture time (``time.perf_counter()``; default: now)."""

    def read(self) -> Frame | None:
        item = self._read()
        if item is None:
            return None
        captured = item[2] if len(item) > 2 else time.perf_counter()
        return Frame(to_bgr(item[0]), item[1], captured)

    def close(self) -> None:  # noqa: B027 (sources without a device have nothing to release)
        """Release the device or file; idempotent."""

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


class ImageFolderSource(FrameSource):
    """Image files in natural sort order (``frame2`` before ``frame10``), read one by one.

    A missing, truncated or undecodable file (`edge_mtl.imageio.read_image`) is skipped with a
    warning naming it and listed in ``corrupt``; its index is left out (a gap). When every file
    is corrupt, `read` raises a ValueError at the end instead of ending the source quietly.
    """

    kind = "folder"

    def __init__(self, paths: Sequence[str | Path], description: str = "",
                 log: Callable[[str], object] | None = None):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError(f"source {description!r}: no images ({', '.join(IMAGE_SUFFIXES)})")
        self.description = description or str(self.paths[0].parent)
        self.corrupt: list[str] = []
        self._log = log or (lambda msg: print(msg, file=sys.stderr))
        self._next = 0
        self._first_error: str | None = None

    @classmethod
    def from_folder(cls, folder: str | Path, log: Callable[[str], object] | None = None) -> ImageFolderSource:
        folder = Path(folder)
        paths = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                       key=_natural_key)
        return cls(paths, str(folder), log)

    def _read(self) -> tuple[np.ndarray, int] | None:
        import cv2

        while self._next < len(self.paths):
            path, index = self.paths[self._next], self._next
            self._next += 1
            try:
                return read_image(path, cv2.IMREAD_UNCHANGED), index  # keep gray / alpha: to_bgr converts
            except CorruptImageError as e:
                self._skip(path, e)
        if self.corrupt and len(self.corrupt) == len(self.paths):
            raise ValueError(f"source {self.description!r}: all {len(self.paths)} images are corrupt "
                             f"(first: {self._first_error})")
        return None

    def _skip(self, path: Path, error: CorruptImageError) -> None:
        self.corrupt.append(str(path))
        self._first_error = self._first_error or str(error)
        self._log(f"source {self.description!r}: warning: skipping corrupt frame ({error})")


class VideoFileSource(FrameSource):
    """A video file, every frame in order; the end of the file ends the source."""

    kind = "file"

    def __init__(self, spec: SourceSpec, opener: Callable[[SourceSpec], Any] = open_capture):
        self.description = spec.value
        self._cap = opener(spec)
        self.fps = capture_fps(self._cap)
        self._index = 0

    def _read(self) -> tuple[np.ndarray, int] | None:
        if self._cap is None:
            return None
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        self._index += 1
        return image, self._index - 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class MemorySource(FrameSource):
    """Frames already in memory, cycled ``count`` times in all (a copy each: the overlay draws on
    it); for benchmarks that measure the pipeline without disk or camera."""

    kind = "memory"

    def __init__(self, frames: Sequence[np.ndarray], count: int | None = None, fps: float | None = None):
        if not frames:
            raise ValueError("memory source: no frames given")
        self.frames, self.count, self.fps = list(frames), count or len(frames), fps
        self.description = f"{len(self.frames)} frames in memory x {self.count}"
        self._index = 0

    def _read(self) -> tuple[np.ndarray, int] | None:
        if self._index >= self.count:
            return None
        self._index += 1
        return self.frames[(self._index - 1) % len(self.frames)].copy(), self._index - 1


class LiveSource(FrameSource):
    """A camera or stream read on a capture thread that keeps only the newest frame.

    When the capture fails (``read`` returns False or raises) it is released and reopened after
    ``backoff``, ``2 backoff``, ``4 backoff``… seconds (at most ``backoff_max``); after
    ``max_attempts`` tries in a row without a frame, `read` raises RuntimeError. `read` also
    raises when no frame arrives within ``read_timeout`` seconds while the source is open (the
    back-off between reopen attempts does not count). The first open happens in the
    constructor, so a wrong source fails at once.
    """

    def __init__(self, spec: SourceSpec, opener: Callable[[SourceSpec], Any] = open_capture, *,
                 max_attempts: int = 6, backoff: float = 0.5, backoff_max: float = 8.0,
                 read_timeout: float = 10.0, sleep: Callable[[float], object] | None = None,
                 log: Callable[[str], object] | None = None):
        self.spec, self.kind, self.live, self.description = spec, spec.kind, True, spec.value
        self._opener = opener
        self.max_attempts, self.backoff, self.backoff_max = max_attempts, backoff, backoff_max
        self.read_timeout = read_timeout
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait  # the default wakes up at once on close()
        self._log = log or (lambda msg: print(msg, file=sys.stderr))
        self._cap = opener(spec)
        self.fps = spec.fps or capture_fps(self._cap)
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, int, float] | None = None
        self._error: BaseException | None = None
        self.captured = 0
        self.reopens = 0
        self._reconnecting = False  # the capture thread is between a failure and a new frame
        self._thread = threading.Thread(target=self._capture_loop, name=f"capture {spec.value}", daemon=True)
        self._thread.start()

    def _grab(self) -> np.ndarray | None:
        try:
            ok, image = self._cap.read()
        except Exception:  # a dying backend may raise (cv2.error) instead of returning False
            return None
        return image if ok and image is not None else None

    def _capture_loop(self) -> None:
        failures, last = 0, None
        try:
            while not self._stop.is_set():
                image = self._grab() if self._cap is not None else None
                if image is not None:
                    failures, self._reconnecting = 0, False
                    with self._cond:
                        if self._latest is not None:
                            self.dropped += 1
                        self._latest = (image, self.captured, time.perf_counter())
                        self.captured += 1
                        self._cond.notify_all()
                    continue
                # No frame: release, wait (exponential back-off), reopen; bounded attempts.
                self._reconnecting = True
                self._release()
                if failures >= self.max_attempts:
                    why = f"last error: {last}" if last else "it opened but gave no frame"
                    raise RuntimeError(f"source {self.spec.value!r} stopped delivering frames and "
                                       f"{self.max_attempts} attempts to reopen it failed ({why})")
                delay = min(self.backoff * 2 ** failures, self.backoff_max)
                failures += 1
                self._log(f"source {self.spec.value!r}: no frame; reopening in {delay:.1f} s "
                          f"(attempt {failures}/{self.max_attempts})")
                self._sleep(delay)
                if self._stop.is_set():
                    break
                try:
                    self._cap, last = self._opener(self.spec), None
                    self.reopens += 1
                except Exception as e:
                    last = e
        except BaseException as e:  # handed to the reader, which raises it in the main thread
            with self._cond:
                self._error = e
                self._cond.notify_all()
        finally:
            self._release()

    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def _read(self) -> tuple[np.ndarray, int, float] | None:
        def ready() -> bool:
            return self._latest is not None or self._error is not None or self._stop.is_set()

        with self._cond:
            # Wait read_timeout; keep waiting while the thread reconnects, since it ends that
            # with a frame or with its own error (after max_attempts), never silently.
            while (not self._cond.wait_for(ready, timeout=self.read_timeout)
                   and self._reconnecting and self._thread.is_alive()):
                pass
            if self._stop.is_set():
                return None
            if self._latest is not None:
                item, self._latest = self._latest, None
                return item
            if isinstance(self._error, RuntimeError):
                raise self._error
            if self._error is not None:
                raise RuntimeError(f"source {self.spec.value!r}: capture failed ({self._error!r})"
                                   ) from self._error
        raise RuntimeError(f"source {self.spec.value!r}: no frame within {self.read_timeout:.0f} s")

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)  # a capture stuck in read() is a daemon: left behind


def open_source(value: str | int | Path | FrameSource, *, width: int | None = None,
                height: int | None = None, fps: int | None = None, flip_method: int = 0,
                opener: Callable[[SourceSpec], Any] = open_capture, **live_options: Any) -> FrameSource:
    """Open a source value (see the module table); a `FrameSource` passes through unchanged.

    ``live_options`` go to `LiveSource` (``max_attempts``, ``backoff``, ``read_timeout``…);
    ``log`` (default: stderr) also takes an image folder's warnings about corrupt frames.
    """
    if isinstance(value, FrameSource):
        return value
    spec = parse_source(value, width=width, height=height, fps=fps, flip_method=flip_method)
    if spec.kind == "folder":
        return ImageFolderSource.from_folder(spec.target, live_options.get("log"))
    if spec.kind == "image":
        return ImageFolderSource([spec.target], spec.value, live_options.get("log"))
    if spec.kind == "file":
        return VideoFileSource(spec, opener)
    return LiveSource(spec, opener, **live_options)


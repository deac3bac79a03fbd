"""The one image reader for datasets, calibration sets and image-folder cameras (torch-free),
and the one reader of unlabelled frames from an image folder, a video file or one image.

OpenCV decodes a truncated JPEG into a partly grey image and only prints a libjpeg warning, so a
half-written file would pass as a frame with full labels. `read_image` reads the bytes, checks
that a JPEG reaches its end-of-image marker and a PNG its ``IEND`` chunk, decodes them,
and raises `CorruptImageError` naming the file otherwise.

`read_frames` yields the frames of a folder (its images, sorted by name), a video file (decoded
in order, frames not asked for grabbed but not decoded) or one image file, a selection of them
(every n-th, given positions, at most a limit), for `edge-mtl adapt-bn`, `bench` and
`real-check`; `video_frame_count` is a clip's length.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

_JPEG_START = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk type and its CRC

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")  # the images `read_frames` takes from a folder
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
FRAME_KINDS = ("folder", "video", "image")
_KIND_NAMES = {"folder": "an image folder", "video": "a video file", "image": "an image file"}


class CorruptImageError(ValueError):
    """An image file is missing, truncated or cannot be decoded; the message names it."""


def integrity_problem(data: bytes) -> str | None:
    """Why these encoded bytes are not a whole JPEG/PNG (None when they look whole, or are
    another format that only decoding can check)."""
    if data.startswith(_JPEG_START):
        if not jpeg_is_complete(data):
            return "truncated JPEG (no end-of-image marker)"
    elif data.startswith(_PNG_SIGNATURE):
        if _PNG_END not in data[-4096:]:
            return "truncated PNG (no IEND chunk)"
    elif not data:
        return "empty file"
    return None


def jpeg_is_complete(data: bytes) -> bool:
    """Whether the JPEG's own end-of-image marker is there: segments are walked by their lengths
    and scans to their next marker, so an EXIF thumbnail's marker does not count and bytes after
    the end (motion-photo or vendor trailers) do not matter."""
    i, n = 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:  # stray bytes between segments (decoders skip them too)
            i = data.find(b"\xff", i)
            if i < 0:
                return False
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
        elif marker == 0xD9:
            return True
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
        else:
            if i + 4 > n:
                return False
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
            if marker == 0xDA:  # entropy-coded data: FF is stuffed as FF00; RSTn may interleave
                i = _next_marker(data, i)
    return False


def _next_marker(data: bytes, i: int) -> int:
    while (j := data.find(b"\xff", i)) >= 0 and j + 1 < len(data):
        following = data[j + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            i = j + 2
        elif following == 0xFF:
            i = j + 1
        else:
            return j
    return len(data)


def read_image(path: str | os.PathLike, flags: int | None = None) -> np.ndarray:
    """Decode ``path`` with OpenCV ``flags`` (default ``IMREAD_COLOR``: BGR uint8) after the
    integrity check; `CorruptImageError` names the file and the reason."""
    import cv2

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorruptImageError(f"{path}: image not found") from None
    except OSError as e:
        raise CorruptImageError(f"{path}: cannot read it ({e.strerror or e})") from None
    problem = integrity_problem(data)
    if problem:
        raise CorruptImageError(f"{path}: {problem}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if flags is None else flags)
    if image is None:
        raise CorruptImageError(f"{path}: not a decodable image")
    return image


def frame_kind(source: str | os.PathLike, kinds: Iterable[str] = FRAME_KINDS) -> str:
    """``folder``, ``video`` (a file with a `VIDEO_SUFFIXES` suffix) or ``image`` (`IMAGE_SUFFIXES`)
    for ``source``, one of ``kinds``: FileNotFoundError naming a missing path, ValueError naming
    one of another kind."""
    path = Path(source)
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in FRAME_KINDS]
    if unknown or not kinds:
        raise ValueError(f"frame kinds must be among {', '.join(FRAME_KINDS)}, got {kinds!r}")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        kind = "folder"
    elif path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        kind = "video"
    elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        kind = "image"
    else:
        kind = None
    if kind not in kinds:
        names = [_KIND_NAMES[k] for k in kinds]
        suffixes = [s for k in kinds if k != "folder"
                    for s in (VIDEO_SUFFIXES if k == "video" else IMAGE_SUFFIXES)]
        what = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        raise ValueError(f"{path}: not {what}" + (f" ({', '.join(suffixes)})" if suffixes else ""))
    return kind


def _open_video(path: Path) -> Any:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise ValueError(f"{path}: OpenCV cannot open this video")
    return cap


def video_frame_count(source: str | os.PathLike) -> int:
    """The number of frames the video ``source`` reports, or, when its container reports none,
    the number found by grabbing through it once; ValueError naming a file OpenCV cannot open."""
    import cv2

    path = Path(source)
    frame_kind(path, ("video",))
    cap = _open_video(path)
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if count <= 0:
            count = 0
            while cap.grab():
                count += 1
        return count
    finally:
        cap.release()


def read_frames(source: str | os.PathLike, every: int = 1, limit: int | None = None,
                indices: Iterable[int] | None = None, kinds: Iterable[str] = FRAME_KINDS,
                on_corrupt: Callable[[CorruptImageError], object] | None = None,
                ) -> Iterator[tuple[int, str, np.ndarray]]:
    """``(position, name, BGR uint8 frame)`` of the folder, video or image ``source`` (one of
    ``kinds``, `frame_kind`), in order.

    Positions are the sorted images of a folder (``name``: the file), the frames of a video
    (``name``: ``PATH#position``) or 0 for one image. Read are every ``every``-th position, or
    the ``indices`` given, at most ``limit`` of them (the first); a video stops once the last
    wanted one is read.
    A missing, truncated or undecodable image raises its `CorruptImageError` (naming the file), or
    goes to ``on_corrupt`` and is skipped (its position still counts towards ``limit``); a video
    frame that does not decode is skipped. The path is checked and a folder listed now (an empty
    one is a ValueError naming it); a video opens at the first frame, and a ValueError names one
    that cannot be opened or has no frame at all.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if indices is not None:
        if every != 1:
            raise ValueError(f"give frame indices or every={every}, not both")
        wanted = sorted(set(indices))
        if wanted and wanted[0] < 0:
            raise ValueError(f"frame indices must be >= 0, got {wanted[0]}")
        positions: Iterator[int] = iter(wanted)
    else:
        positions = itertools.count(0, every)
    if limit is not None:
        positions = itertools.islice(positions, limit)
    path = Path(source)
    kind = frame_kind(path, kinds)
    if kind == "video":
        return _video(path, positions)
    if kind == "image":
        images = [path]
    else:
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise ValueError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return _images(images, positions, on_corrupt)


def _images(images: list[Path], positions: Iterator[int],
            on_corrupt: Callable[[CorruptImageError], object] | None,
            ) -> Iterator[tuple[int, str, np.ndarray]]:
    for i in positions:
        if i >= len(images):
            return
        try:
            image = read_image(images[i])
        except CorruptImageError as e:
            if on_corrupt is None:
                raise
            on_corrupt(e)
            continue
        yield i, str(images[i]), image


def _video(path: Path, positions: Iterator[int]) -> Iterator[tuple[int, str, np.ndarray]]:
    from edge_mtl.runtime.preprocess import to_bgr

    following = next(positions, None)
    if following is None:
        return
    cap = _open_video(path)
    k = 0
    try:
        while following is not None and cap.grab():
            if k == following:
                ok, image = cap.retrieve()
                if ok and image is not None:
                    yield k, f"{path}#{k}", to_bgr(image)
                following = next(positions, None)
            k += 1
    finally:
        cap.release()
    if k == 0:
        raise ValueError(f"{path}: no frame could be decoded")

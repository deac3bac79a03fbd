"""The one image reader for datasets, calibration sets and image-folder cameras (torch-free).

OpenCV decodes a truncated JPEG into a partly grey image and only prints a libjpeg warning, so a
half-written file would pass as a frame with full labels. `read_image` reads the bytes, checks
that a JPEG reaches its end-of-image marker and a PNG its ``IEND`` chunk, decodes them,
and raises `CorruptImageError` naming the file otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

_JPEG_START = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk type and its CRC


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

"""The one image reader for datasets, calibration sets and image-folder cameras (torch-free).

OpenCV decodes a truncated JPEG into a partly grey image and only prints a libjpeg warning, so a
half-written file would pass as a frame with full labels. `read_image` reads the bytes, checks
that a JPEG ends with its end-of-image marker and a PNG with its ``IEND`` chunk, decodes them,
and raises `CorruptImageError` naming the file otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk type and its CRC


class CorruptImageError(ValueError):
    """An image file is missing, truncated or cannot be decoded; the message names it."""


def integrity_problem(data: bytes) -> str | None:
    """Why these encoded bytes are not a whole JPEG/PNG (None when they look whole, or are
    another format that only decoding can check)."""
    if data.startswith(_JPEG_START):
        # Encoders may pad after the marker with zeros; a truncated file has no marker at the end.
        if not data.rstrip(b"\x00").endswith(_JPEG_END):
            return "truncated JPEG (no end-of-image marker)"
    elif data.startswith(_PNG_SIGNATURE):
        if _PNG_END not in data[-4096:]:
            return "truncated PNG (no IEND chunk)"
    elif not data:
        return "empty file"
    return None


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

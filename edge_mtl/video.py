"""The one video writer (camera recordings, rendered drives): OpenCV, opened at the first frame.

Frames go to a temporary name in the same folder that keeps the container suffix
(``out.mp4`` -> ``out.partial.mp4``: OpenCV picks the container from it), renamed over the final
path by `Recorder.close`. A killed or failed run leaves the partial file, never a broken
``out.mp4``, and an older ``out.mp4`` stays whole until a new one is finalised.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def partial_path(path: str | os.PathLike) -> Path:
    """Where a video for ``path`` is written until it is finalised (``x.mp4`` -> ``x.partial.mp4``)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


class Recorder:
    """A video written frame by frame (mp4v for .mp4, MJPG otherwise), opened at the first
    frame's size (later frames of another size are resized to it); `close` finalises the file
    at ``path``, `abort` leaves it unfinished at ``partial`` (leaving the ``with`` block on an
    exception aborts)."""

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path, self.fps = Path(path), fps
        self.partial = partial_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.frames = 0
        self._writer: Any = None
        self._size: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) once the first frame is written."""
        return self._size

    def write(self, image: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            self._size = (image.shape[1], image.shape[0])
            codec = "mp4v" if self.path.suffix.lower() == ".mp4" else "MJPG"
            self._writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*codec), self.fps,
                                           self._size)
            if not self._writer.isOpened():
                self._writer = None
                w, h = self._size
                raise RuntimeError(f"cannot open {self.partial} for writing ({codec}, {w}x{h}) "
                                   f"to record {self.path}")
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        """Finalise the video and move it to ``path``; idempotent, and a no-op before any frame."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self.partial, self.path)

    def abort(self) -> None:
        """Stop writing, leaving what was written at ``partial`` and ``path`` untouched."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

"""The one video writer (camera recordings, rendered drives): OpenCV, opened at the first frame."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


class Recorder:
    """A video written frame by frame (mp4v for .mp4, MJPG otherwise), opened at the first
    frame's size (later frames of another size are resized to it); `close` finalises the file."""

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path, self.fps = Path(path), fps
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
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*codec), self.fps,
                                           self._size)
            if not self._writer.isOpened():
                self._writer = None
                w, h = self._size
                raise RuntimeError(f"cannot open {self.path} for writing ({codec}, {w}x{h})")
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

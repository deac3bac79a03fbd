"""The one pre-processing every caller shares: resize, BGR->RGB, normalise."""

from __future__ import annotations

import numpy as np

# ImageNet statistics in RGB order (what torchvision's MobileNets expect).
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255.0
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255.0


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a BGR uint8 frame to ``size`` = (height, width); gray and BGRA become BGR."""
    import cv2

    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {image.shape}")
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def normalize(image: np.ndarray) -> np.ndarray:
    """BGR uint8 [H, W, 3] at network size -> float32 [3, H, W] RGB, normalised."""
    rgb = image[..., ::-1].astype(np.float32)
    return np.ascontiguousarray(((rgb - MEAN) / STD).transpose(2, 0, 1))


def preprocess(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Camera frame -> network input [3, H, W] float32."""
    return normalize(resize_image(image, size))

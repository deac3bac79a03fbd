"""The table-driven pre-processing is pinned to the straightforward float formula, bit for bit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_mtl.runtime.preprocess import MEAN, STD, normalize, preprocess


def formula(image: np.ndarray) -> np.ndarray:
    """The reference: BGR -> RGB, float32, ``(x - MEAN) / STD``, HWC -> CHW."""
    rgb = image[..., ::-1].astype(np.float32)
    return np.ascontiguousarray(((rgb - MEAN) / STD).transpose(2, 0, 1))


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    every_value = np.arange(256 * 3, dtype=np.int64).reshape(16, 16, 3) % 256  # all 256 per channel
    return [every_value.astype(np.uint8), rng.integers(0, 256, (37, 61, 3), np.uint8),
            rng.integers(0, 256, (384, 640, 3), np.uint8)]


def test_normalize_equals_the_formula_bit_for_bit(images):
    for image in images:
        got = normalize(image)
        assert got.dtype == np.float32 and got.shape == (3, *image.shape[:2]) and got.flags.c_contiguous
        np.testing.assert_array_equal(got, formula(image))


def test_normalize_takes_views_and_writes_into_out(images):
    image = images[2]
    for view in (image[:, ::-1], image[::2, 5:300], image[..., ::-1]):  # flips and crops (training)
        np.testing.assert_array_equal(normalize(view), formula(view))
    out = np.full((3, 384, 640), np.nan, np.float32)
    assert normalize(image, out) is out
    np.testing.assert_array_equal(out, formula(image))
    with pytest.raises(ValueError, match="out must be"):
        normalize(image, np.empty((3, 384, 640), np.float64))
    with pytest.raises(ValueError, match="BGR uint8"):
        normalize(image.astype(np.float32))


def test_preprocess_is_inter_area_resize_letterbox_then_the_formula():
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 256, (720, 1280, 3), np.uint8)
    frame[::7] = 255  # fine structure, which INTER_AREA averages and other interpolations would not
    resized = cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA)
    boxed = cv2.copyMakeBorder(resized, 12, 12, 0, 0, cv2.BORDER_CONSTANT, value=[104, 116, 124])
    want = formula(boxed)
    np.testing.assert_array_equal(preprocess(frame, (384, 640)), want)
    out = np.empty((3, 384, 640), np.float32)
    assert preprocess(frame, (384, 640), out) is out
    np.testing.assert_array_equal(out, want)

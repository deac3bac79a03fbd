"""`read_frames`: the one frame reader of `adapt-bn`, `bench` and `real-check` (folder, video,
one image; selection by stride, positions and limit; errors naming the path)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_mtl.bench import load_frames
from edge_mtl.imageio import CorruptImageError, read_frames, video_frame_count

VIDEO_FRAMES = 10


def _level(k: int) -> int:
    return 20 + 20 * k  # each frame a flat grey of its own level, distinct after compression


def _write_video(path: Path, frames: int = VIDEO_FRAMES) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (64, 48))
    assert writer.isOpened()
    for k in range(frames):
        writer.write(np.full((48, 64, 3), _level(k), np.uint8))
    writer.release()
    return path


def _write_folder(folder: Path, count: int = 5) -> Path:
    folder.mkdir()
    for k in reversed(range(count)):  # written out of order: the reader sorts by name
        cv2.imwrite(str(folder / f"{k:03d}.png"), np.full((8, 12, 3), _level(k), np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


def _levels(frames) -> list[int]:
    return [round(float(image.mean()) / 20) - 1 for _, _, image in frames]


@pytest.fixture
def video(tmp_path) -> Path:
    return _write_video(tmp_path / "clip.mp4")


def test_a_folder_gives_its_images_sorted_by_name(tmp_path):
    folder = _write_folder(tmp_path / "f")
    frames = list(read_frames(folder))
    assert [(i, n) for i, n, _ in frames] == [(k, str(folder / f"{k:03d}.png")) for k in range(5)]
    assert _levels(frames) == [0, 1, 2, 3, 4]
    assert all(image.shape == (8, 12, 3) and image.dtype == np.uint8 for _, _, image in frames)
    assert [i for i, _, _ in read_frames(folder, every=2)] == [0, 2, 4]
    assert [i for i, _, _ in read_frames(folder, limit=3)] == [0, 1, 2]
    assert [i for i, _, _ in read_frames(folder, indices=[4, 1, 9])] == [1, 4]  # past the end: none
    assert [i for i, _, _ in read_frames(folder, every=2, limit=2)] == [0, 2]


def test_a_video_gives_its_frames_in_order(video):
    assert video_frame_count(video) == VIDEO_FRAMES
    frames = list(read_frames(video))
    assert [i for i, _, _ in frames] == list(range(VIDEO_FRAMES))
    assert [n for _, n, _ in frames][:2] == [f"{video}#0", f"{video}#1"]
    assert _levels(frames) == list(range(VIDEO_FRAMES))
    assert frames[0][2].shape == (48, 64, 3)
    picked = list(read_frames(video, indices=[7, 0, 3]))
    assert [i for i, _, _ in picked] == [0, 3, 7] and _levels(picked) == [0, 3, 7]
    assert [i for i, _, _ in read_frames(video, every=3)] == [0, 3, 6, 9]
    assert [i for i, _, _ in read_frames(video, limit=4)] == [0, 1, 2, 3]
    assert list(read_frames(video, limit=0)) == []


def test_one_image_is_one_frame(tmp_path):
    path = tmp_path / "one.jpg"
    cv2.imwrite(str(path), np.full((8, 12, 3), 100, np.uint8))
    ((i, name, image),) = read_frames(path)
    assert (i, name, image.shape) == (0, str(path), (8, 12, 3))


def test_what_cannot_be_read_is_named(tmp_path, video):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"{missing}: no such file or folder"):
        read_frames(missing)  # checked at the call, before any frame is asked for
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no images \(\.jpg, \.jpeg, \.png, \.bmp\)"):
        read_frames(tmp_path / "empty")
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"one\.png: not an image folder or a video file \(\.mp4, .+\)$"):
        read_frames(image, kinds=("folder", "video"))  # adapt-bn's sources
    with pytest.raises(ValueError, match=r"clip\.mp4: not an image folder$"):
        read_frames(video, kinds=("folder",))  # bench's
    (tmp_path / "clip.txt").write_text("x")
    with pytest.raises(ValueError, match=r"clip\.txt: not an image folder, a video file or an image file"):
        read_frames(tmp_path / "clip.txt")
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video")
    with pytest.raises(ValueError, match=r"fake\.mp4: (OpenCV cannot open|no frame could be decoded)"):
        list(read_frames(fake))
    for bad in ({"every": 0}, {"limit": -1}, {"indices": [-1]}, {"indices": [1], "every": 2}):
        with pytest.raises(ValueError):
            read_frames(video, **bad)


def test_a_corrupt_image_raises_or_is_handed_over(tmp_path):
    folder = _write_folder(tmp_path / "f", 4)
    (folder / "001.png").write_bytes((folder / "001.png").read_bytes()[:40])
    with pytest.raises(CorruptImageError, match=r"001\.png: truncated PNG"):
        list(read_frames(folder))
    bad: list[CorruptImageError] = []
    frames = list(read_frames(folder, limit=3, on_corrupt=bad.append))
    assert [i for i, _, _ in frames] == [0, 2]  # the corrupt one still counts towards the limit
    assert [str(e) for e in bad] == [f"{folder / '001.png'}: truncated PNG (no IEND chunk)"]


def test_bench_takes_the_first_images_of_a_folder_only(tmp_path, video):
    folder = _write_folder(tmp_path / "f")
    assert _levels((0, "", f) for f in load_frames(folder, 3)) == [0, 1, 2]
    (folder / "003.png").write_bytes(b"")
    assert len(load_frames(folder, 3)) == 3  # a bad image past the count is not read
    (folder / "000.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"cannot read image\(s\): .*000\.png: empty file; .*003\.png"):
        load_frames(folder, 5)
    with pytest.raises(ValueError, match=r"clip\.mp4: not an image folder"):
        load_frames(video)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_frames(tmp_path / "nowhere")

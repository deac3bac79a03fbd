"""One camera geometry from training to the car: a KITTI-size frame becomes the identical network
input in training, evaluation and the camera loop, and depth comes back in the camera's metres."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edge_mtl.data.dataset import MultiTaskDataset, collate
from edge_mtl.data.formats import open_reader
from edge_mtl.runtime.torch_backend import TorchBackend
from tests.data.formats.make_kitti import write_kitti
from tests.helpers import TINY_SIZE


@pytest.fixture
def kitti_frame(tmp_path):
    return write_kitti(tmp_path / "kitti", num=1, width=1242, height=375)


def _recording(monkeypatch) -> list[np.ndarray]:
    seen: list[np.ndarray] = []
    infer = TorchBackend.infer

    def record(self, images):
        seen.extend(np.array(x) for x in images)
        return infer(self, images)

    monkeypatch.setattr(TorchBackend, "infer", record)
    return seen


def test_a_kitti_frame_reaches_the_network_identically_everywhere(kitti_frame, tiny_checkpoint, tmp_path,
                                                                  monkeypatch):
    from edge_mtl.camera.loop import run_camera
    from edge_mtl.evaluate import evaluate

    spec = f"kitti:{kitti_frame}"
    training = collate([MultiTaskDataset(open_reader(spec), TINY_SIZE)[0]]).image[0].numpy()
    seen = _recording(monkeypatch)
    evaluate(tiny_checkpoint, spec, progress=False)
    assert len(seen) == 1
    frames = tmp_path / "frames"
    frames.mkdir()
    shutil.copy(kitti_frame / "training" / "image_2" / "000000.png", frames / "000000.png")
    run_camera(str(frames), tiny_checkpoint, backend="torch", device="cpu", headless=True, log=lambda m: None)
    assert len(seen) == 3  # the loop's warm-up (zeros) and the frame
    np.testing.assert_array_equal(seen[0], training)
    np.testing.assert_array_equal(seen[2], training)
    rows = np.flatnonzero(np.abs(training).max((0, 2)) > 0.05)  # the frame's rows; the rest is border
    assert rows[0] > 0 and rows[-1] < TINY_SIZE[0] - 1  # letterboxed, not squashed


def test_depth_in_metres_follows_the_camera_focal(tiny_checkpoint):
    """The same network output is farther for a longer lens: metres = canonical x fx x scale / f_c."""
    with TorchBackend(tiny_checkpoint, device="cpu") as runner:
        info = runner.info
        g = info.geometry((375, 1242))
        f_c = 0.8 * TINY_SIZE[1]
        assert info.canonical_focal == pytest.approx(f_c)
        assert info.depth_scale(g, 721.5377) == pytest.approx(721.5377 * g.scale[0] / f_c)
        assert info.depth_scale(g, 2 * 721.5377) == pytest.approx(2 * info.depth_scale(g, 721.5377))
        unknown = info.geometry((640, 1280))
        assert info.depth_scale(unknown, None) == pytest.approx(1.0)  # assumed: 0.8 x width


def test_crop_mode_scores_only_what_the_network_sees():
    from edge_mtl.evaluate import in_view
    from edge_mtl.runtime.geometry import fit_geometry
    from edge_mtl.types import Camera, Sample

    h, w = 375, 1242
    sample = Sample(image=np.zeros((h, w, 3), np.uint8),
                    boxes=np.array([[10, 100, 200, 200], [500, 100, 700, 200]], np.float32),
                    classes=np.array([0, 1]), lane=np.ones((h, w), np.uint8),
                    depth=np.full((h, w), 20.0, np.float32), camera=Camera.assumed(w, h))
    g = fit_geometry((h, w), (384, 640), "crop")
    u0, v0, u1, v1 = g.in_view()
    assert (u0, u1) == (309, 933) and (v0, v1) == (0, 375)  # input columns 0..640 of the 1272 resized
    seen = in_view(sample, g)
    assert (seen.depth[:, :u0] == 0).all() and (seen.depth[:, u0:u1] == 20).all()
    assert seen.lane[:, u1:].max() == 0 and seen.lane[:, u0:u1].min() == 1
    assert seen.boxes.tolist() == [[500, 100, 700, 200]] and seen.classes.tolist() == [1]
    assert seen.ignore.tolist() == []  # the first box is wholly outside: nothing left of it to score
    assert in_view(sample, fit_geometry((h, w), (384, 640))) is sample  # letterbox sees everything

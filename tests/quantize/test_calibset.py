from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge_mtl.quantize.calibset import _write_manifest, load_calibration_set
from tests.helpers import TINY_SIZE, write_random_frames


def _frames(folder, n=3):
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((72, 128, 3), 40 * i, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_set_is_sorted_and_preprocessed(tmp_path):
    calib = load_calibration_set(_frames(tmp_path / "f"))
    assert [p.name for p in calib.images] == ["000.png", "001.png", "002.png"]
    batches = list(calib.batches(TINY_SIZE, limit=2))
    assert len(batches) == 2 and batches[0].shape == (1, 3, *TINY_SIZE)
    assert batches[0].dtype == np.float32 and not np.allclose(batches[0], batches[1])


def test_manifest_pins_the_images(tmp_path):
    folder = _frames(tmp_path / "f")
    manifest = tmp_path / "set.json"
    _write_manifest(manifest, "set", sorted(folder.glob("*.png")), {"folder": str(folder)})
    assert len(load_calibration_set(manifest)) == 3
    cv2.imwrite(str(folder / "001.png"), np.zeros((72, 128, 3), np.uint8))
    with pytest.raises(ValueError, match=r"001\.png changed"):
        load_calibration_set(manifest)
    (folder / "001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"001\.png is missing"):
        load_calibration_set(manifest)


def test_synth_recipe_renders_once_into_the_cache(tmp_path):
    recipe = tmp_path / "mini.yaml"
    recipe.write_text("source: synth\nseed: 5\nnum: 2\n")
    cache = tmp_path / "cache"
    calib = load_calibration_set(recipe, cache_root=cache, progress=False)
    assert len(calib) == 2 and calib.manifest == cache / "mini" / "manifest.json"
    assert json.loads(calib.manifest.read_text())["source"] == {"synth": {"seed": 5, "num": 2}}
    stamp = calib.images[0].stat().st_mtime_ns
    again = load_calibration_set(recipe, cache_root=cache, progress=False)
    assert again.hashes == calib.hashes and again.images[0].stat().st_mtime_ns == stamp


def test_bad_sets_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_calibration_set(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_calibration_set(tmp_path / "empty")
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: web\n")
    with pytest.raises(ValueError, match="needs 'source: synth'"):
        load_calibration_set(bad)


@pytest.mark.parametrize("text, expected", [
    ("source: synth\nseed: [1\n", r":3: invalid YAML"),
    ("- source\n- synth\n", "needs 'source: synth'"),
    ("source: synth\nseed: [1]\nnum: 2\n", r"seed must be an integer >= 0 and num an integer >= 1"),
    ("source: synth\nseed: 1\nnum: 0\n", r"got seed=1, num=0"),
    ("source: synth\nseed: true\nnum: 2\n", r"got seed=True"),
])
def test_bad_recipes_name_the_file(tmp_path, text, expected):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    with pytest.raises(ValueError, match=rf"r\.yaml.*{expected}"):
        load_calibration_set(recipe, cache_root=tmp_path / "cache", progress=False)


@pytest.mark.parametrize("content", [
    b"[1, 2]", b'{"schema": "edge_mtl.calib/1", "images": [{"sha256": "x"}]}',
    b'{"schema": "edge_mtl.calib/1", "images": 3}', b"\xff\xfe{"])
def test_malformed_manifests_name_the_file(tmp_path, content):
    manifest = tmp_path / "set.json"
    manifest.write_bytes(content)
    with pytest.raises(ValueError, match=r"set\.json: "):
        load_calibration_set(manifest)


def test_a_damaged_cache_manifest_is_rendered_again(tmp_path):
    recipe = tmp_path / "mini.yaml"
    recipe.write_text("source: synth\nseed: 5\nnum: 1\n")
    cache = tmp_path / "cache"
    (cache / "mini").mkdir(parents=True)
    (cache / "mini" / "manifest.json").write_text("{not json")
    assert len(load_calibration_set(recipe, cache_root=cache, progress=False)) == 1


def test_a_truncated_frame_in_a_folder_set_stops_calibration_before_it_starts(tmp_path, tiny_onnx, capsys):
    from edge_mtl.cli import main

    folder = write_random_frames(tmp_path / "frames", 3, (48, 64))
    jpg = folder / "001.jpg"
    cv2.imwrite(str(jpg), cv2.imread(str(folder / "001.png")))
    (folder / "001.png").unlink()
    jpg.write_bytes(jpg.read_bytes()[:300])
    out = tmp_path / "m.int8.onnx"
    assert main(["calibrate", tiny_onnx, "--calib", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "001.jpg: truncated JPEG" in err and not out.exists()

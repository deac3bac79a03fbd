from pathlib import Path

from edge_mtl.paths import REPO_ROOT, shipped_file


def test_a_relative_shipped_file_is_found_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shipped_file("models/mobilenet_v2_imagenet.pt") == REPO_ROOT / "models/mobilenet_v2_imagenet.pt"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mobilenet_v2_imagenet.pt").write_bytes(b"mine")  # the working directory's wins
    assert shipped_file("models/mobilenet_v2_imagenet.pt") == Path("models/mobilenet_v2_imagenet.pt")
    # absent everywhere: unchanged, so the error names the path the user wrote
    assert shipped_file("models/nope.pt") == Path("models/nope.pt")
    assert shipped_file(tmp_path / "x.pt") == tmp_path / "x.pt"

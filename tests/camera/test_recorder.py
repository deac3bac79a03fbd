"""The video writer: frames go to NAME.partial.SUFFIX and reach the final name only on close."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from edge_mtl.video import Recorder, partial_path


def frames_in(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def frame(i: int) -> np.ndarray:
    return np.full((48, 64, 3), 40 * i, np.uint8)


def test_partial_name_keeps_the_container_suffix(tmp_path):
    assert partial_path(tmp_path / "out.mp4") == tmp_path / "out.partial.mp4"
    assert partial_path(tmp_path / "drive.v2.avi") == tmp_path / "drive.v2.partial.avi"


def test_the_final_path_is_untouched_until_close_then_plays(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an older recording")
    rec = Recorder(out, 10.0)
    for i in range(3):
        rec.write(frame(i))
    assert out.read_bytes() == b"an older recording" and rec.partial.is_file()
    rec.close()
    assert frames_in(out) == 3 and not rec.partial.exists()
    rec.close()  # idempotent
    assert frames_in(out) == 3


def test_a_failed_block_keeps_the_partial_out_of_the_final_name(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    with pytest.raises(ZeroDivisionError), Recorder(out, 10.0) as rec:
        rec.write(frame(1))
        _ = 1 / 0
    assert out.read_bytes() == b"old" and rec.partial.is_file()
    with Recorder(tmp_path / "empty.mp4", 10.0):
        pass
    assert not (tmp_path / "empty.mp4").exists()  # no frame: nothing to finalise


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_mid_recording_leaves_no_broken_final_file(tmp_path):
    out = tmp_path / "killed.mp4"
    script = textwrap.dedent(f"""
        import os, signal, numpy as np
        from edge_mtl.video import Recorder
        rec = Recorder({str(out)!r}, 10.0)
        for i in range(5):
            rec.write(np.full((48, 64, 3), 40 * i, np.uint8))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and partial_path(out).is_file()
    assert os.path.getsize(partial_path(out)) > 0

"""Camera app: the tri-task network live on a camera, stream, video or folder, with an overlay.

    python apps/camera.py --source csi://0 --model models/tritask_mnv2.engine
    python apps/camera.py --source /dev/video0 --record drive.mp4
    python apps/camera.py --source rtsp://192.168.1.20:8554/cam --headless --bench-json run.json
    python apps/camera.py --source drive.mp4 --max-frames 300

The same as `edge-mtl camera` (see `edge_mtl/camera/`); Esc or q closes the window, Ctrl-C or
SIGTERM ends a headless run, and the recording is finalised either way.
"""

from __future__ import annotations

import sys

from edge_mtl.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    return cli_main(["camera", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())

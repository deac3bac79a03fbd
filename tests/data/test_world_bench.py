"""`python -m edge_mtl.data.world.bench` prints the world's rendering speed as JSON."""

from __future__ import annotations

import json

import pytest

from edge_mtl.data.world.bench import main


def test_bench_prints_frames_per_second(capsys):
    main(["--num", "1", "--seed", "3"])
    out = json.loads(capsys.readouterr().out)
    assert out["schema"] == "edge_mtl.world_bench/1" and out["frames"] == 1
    assert out["frames_per_s"] > 0 and out["ms_per_frame"]["p50"] > 0


def test_bench_refuses_no_frames(capsys):
    with pytest.raises(SystemExit):
        main(["--num", "0"])
    assert "--num must be positive" in capsys.readouterr().err

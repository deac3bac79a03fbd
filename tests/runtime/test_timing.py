from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from edge_mtl.runtime.timing import OtherLoad, StageTimer, summarize


def test_stage_timer_and_summary():
    timer = StageTimer()
    for _ in range(3):
        with timer.stage("pre"):
            time.sleep(0.002)
    assert len(timer.samples["pre"]) == 3 and timer.last("pre") >= 2.0
    s = summarize([1.0, 2.0, 3.0, 10.0])
    assert s["p50"] == 2.5 and s["max"] == 10.0


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc/stat")
def test_other_load_sees_another_process_but_not_this_one():
    busy = "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass\n"
    with OtherLoad() as other:
        child = subprocess.Popen([sys.executable, "-c", busy])
        child.wait()
    # one other process spinning on one core: at least ~1/cores of the machine
    assert other.share is not None and other.share >= 0.7 / os.cpu_count()


def test_other_load_subtracts_this_process(monkeypatch):
    import edge_mtl.runtime.timing as timing

    system = iter([(10.0, 100.0), (13.0, 104.0)])  # 3 of 4 CPU-seconds busy meanwhile
    own = iter([5.0, 6.0])  # 1 of them ours
    monkeypatch.setattr(timing, "_system_cpu", lambda: next(system))
    monkeypatch.setattr(timing, "_own_cpu", lambda: next(own))
    with OtherLoad() as load:
        pass
    assert load.share == 0.5
    monkeypatch.setattr(timing, "_system_cpu", lambda: None)
    monkeypatch.setattr(timing, "_own_cpu", lambda: 0.0)
    with OtherLoad() as load:
        pass
    assert load.share is None

"""The pipelined camera loop, `run_camera`'s default (``--serial`` runs the one-frame-at-a-time
loop of `edge_mtl.camera.loop._loop` instead).

Four stages overlap, each on its own thread, handing frames on through bounded queues::

    capture (+ decode)  ->  pre  ->  infer  ->  post + draw + output (the caller's thread)

so that while the accelerator (or onnxruntime, which releases the GIL) runs frame ``n``, frame
``n + 1`` is being pre-processed, ``n + 2`` decoded and ``n - 1`` drawn and shown. Each queue
holds ``queue_size`` frames (1 by default) and each stage works on one (the infer stage on two
for a file on a backend that takes two, `Backend.max_in_flight`), so at most about eight frames
are in flight and the latency stays bounded. The window and the recording stay in the
caller's thread (OpenCV's HighGUI wants one thread; the recorder is finalised by the caller).

Drop policy: a live source (webcam, v4l2, csi, GStreamer, stream: `FrameSource.live`) keeps the
newest frame. Its capture stage replaces a frame still waiting for the pre stage by the newer one,
and the pre stage a pre-processed frame still waiting for the backend, so that what the backend
takes next is never older than about one camera period plus the pre-processing (with a blocking
hand-over it would be two inferences old); the backend gets one live frame at a time. The frames
replaced are counted (``stale``, added to the summary's ``dropped``, beside those the source's own
capture thread replaced). When the backend keeps up with the camera nothing is replaced. Files and
folders hand on every frame, in order (a blocking put).

Exit: every wait on a queue has a timeout (`POLL_S`) and looks at the stage's stop flag, so no
stage can hang on a queue. The end of a file travels down the pipeline after the last frame
(`_End`), so every frame read is shown before the run ends; with ``max_frames`` a file's capture
stage reads no more than that. An exception in a stage (a source, a backend failing) travels down
the same way, behind the frames already past it, which are shown, and is raised in the caller's
thread with its message and traceback; the stages upstream of it are stopped. SIGTERM (``stop``),
Ctrl-C, the window closed, ``max_frames`` or an error in the caller's thread stop every stage at
once. In every case `Pipeline.shutdown` stops the threads and joins them (a live source is closed
if its read does not return) before the caller closes the backend, the recorder and the source.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_mtl.camera.sources import FrameSource
from edge_mtl.compat import zip_strict
from edge_mtl.runtime.backend import Backend
from edge_mtl.runtime.timing import StageTimer

if TYPE_CHECKING:
    from edge_mtl.runtime.postprocess import PostprocessConfig
    from edge_mtl.video import Recorder

POLL_S = 0.05  # how often a stage waiting on a queue looks at its stop flag
QUEUE_SIZE = 1  # frames waiting between two stages
STAGES = ("capture", "pre", "infer")  # the threads; post + draw + output run in the caller's
JOIN_S = {"capture": 2.0, "pre": 2.0, "infer": 10.0}  # how long shutdown waits for each thread
LIVE_CLOSE_AFTER_S = 0.2  # a live capture still reading after this is woken by closing the source


@dataclass
class _Item:
    """A frame on its way through the stages, with the milliseconds each stage spent on it."""

    image: np.ndarray
    index: int
    captured: float  # time.perf_counter() of the capture
    ms: dict[str, float]
    geometry: Any = None
    depth_scale: float = 1.0
    x: np.ndarray | None = None
    raw: dict[str, np.ndarray] | None = None
    submitted: float = 0.0  # perf_counter() of the backend submit


@dataclass
class _End:
    """The last thing through the pipeline: why it ended, or the exception a stage raised."""

    reason: str = "end of stream"
    error: BaseException | None = None


_NOTHING = object()  # `Pipeline._get` without waiting: no frame was there


def put_newest(q: queue.Queue, item: Any) -> int:
    """Put ``item`` in ``q`` (whose only producer is the caller), taking out what still waits
    there so that the consumer gets the newest; returns how many items were dropped."""
    dropped = 0
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped += 1
            except queue.Empty:  # the consumer took it meanwhile
                pass


class Pipeline:
    """The capture, pre and infer threads and their queues; the caller takes finished frames
    with `next_item` and must call `shutdown` (also on error)."""

    def __init__(self, src: FrameSource, runner: Backend, stop: threading.Event,
                 max_frames: int | None = None, focal: float | None = None,
                 queue_size: int = QUEUE_SIZE):
        if queue_size < 1:
            raise ValueError(f"queue size must be >= 1, got {queue_size}")
        self.src, self.runner, self.stop, self.max_frames, self.focal = src, runner, stop, max_frames, focal
        self.queues: list[queue.Queue] = [queue.Queue(queue_size) for _ in STAGES]  # out of each stage
        self.halt = [threading.Event() for _ in STAGES]  # stage i stops when halt[i] is set
        self._stale = [0] * len(STAGES)  # live frames replaced in each queue (one writer each)
        # the infer stage's clock: last result, expected end of the newest frame in flight, and
        # the recent inference time per frame (seconds, perf_counter)
        self._done, self._expected, self._infer_s = 0.0, 0.0, 0.0
        bodies = (self._capture, self._pre, self._infer)
        self.threads = [threading.Thread(target=self._stage, args=(i, body), name=f"camera {name}",
                                         daemon=True)
                        for i, (name, body) in enumerate(zip_strict(STAGES, bodies))]

    @property
    def stale(self) -> int:
        """Live frames replaced by a newer one before the next stage took them."""
        return sum(self._stale)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    # -- plumbing ---------------------------------------------------------------------------

    def _stage(self, i: int, body: Callable[[], None]) -> None:
        try:
            body()
        except BaseException as e:  # handed down to the caller's thread, which raises it
            for h in self.halt[:i]:  # upstream stops; downstream finishes the frames ahead
                h.set()
            self._put(i, _End(f"error in {STAGES[i]}", e))

    def _put(self, i: int, item: Any) -> bool:
        """Stage ``i`` hands ``item`` on (blocking); False when told to stop meanwhile."""
        q, halt = self.queues[i], self.halt[i]
        while not halt.is_set():
            try:
                q.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                pass
        return False

    def _get(self, i: int, timeout: float | None = None) -> Any:
        """What stage ``i`` works on next (from stage ``i - 1``); None when told to stop;
        `_NOTHING` when nothing came within ``timeout`` seconds (None: no limit)."""
        q, halt = self.queues[i - 1], self.halt[i]
        deadline = None if timeout is None else time.perf_counter() + timeout
        while not halt.is_set():
            wait = POLL_S if deadline is None else min(POLL_S, deadline - time.perf_counter())
            try:
                return q.get(timeout=wait) if wait > 0 else q.get_nowait()
            except queue.Empty:
                if deadline is not None and time.perf_counter() >= deadline:
                    return _NOTHING
        return None

    def _hand_on(self, i: int, item: _Item) -> bool:
        """Stage ``i``'s put of a frame: a live source's replaces the frame still waiting (counted
        as stale), a file's blocks; False when told to stop meanwhile."""
        if self.src.live:
            self._stale[i] += put_newest(self.queues[i], item)
            return True
        return self._put(i, item)

    def next_item(self) -> _Item | _End | None:
        """The next inferred frame (or the `_End`) for the caller's stage; None once ``stop``
        is set (SIGTERM). A RuntimeError if every thread died without a word (never a hang)."""
        q = self.queues[-1]
        while not self.stop.is_set():
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                if not any(t.is_alive() for t in self.threads) and q.empty():
                    raise RuntimeError("camera pipeline: every stage stopped without handing on "
                                       "a frame or an error") from None
        return None

    def shutdown(self, log: Callable[[str], object] = print) -> None:
        """Stop every stage and join its thread (a live source whose read does not return is
        closed to wake it); a thread still running after `JOIN_S` is reported and left (daemon)."""
        for h in self.halt:
            h.set()
        capture = self.threads[0]
        if capture.is_alive() and self.src.live:
            capture.join(LIVE_CLOSE_AFTER_S)
            if capture.is_alive():
                self.src.close()  # idempotent; wakes a read waiting for the camera
        for t, name in zip_strict(self.threads, STAGES):
            if t.ident is not None:
                t.join(JOIN_S[name])
        stuck = [t.name for t in self.threads if t.is_alive()]
        if stuck:
            log(f"camera: warning: {', '.join(stuck)} did not stop within "
                f"{max(JOIN_S.values()):.0f} s; left running in the background")

    # -- the stages -------------------------------------------------------------------------

    def _capture(self) -> None:
        src, live, n = self.src, self.src.live, 0
        while not self.halt[0].is_set():
            if not live and self.max_frames is not None and n >= self.max_frames:
                self._put(0, _End("max frames"))
                return
            t0 = time.perf_counter()
            frame = src.read()
            t1 = time.perf_counter()
            if frame is None:
                self._put(0, _End())
                return
            n += 1
            item = _Item(frame.image, frame.index, frame.captured or t1, {"capture": (t1 - t0) * 1e3})
            if not self._hand_on(0, item):
                return

    def _pre(self) -> None:
        from edge_mtl.runtime.preprocess import FramePrep

        prep = FramePrep(self.runner.info, self.focal)
        while True:
            item = self._get(1)
            if item is None:
                return
            if isinstance(item, _End):
                self._put(1, item)
                return
            t0 = time.perf_counter()
            item.x = prep(item.image)
            item.geometry, item.depth_scale = prep.geometry, prep.depth_scale
            item.ms["pre"] = (time.perf_counter() - t0) * 1e3
            if not self._hand_on(1, item):
                return

    def _infer(self) -> None:
        """A file's frames: up to ``runner.max_in_flight`` are submitted before the oldest is
        collected (a TensorRT engine: two, so that the next frame's copy and launch queue behind
        the running one and the GPU does not wait for the CPU between frames); the next frame is
        waited for only until the running one is expected to be done (the recent frames'
        inference time), so a frame is never held back for a later one. A live source's: one at
        a time, so that the frame the backend takes next is still the newest (a frame queued
        behind the running one could no longer be replaced by a newer one). An error in
        ``submit`` is raised once the frames submitted before it are handed on."""
        runner, pending = self.runner, deque()
        depth = 1 if self.src.live else max(1, int(getattr(runner, "max_in_flight", 1)))
        while True:
            timeout = max(0.0, self._expected - time.perf_counter()) if pending else None
            item = self._get(2, timeout)
            if item is None:
                return
            if item is _NOTHING:  # the frame in flight should be done: collect it
                if not self._collect(pending):
                    return
                continue
            if isinstance(item, _End):
                while pending:
                    if not self._collect(pending):
                        return
                self._put(2, item)
                return
            item.submitted = now = time.perf_counter()
            self._expected = (self._expected if pending else now) + self._infer_s
            try:
                ticket = runner.submit(item.x)
            except BaseException:
                while pending:  # the frames ahead of the error are still shown
                    if not self._collect(pending):
                        break
                raise
            pending.append((item, ticket))
            item.x = None
            if len(pending) >= depth and not self._collect(pending):
                return

    def _collect(self, pending: deque) -> bool:
        """Wait for the oldest frame in flight and hand it on; its ``infer`` time runs from its
        submission, or from when the previous frame was handed on if it queued behind that one
        (a wait for the caller's stage to take the previous frame is not inference)."""
        item, ticket = pending.popleft()
        item.raw = self.runner.collect(ticket)
        took = time.perf_counter() - max(item.submitted, self._done)
        self._infer_s = took if not self._infer_s else 0.8 * self._infer_s + 0.2 * took
        item.ms["infer"] = took * 1e3
        handed = self._put(2, item)
        self._done = time.perf_counter()
        return handed


def run_pipeline(src: FrameSource, runner: Backend, timer: StageTimer, run: Any, stop: threading.Event,
                 max_frames: int | None, recorder: Recorder | None, window: Any,
                 cfg: PostprocessConfig | None, focal: float | None = None,
                 log: Callable[[str], object] = print, queue_size: int = QUEUE_SIZE) -> None:
    """The pipelined loop; ``run`` (`edge_mtl.camera.loop._Run`) gets the frame count, the stop
    reason, the latencies and the stale drops, ``timer`` one sample per shown frame and stage.

    Same contract as the serial ``_loop``: returns on the end of the source, ``max_frames``,
    SIGTERM (``stop``) or the window closed, with ``run.reason`` set; raises what a stage raised.
    """
    from edge_mtl.camera.present import Presenter

    pipe = Pipeline(src, runner, stop, max_frames, focal, queue_size)
    present = Presenter(runner, timer, run, recorder, window, cfg)
    run.started = last = time.perf_counter()
    pipe.start()
    try:
        while True:
            if stop.is_set():
                run.reason = "SIGTERM"
                return
            if max_frames is not None and run.frames >= max_frames:
                run.reason = "max frames"
                return
            item = pipe.next_item()
            if item is None:
                continue  # stop was set: the check above
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                run.reason = item.reason
                return
            run.frame_size = run.frame_size or item.image.shape[:2]
            for name in STAGES:
                timer.add(name, item.ms[name])
            keep_going = present.show(item.image, item.raw, item.geometry, item.depth_scale,
                                      src.dropped + pipe.stale if src.live else None)
            now = present.ends[-1]
            timer.add("loop", (now - last) * 1e3)  # the time between two shown frames
            run.latency.append((now - item.captured) * 1e3)
            last = now
            if not keep_going:
                run.reason = "window closed"
                return
    finally:
        pipe.shutdown(log)
        run.stale = pipe.stale

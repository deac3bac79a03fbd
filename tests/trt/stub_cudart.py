"""A stand-in for cuda-python's runtime module (``cuda.bindings.runtime``) on a machine without a GPU.

It mirrors the names and the ``(cudaError_t, *values)`` return convention the code uses, and
keeps "device" and pinned memory as separate host allocations, so data only reaches the engine
through the copies the code makes. Async copies and engine launches queue on their stream and
run at ``cudaStreamSynchronize``, or up to an event recorded on the stream at
``cudaEventSynchronize``, so reading outputs before synchronising gives stale data, and a pinned
buffer written again before its queued copy ran hands the copy the new data.
Pointers are checked: a copy in the wrong direction, out of bounds or to freed memory fails.
"""

from __future__ import annotations

import ctypes
import enum
import types
from collections.abc import Callable
from dataclasses import dataclass, field


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorInvalidResourceHandle = 400


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


cudaEventDefault, cudaEventBlockingSync, cudaEventDisableTiming = 0x00, 0x01, 0x02


class _Handle:
    """cuda-python's opaque handle types: ``int()`` and ``getPtr()`` give the raw value."""

    def __init__(self, handle: int):
        self._handle = handle

    def __int__(self) -> int:
        return self._handle

    def getPtr(self) -> int:
        return self._handle


class cudaEvent_t(_Handle):
    pass


class cudaStream_t(_Handle):
    pass


@dataclass
class cudaDeviceProp:
    name: bytes
    major: int
    minor: int


@dataclass
class Memory:
    """All allocations and stream queues of one stub instance."""

    device: dict[int, ctypes.Array] = field(default_factory=dict)
    pinned: dict[int, ctypes.Array] = field(default_factory=dict)
    streams: dict[int, list[Callable[[], None]]] = field(default_factory=dict)
    events: dict[int, dict] = field(default_factory=dict)  # handle -> {"stream", "done", "flags"}
    pageable_async_copies: int = 0
    abandoned_work: int = 0  # queued copies / launches left on a stream when it was destroyed

    def find(self, table: dict[int, ctypes.Array], ptr: int, count: int) -> bool:
        return any(base <= ptr and ptr + count <= base + len(buf) for base, buf in table.items())

    def live(self) -> dict[str, int]:
        return {"device": len(self.device), "pinned": len(self.pinned), "streams": len(self.streams),
                "events": len(self.events)}


_current: Memory | None = None


def current() -> Memory:
    if _current is None:
        raise RuntimeError("no stub cudart is installed")
    return _current


def device_read(ptr: int, count: int) -> bytes:
    """What the stub TensorRT engine reads from device memory (checked to be device memory)."""
    if not current().find(current().device, ptr, count):
        raise RuntimeError(f"stub GPU: read of {count} bytes at {ptr:#x} is not device memory")
    return ctypes.string_at(ptr, count)


def device_write(ptr: int, data: bytes) -> None:
    if not current().find(current().device, ptr, len(data)):
        raise RuntimeError(f"stub GPU: write of {len(data)} bytes at {ptr:#x} is not device memory")
    ctypes.memmove(ptr, data, len(data))


def enqueue(stream: int, work: Callable[[], None]) -> bool:
    """Queue work on a stream (what an engine launch does); False for an unknown stream."""
    queue = current().streams.get(int(stream))
    if queue is None:
        return False
    queue.append(work)
    return True


def make_cudart_stub(name: str = "NVIDIA Stub GPU", capability: tuple[int, int] = (8, 7),
                     gpu: bool = True) -> types.ModuleType:
    """A fresh stub module (and fresh memory). ``gpu=False``: no device, as on a CPU-only machine."""
    global _current
    mem = _current = Memory()
    ok = cudaError_t.cudaSuccess
    bad = cudaError_t.cudaErrorInvalidValue
    no_device = cudaError_t.cudaErrorNoDevice
    m = types.ModuleType("cuda.bindings.runtime")
    m.cudaError_t, m.cudaMemcpyKind, m.cudaStream_t, m.cudaDeviceProp = (
        cudaError_t, cudaMemcpyKind, cudaStream_t, cudaDeviceProp)
    m.memory = mem

    def alloc(table: dict, size: int) -> tuple:
        if not gpu:
            return (no_device, None)
        buf = (ctypes.c_ubyte * max(int(size), 1))()
        table[ctypes.addressof(buf)] = buf
        return (ok, ctypes.addressof(buf))

    def free(table: dict, ptr: int) -> tuple:
        return (ok,) if table.pop(int(ptr), None) is not None else (bad,)

    def check_copy(dst: int, src: int, count: int, kind: cudaMemcpyKind) -> bool:
        to_device = kind in (cudaMemcpyKind.cudaMemcpyHostToDevice, cudaMemcpyKind.cudaMemcpyDeviceToDevice)
        from_device = kind in (cudaMemcpyKind.cudaMemcpyDeviceToHost, cudaMemcpyKind.cudaMemcpyDeviceToDevice)
        return (mem.find(mem.device, dst, count) == to_device
                and mem.find(mem.device, src, count) == from_device)

    def cudaMemcpy(dst: int, src: int, count: int, kind: cudaMemcpyKind) -> tuple:
        dst, src = int(dst), int(src)
        if not check_copy(dst, src, count, kind):
            return (bad,)
        ctypes.memmove(dst, src, count)
        return (ok,)

    def cudaMemcpyAsync(dst: int, src: int, count: int, kind: cudaMemcpyKind, stream: object) -> tuple:
        dst, src = int(dst), int(src)
        if not check_copy(dst, src, count, kind):
            return (bad,)
        host = src if kind == cudaMemcpyKind.cudaMemcpyHostToDevice else dst
        if kind != cudaMemcpyKind.cudaMemcpyDeviceToDevice and not mem.find(mem.pinned, host, count):
            mem.pageable_async_copies += 1
        queued = enqueue(int(stream), lambda: ctypes.memmove(dst, src, count))
        return (ok,) if queued else (cudaError_t.cudaErrorInvalidResourceHandle,)

    def cudaStreamCreate() -> tuple:
        if not gpu:
            return (no_device, None)
        handle = 0x5000 + len(mem.streams) + 1
        mem.streams[handle] = []
        return (ok, cudaStream_t(handle))

    def cudaStreamSynchronize(stream: object) -> tuple:
        queue = mem.streams.get(int(stream))
        if queue is None:
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        while queue:
            queue.pop(0)()
        return (ok,)

    def cudaStreamDestroy(stream: object) -> tuple:
        queue = mem.streams.pop(int(stream), None)
        if queue is None:
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        # CUDA would still run it, into whatever the caller freed meanwhile: counted, not run
        mem.abandoned_work += len(queue)
        return (ok,)

    def cudaEventCreateWithFlags(flags: int) -> tuple:
        if not gpu:
            return (no_device, None)
        if int(flags) & ~0x0F:
            return (bad, None)
        handle = 0x9000 + len(mem.events) + 1
        while handle in mem.events:
            handle += 1
        mem.events[handle] = {"stream": None, "done": True, "flags": int(flags)}
        return (ok, cudaEvent_t(handle))

    def cudaEventRecord(event: object, stream: object) -> tuple:
        state = mem.events.get(int(event))
        if state is None or int(stream) not in mem.streams:
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        state["done"], state["stream"] = False, int(stream)
        enqueue(int(stream), lambda: state.update(done=True))
        return (ok,)

    def cudaEventSynchronize(event: object) -> tuple:
        state = mem.events.get(int(event))
        if state is None:
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        queue = mem.streams.get(state["stream"], [])
        while not state["done"] and queue:
            queue.pop(0)()
        return (ok,)

    def cudaEventDestroy(event: object) -> tuple:
        return (ok,) if mem.events.pop(int(event), None) is not None else (
            cudaError_t.cudaErrorInvalidResourceHandle,)

    def cudaGetDevice() -> tuple:
        return (ok, 0) if gpu else (no_device, None)

    def cudaGetDeviceProperties(device: int) -> tuple:
        if not gpu or device != 0:
            return (no_device if not gpu else bad, None)
        return (ok, cudaDeviceProp(name.encode() + b"\x00" * 4, *capability))

    m.cudaMalloc = lambda size: alloc(mem.device, size)
    m.cudaMallocHost = lambda size: alloc(mem.pinned, size)
    m.cudaFree = lambda ptr: free(mem.device, ptr)
    m.cudaFreeHost = lambda ptr: free(mem.pinned, ptr)
    m.cudaMemcpy, m.cudaMemcpyAsync = cudaMemcpy, cudaMemcpyAsync
    m.cudaStreamCreate, m.cudaStreamSynchronize, m.cudaStreamDestroy = (
        cudaStreamCreate, cudaStreamSynchronize, cudaStreamDestroy)
    m.cudaGetDevice, m.cudaGetDeviceProperties = cudaGetDevice, cudaGetDeviceProperties
    m.cudaEvent_t, m.cudaEventCreateWithFlags, m.cudaEventRecord = (
        cudaEvent_t, cudaEventCreateWithFlags, cudaEventRecord)
    m.cudaEventSynchronize, m.cudaEventDestroy = cudaEventSynchronize, cudaEventDestroy
    m.cudaEventDefault, m.cudaEventBlockingSync, m.cudaEventDisableTiming = (
        cudaEventDefault, cudaEventBlockingSync, cudaEventDisableTiming)
    return m

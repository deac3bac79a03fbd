"""One interface over every inference backend: torch, onnxruntime and TensorRT.

A backend takes the shared pre-processing's output (float32 ``[B, 3, H, W]``, or uint8
``[B, H, W, 3]`` for a model that normalises in its graph) and returns the
network's raw outputs by name (``OUTPUT_NAMES``) as numpy arrays; the shared post-processing
turns them into a `Prediction`. Which backend opens a model follows from the file:
``.pt`` -> torch, ``.onnx`` -> onnxruntime, ``.engine`` -> tensorrt.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_mtl.compat import require_python310
from edge_mtl.runtime.geometry import Geometry, canonical_focal, fit_geometry
from edge_mtl.runtime.preprocess import INPUT_FORMATS, input_dtype
from edge_mtl.types import DEFAULT_FOCAL_RATIO

BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "tensorrt")
_BY_SUFFIX = {".pt": "torch", ".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt"}


@dataclass(frozen=True)
class ModelInfo:
    """What every backend knows about the model it runs (it goes into eval/bench JSON)."""

    path: str
    sha256: str
    input_size: tuple[int, int]  # (height, width)
    class_names: tuple[str, ...]
    backbone: str | None = None
    params: int | None = None
    checkpoint_sha256: str | None = None  # the checkpoint an exported model came from
    resize: str = "letterbox"  # how frames are fitted to the input (edge_mtl.runtime.geometry)
    canonical_focal: float | None = None  # focal (input px) its depth is in; None: 0.8 x input width
    input_format: str = "float"  # what it reads (`edge_mtl.runtime.preprocess.INPUT_FORMATS`)

    def __post_init__(self) -> None:
        if self.input_format not in INPUT_FORMATS:
            raise ValueError(f"{self.path}: input format {self.input_format!r} unknown; expected one of "
                             f"{list(INPUT_FORMATS)} (a model exported by a newer edge_mtl?)")

    def input_shape(self, batch: int = 1) -> tuple[int, ...]:
        """The shape of a batch this model reads."""
        h, w = self.input_size
        return (batch, 3, h, w) if self.input_format == "float" else (batch, h, w, 3)

    def blank_input(self, batch: int = 1) -> np.ndarray:
        """A batch of zeros this model reads (for warm-ups)."""
        return np.zeros(self.input_shape(batch), input_dtype(self.input_format))

    def geometry(self, frame_size: tuple[int, int]) -> Geometry:
        """How a frame of ``frame_size`` (h, w) reaches this model's input."""
        return fit_geometry(frame_size, self.input_size, self.resize)

    def depth_scale(self, geometry: Geometry, fx: float | None) -> float:
        """Metres per unit of network depth for a camera of focal ``fx`` (its own pixels; None:
        unknown, `Camera.assumed`'s 0.8 x frame width)."""
        if fx is None:
            fx = DEFAULT_FOCAL_RATIO * geometry.source[1]
        return geometry.depth_scale(fx, canonical_focal(self.input_size[1], self.canonical_focal))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["class_names"] = list(self.class_names)
        return d


class Backend(ABC):
    """Runs the network. Subclasses set ``name``, ``precision``, ``device``, ``info`` and
    ``batch`` (the fixed batch size of a static-shape model; ``None`` when any size runs)."""

    name: str
    precision: str
    device: str
    info: ModelInfo
    batch: int | None = None

    @abstractmethod
    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """One forward on a batch the model accepts."""

    max_in_flight: int = 1  # frames `submit` takes before one must be collected

    def _check_input(self, images: np.ndarray) -> None:
        want = self.info.input_shape(images.shape[0] if images.ndim else 1)
        if images.shape != want:
            shape = ", ".join(["B", *(str(d) for d in want[1:])])
            raise ValueError(f"{self.info.path}: expected input [{shape}], got {list(images.shape)}")
        uint8 = self.info.input_format == "uint8"
        if (images.dtype != np.uint8) if uint8 else not np.issubdtype(images.dtype, np.floating):
            raise ValueError(f"{self.info.path}: expected {'uint8' if uint8 else 'float32'} input "
                             f"({self.info.input_format} format), got {images.dtype}")

    def submit(self, images: np.ndarray) -> Any:
        """Start one inference, returning a ticket for `collect`; up to ``max_in_flight`` may
        run at once (collected in order). Here it runs at once; TensorRT queues it on its stream."""
        return self.infer(images)

    def collect(self, ticket: Any) -> dict[str, np.ndarray]:
        """The outputs of a `submit`, once they are ready (the caller's own arrays)."""
        return ticket

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Pre-processed images (`preprocess` with the model's ``input_format``: float32
        ``[B, 3, H, W]``, or uint8 ``[B, H, W, 3]``) -> raw outputs by name (batch first)."""
        self._check_input(images)
        n = images.shape[0]
        if self.batch is None or n == self.batch:
            return self._run(images)
        if self.batch != 1:
            raise ValueError(f"{self.info.path}: the model's batch is fixed at {self.batch}, got {n}")
        outs = [self._run(images[i:i + 1]) for i in range(n)]
        return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}

    @abstractmethod
    def close(self) -> None:
        """Release device memory and sessions; the backend is unusable afterwards."""

    def describe(self) -> dict[str, Any]:
        """The fixed keys every JSON (eval, bench, camera) carries; backend specifics go under
        ``runtime`` so that the schema is the same for every backend."""
        return {"backend": self.name, "precision": self.precision, "device": self.device,
                "runtime": self.runtime_info()}

    def runtime_info(self) -> dict[str, Any]:
        """Backend-specific facts (providers, TensorRT version, DLA core...)."""
        return {}

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def backend_for(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _BY_SUFFIX:
        raise ValueError(f"{path}: cannot tell the model format from the suffix {suffix!r} "
                         f"(expected one of {sorted(_BY_SUFFIX)})")
    return _BY_SUFFIX[suffix]


def open_backend(model: str | os.PathLike, backend: str = "auto", device: str = "auto",
                 **options: Any) -> Backend:
    """Open ``model`` with ``backend`` (``auto``: from the file suffix).

    ``device`` is ``cpu``, ``cuda`` or ``auto`` (the GPU when the backend can use one).
    ``options`` go to the backend (e.g. ``fp16=True`` for torch, ``providers=[...]`` for
    onnxruntime).
    """
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"model {path} not found")
    name = backend_for(path) if backend == "auto" else backend
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose from {list(BACKENDS)} or 'auto'")
    expected = backend_for(path)
    if name != expected:
        raise ValueError(f"{path}: a {path.suffix} file runs on the {expected} backend, not {name}")
    if name == "torch":
        require_python310(f"{path}: a torch model")

        from edge_mtl.runtime.torch_backend import TorchBackend

        return TorchBackend(path, device=device, **options)
    if name == "onnxruntime":
        from edge_mtl.runtime.onnx_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, device=device, **options)
    from edge_mtl.runtime.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(path, **options)

"""The metadata an exported ONNX model carries, so every consumer can run it without the
checkpoint: input size, normalisation, class names, output names and provenance; and
`load_onnx`, the one reader of ONNX files, which names the file when it holds no model."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_mtl.runtime.backend import ModelInfo

if TYPE_CHECKING:
    import onnx

FORMAT = "edge_mtl.onnx/1"
INPUT_NAME = "image"
INPUT_LAYOUTS = {  # by `edge_mtl.runtime.preprocess.INPUT_FORMATS`
    "float": "NCHW RGB float32, (pixel - mean) / std on 0..255 values",
    "uint8": "NHWC BGR uint8 as OpenCV gives it, fitted to the input; the graph normalises",
}


def build_metadata(input_size: tuple[int, int], mean: list[float], std: list[float],
                   class_names: tuple[str, ...], output_names: tuple[str, ...], backbone: str,
                   checkpoint_sha256: str, params: int, resize: str = "letterbox",
                   canonical_focal: float | None = None, input_format: str = "float") -> dict[str, str]:
    """Key -> string pairs for ONNX ``metadata_props`` (values JSON-encoded where not text)."""
    return {
        "edge_mtl.format": FORMAT,
        "edge_mtl.input_name": INPUT_NAME,
        "edge_mtl.input_size": json.dumps(list(input_size)),
        "edge_mtl.input_format": input_format,
        "edge_mtl.input_layout": INPUT_LAYOUTS[input_format],
        "edge_mtl.mean": json.dumps([round(m, 6) for m in mean]),
        "edge_mtl.std": json.dumps([round(s, 6) for s in std]),
        "edge_mtl.class_names": json.dumps(list(class_names)),
        "edge_mtl.output_names": json.dumps(list(output_names)),
        "edge_mtl.backbone": backbone,
        "edge_mtl.params": str(params),
        "edge_mtl.checkpoint_sha256": checkpoint_sha256,
        # frames are fitted to the input by this rule (edge_mtl.runtime.geometry); the depth
        # output is in this focal length (input pixels): metres = depth * fx * scale / focal
        "edge_mtl.resize": resize,
        "edge_mtl.canonical_focal": json.dumps(canonical_focal),
    }


def load_onnx(path: str | os.PathLike, load_external_data: bool = True) -> onnx.ModelProto:
    """The model in ``path``; a ValueError naming the file when it is corrupt, truncated, empty
    or another format, or its external weights are missing."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {path} not found")
    try:
        model = onnx.load(str(path), load_external_data=load_external_data)
    except (DecodeError, onnx.checker.ValidationError) as e:
        detail = " ".join(str(e).split())[:300]
        raise ValueError(f"{path}: not a readable ONNX model ({type(e).__name__}: {detail})") from None
    if not model.graph.node:
        raise ValueError(f"{path}: not an ONNX model (no graph nodes: empty, truncated or another format)")
    return model


def parse_metadata(props: dict[str, str], path: str) -> dict[str, Any]:
    """Decode ``metadata_props``; a model exported elsewhere gets a clear error."""
    if props.get("edge_mtl.format") != FORMAT:
        raise ValueError(f"{path}: not an edge_mtl ONNX model (metadata 'edge_mtl.format' is "
                         f"{props.get('edge_mtl.format')!r}, expected {FORMAT!r}); export it with "
                         "`edge-mtl export`")
    try:
        return {
            "input_name": props["edge_mtl.input_name"],
            "input_size": tuple(json.loads(props["edge_mtl.input_size"])),
            "mean": json.loads(props["edge_mtl.mean"]),
            "std": json.loads(props["edge_mtl.std"]),
            "class_names": tuple(json.loads(props["edge_mtl.class_names"])),
            "output_names": tuple(json.loads(props["edge_mtl.output_names"])),
            "backbone": props.get("edge_mtl.backbone"),
            "params": int(props["edge_mtl.params"]) if "edge_mtl.params" in props else None,
            "checkpoint_sha256": props.get("edge_mtl.checkpoint_sha256"),
            "resize": props.get("edge_mtl.resize", "letterbox"),
            "canonical_focal": json.loads(props.get("edge_mtl.canonical_focal", "null")),
            "input_format": props.get("edge_mtl.input_format", "float"),
        }
    except (KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: damaged edge_mtl metadata ({type(e).__name__}: {e})") from None


def model_info(props: dict[str, str], path: str, file_sha256: str) -> ModelInfo:
    meta = parse_metadata(props, path)
    return ModelInfo(path=path, sha256=file_sha256, input_size=meta["input_size"],
                     class_names=meta["class_names"], backbone=meta["backbone"],
                     params=meta["params"], checkpoint_sha256=meta["checkpoint_sha256"],
                     resize=meta["resize"], canonical_focal=meta["canonical_focal"],
                     input_format=meta["input_format"])

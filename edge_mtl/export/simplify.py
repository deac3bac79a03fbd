"""ONNX graph simplification: onnxslim (default; pure Python, installs on Jetson's aarch64
Pythons) or onnxsim (optional extra)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

SIMPLIFIERS: tuple[str, ...] = ("onnxslim", "onnxsim", "none")


def simplify(model: onnx.ModelProto, method: str = "onnxslim") -> onnx.ModelProto:
    """Fold constants and fuse redundant nodes; the graph's inputs and outputs keep their names."""
    if method == "none":
        return model
    if method == "onnxslim":
        import onnxslim

        return onnxslim.slim(model)
    if method == "onnxsim":
        try:
            import onnxsim
        except ImportError:
            raise RuntimeError("simplifier 'onnxsim' is not installed: pip install onnxsim "
                               "(or use --simplifier onnxslim)") from None
        simplified, ok = onnxsim.simplify(model)
        if not ok:
            raise RuntimeError("onnxsim could not validate the simplified model")
        return simplified
    raise ValueError(f"unknown simplifier {method!r}; choose from {list(SIMPLIFIERS)}")

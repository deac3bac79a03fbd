"""edge_mtl.files: hashes, atomic writes and strict JSON for every measurement writer."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_mtl.files import json_safe, sha256, to_json, write_atomic


def strict_loads(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_non_finite_floats_python_and_numpy_become_null():
    data = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "f32": np.float32("nan"),
            "f64": np.float64(0.5), "i": np.int64(3), "b": np.bool_(True), "arr": np.array([1.0, np.inf]),
            "nested": [{"x": (math.nan, 2)}], "text": "NaN"}
    assert strict_loads(to_json(data)) == {
        "nan": None, "inf": None, "ninf": None, "f32": None, "f64": 0.5, "i": 3, "b": True,
        "arr": [1.0, None], "nested": [{"x": [None, 2]}], "text": "NaN"}
    assert "NaN" not in to_json({"v": math.nan}, allow_nan=True)  # never bare NaN, whatever is asked
    assert to_json({"a": 1}, indent=2) == json.dumps({"a": 1}, indent=2)


def test_json_safe_leaves_its_input_alone():
    data = {"v": [math.nan]}
    assert json_safe(data) == {"v": [None]} and math.isnan(data["v"][0])


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
                    max_leaves=20))
def test_any_value_gives_strict_json_with_finite_numbers_kept(value):
    def expected(v):
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, list):
            return [expected(x) for x in v]
        if isinstance(v, dict):
            return {k: expected(x) for k, x in v.items()}
        return v

    assert strict_loads(to_json(value)) == expected(value)


def test_cli_emit_json_writes_strict_json(tmp_path, capsys):
    from edge_mtl.cli import _emit_json

    path = tmp_path / "eval.json"
    _emit_json({"metrics": {"det": {"map50": math.nan}}, "seconds": np.float32(1.5)}, str(path))
    assert strict_loads(path.read_text()) == {"metrics": {"det": {"map50": None}}, "seconds": 1.5}
    assert strict_loads(capsys.readouterr().out) == strict_loads(path.read_text())


def test_existing_helpers_keep_their_behaviour(tmp_path):
    path = write_atomic(tmp_path / "sub" / "a.txt", "héllo")
    assert path.read_text(encoding="utf-8") == "héllo" and not list(tmp_path.glob("sub/*.tmp"))
    assert write_atomic(path, b"\x00\x01").read_bytes() == b"\x00\x01"
    assert sha256(path) == hashlib.sha256(b"\x00\x01").hexdigest()

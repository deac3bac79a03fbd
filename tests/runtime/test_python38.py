"""Python 3.8 (JetPack 5: Xavier NX and JetPack-5 Orins): the runtime, camera and TensorRT modules.

The modules that must run on 3.8 are the import closure of `edge_mtl.compat.PY38_MODULES` inside
edge_mtl (edge_mtl.cli: its module-level imports and those of `edge_mtl.cli.PY38_COMMANDS`), up
to `edge_mtl.compat.PY38_STOP`. Over that closure:

- vermin finds nothing newer than 3.8 (annotations excluded: every module that has one defers
  them with ``from __future__ import annotations``);
- an AST pass finds none of what vermin does not see: ``X | Y`` of types, ``list[int]`` or a dict
  union outside annotations, ``str.removeprefix`` on a variable;
- pyproject.toml lints every file of it with ruff's py38 target;
- on a real Python 3.8 (``EDGE_MTL_PYTHON38``, else ``python3.8`` on PATH, with the runtime's
  packages installed), every module imports, and eval, bench, camera, calibrate and report of
  the tiny ONNX model run (eval's metrics as on this interpreter), and a training command is
  refused in one line.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_mtl import compat
from edge_mtl.cli import PY38_COMMANDS
from edge_mtl.compat import PY38_MODULES, PY38_STOP, removeprefix, zip_strict

REPO = Path(__file__).resolve().parents[2]


def _module_file(name: str) -> Path | None:
    path = REPO.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _nodes(tree: ast.AST, skip: set[str]) -> Iterator[ast.AST]:
    """Every node of ``tree`` except inside the functions named in ``skip``."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and child.name in skip:
            continue
        yield child
        yield from _nodes(child, skip)


def _imported(name: str, path: Path) -> Iterator[str]:
    """The edge_mtl modules ``name`` imports, at module level or in a function (cli: not in the
    commands outside PY38_COMMANDS)."""
    skip = set()
    if name == "edge_mtl.cli":
        runtime = {"_cmd_" + c.replace("-", "_") for c in PY38_COMMANDS}
        skip = {n.name for n in ast.parse(path.read_text()).body
                if isinstance(n, ast.FunctionDef) and n.name.startswith("_cmd_") and n.name not in runtime}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _nodes(ast.parse(path.read_text()), skip):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`


def py38_closure() -> dict[str, Path]:
    """Module name -> file of everything that must run on Python 3.8."""
    found: dict[str, Path] = {}
    todo = list(PY38_MODULES)
    while todo:
        name = todo.pop()
        if name in found or name in PY38_STOP or not name.startswith("edge_mtl"):
            continue
        path = _module_file(name)
        if path is None:  # a name imported from a module, not a module
            continue
        found[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages' __init__ run too
        todo += _imported(name, path)
    return found


CLOSURE = py38_closure()
FILES = sorted(str(p.relative_to(REPO)) for p in CLOSURE.values())


def vermin(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())", "-t=3.8-", "--violations",
           "--no-tips", "--no-parse-comments", "--processes", "1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)


def test_the_closure_is_the_runtime_without_the_training_side():
    runtime = {"edge_mtl.runtime.tensorrt_backend", "edge_mtl.trt.build", "edge_mtl.camera.loop",
               "edge_mtl.evaluate", "edge_mtl.report.build", "edge_mtl.config", "edge_mtl.types",
               "edge_mtl.export.metadata", "edge_mtl.data.formats.kitti", "edge_mtl.quantize.qdq"}
    assert runtime <= set(CLOSURE)
    training = {"edge_mtl.runtime.torch_backend", "edge_mtl.train", "edge_mtl.model", "edge_mtl.checkpoint",
                "edge_mtl.export.onnx", "edge_mtl.losses", "edge_mtl.weighting"}
    assert not training & set(CLOSURE)


def test_vermin_finds_nothing_newer_than_python_38():
    result = vermin(*FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Target versions not met" not in result.stdout


def test_vermin_as_called_here_catches_a_310_construct(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(a, b):\n    return list(zip(a, b, strict=True))\n")
    result = vermin(str(bad))
    assert result.returncode != 0 and "zip(strict)" in result.stdout


_BUILTIN_TYPES = {"int", "float", "str", "bool", "bytes", "list", "dict", "tuple", "set", "frozenset", "type"}
_NEWER_METHODS = {"removeprefix", "removesuffix", "is_relative_to", "with_stem", "bit_count"}


def _annotation_nodes(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            annotations = [x.annotation for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg)
                           if x is not None and x.annotation is not None]
            annotations += [node.returns] if node.returns is not None else []
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for annotation in annotations:
            ids |= {id(n) for n in ast.walk(annotation)}
    return ids


def _is_type_or_dict(node: ast.AST) -> bool:
    return ((isinstance(node, ast.Name) and node.id in _BUILTIN_TYPES)
            or (isinstance(node, ast.Constant) and node.value is None)
            or isinstance(node, (ast.Dict, ast.DictComp)))


def runtime_310_isms(path: Path) -> list[str]:
    """What vermin does not report: evaluated ``X | Y`` of builtin types or None, dict unions with a
    dict display, subscripted builtins (``tuple[int, int]`` as an alias), 3.9+ methods by name."""
    source = path.read_text()
    tree = ast.parse(source)
    annotations = _annotation_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in annotations:
            continue
        if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)
                and (_is_type_or_dict(node.left) or _is_type_or_dict(node.right))) \
                or (isinstance(node, ast.AugAssign) and isinstance(node.op, ast.BitOr)
                    and _is_type_or_dict(node.value)) \
                or (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                    and node.value.id in _BUILTIN_TYPES) \
                or (isinstance(node, ast.Attribute) and node.attr in _NEWER_METHODS):
            where = f"{os.path.relpath(path, REPO)}:{node.lineno}"
            found.append(f"{where}: {ast.get_source_segment(source, node)}")
    return found


def test_no_evaluated_union_generic_alias_or_dict_union():
    found = [line for path in CLOSURE.values() for line in runtime_310_isms(path)]
    assert found == []


def test_the_ast_check_sees_what_vermin_does_not(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from __future__ import annotations\n"
                   "Pair = tuple[int, int]\n"
                   "def f(x: int | None, s, **kw) -> list[int]:\n"
                   "    return isinstance(x, int | float), kw | {'b': 2}, s.removeprefix('a')\n")
    assert vermin(str(bad)).returncode == 0  # vermin: fine on 3.8, yet each of these fails there
    found = runtime_310_isms(bad)
    assert sorted(int(line.split(":")[1]) for line in found) == [2, 4, 4, 4]


def test_every_annotated_module_defers_its_annotations():
    lazy = "from __future__ import annotations"
    eager = [name for name, path in CLOSURE.items()
             if _annotation_nodes(ast.parse(path.read_text())) and lazy not in path.read_text()]
    assert eager == []


def _expand(pattern: str) -> list[str]:
    """A ruff glob's ``{a,b}`` alternatives (not nested)."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    return [p for alt in match.group(1).split(",")
            for p in _expand(pattern[:match.start()] + alt + pattern[match.end():])]


def test_ruff_lints_every_file_of_the_closure_as_python_38():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
        import tomli as tomllib
    ruff = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]
    globs = [g for pattern, target in ruff["per-file-target-version"].items() if target == "py38"
             for g in _expand(pattern)]
    assert ruff["target-version"] == "py310"
    assert [f for f in FILES if not any(fnmatch.fnmatch(f, g) for g in globs)] == []


# ---- the helpers, and what Python 3.8 refuses (on this interpreter, told it is 3.8) -------------

@pytest.mark.parametrize("lengths", [(3, 3), (0, 0), (2, 3), (3, 2), (3, 3, 1)])
def test_zip_strict_is_zip_with_strict(lengths):
    lists = [list(range(n)) for n in lengths]
    try:
        want = list(zip(*lists, strict=True))
    except ValueError:
        with pytest.raises(ValueError, match="shorter"):
            list(zip_strict(*lists))
    else:
        assert list(zip_strict(*lists)) == want


def test_removeprefix_is_str_removeprefix():
    for text, prefix in (("lane/single white", "lane/"), ("single white", "lane/"), ("lane/", "lane/"),
                         ("x", "")):
        assert removeprefix(text, prefix) == text.removeprefix(prefix)


@pytest.fixture
def as_python38(monkeypatch):
    monkeypatch.setattr(compat, "sys", types.SimpleNamespace(version_info=(3, 8, 18, "final", 0)))


def test_below_310_training_commands_and_torch_models_are_refused_in_one_line(as_python38, tmp_path,
                                                                               capsys):
    from edge_mtl.cli import main
    from edge_mtl.runtime.backend import open_backend

    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "edge-mtl train: error: this command needs Python 3.10 or newer" in capsys.readouterr().err
    model = tmp_path / "model.pt"
    model.write_bytes(b"")
    with pytest.raises(RuntimeError, match=r"a torch model needs Python 3\.10"):
        open_backend(model)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "report")]) == 0  # a runtime command


# ---- a real Python 3.8 ------------------------------------------------------------------------

PROBE = ("import sys; assert sys.version_info[:2] == (3, 8), sys.version; "
         "import numpy, onnxruntime, cv2, yaml, scipy, pycocotools, matplotlib, tqdm")


@pytest.fixture(scope="module")
def python38() -> str:
    """A Python 3.8 with the runtime's packages (``EDGE_MTL_PYTHON38``, else python3.8 on PATH)."""
    tried = []
    for candidate in (os.environ.get("EDGE_MTL_PYTHON38"), shutil.which("python3.8")):
        if not candidate:
            continue
        probe = subprocess.run([candidate, "-c", PROBE], capture_output=True, text=True, timeout=120)
        if probe.returncode == 0:
            return candidate
        lines = probe.stderr.strip().splitlines() or ["?"]
        tried.append(f"{candidate}: {next((ln for ln in reversed(lines) if 'Error' in ln), lines[0])}")
    pytest.skip("no Python 3.8 with numpy, onnxruntime, cv2, yaml, scipy, pycocotools, matplotlib and tqdm "
                f"(set EDGE_MTL_PYTHON38; see docs/JETSON.md){': ' if tried else ''}{'; '.join(tried)}")


def run38(python: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([python, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def test_every_module_of_the_closure_imports_on_python_38(python38):
    result = run38(python38, "-c", "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)",
                   *sorted(CLOSURE))
    assert result.returncode == 0, result.stderr


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        flat.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return flat


def test_eval_bench_camera_calibrate_and_report_run_on_python_38(python38, tiny_onnx, tiny_dataset, tmp_path):
    from edge_mtl.cli import main

    cli = ("-m", "edge_mtl.cli")
    frames = str(Path(tiny_dataset) / "images")
    result = run38(python38, *cli, "eval", tiny_onnx, "--data", tiny_dataset, "--limit", "2",
                   "--json", str(tmp_path / "eval.json"))
    assert result.returncode == 0, result.stderr
    assert main(["eval", tiny_onnx, "--data", tiny_dataset, "--limit", "2",
                 "--json", str(tmp_path / "here" / "eval.json")]) == 0
    got, want = (json.loads(p.read_text())["metrics"] for p in (tmp_path / "eval.json",
                                                                tmp_path / "here" / "eval.json"))
    assert set(got) == set(want) == {"det", "lane", "depth"}
    for task in want:  # NumPy 1.24 and an older onnxruntime there: equal up to float rounding
        assert _flat(got[task]) == pytest.approx(_flat(want[task]), rel=1e-5, abs=1e-7), task

    result = run38(python38, *cli, "bench", "--model", tiny_onnx, "--images", frames, "--frames", "3",
                   "--warmup", "1", "--json", str(tmp_path / "bench.json"))
    assert result.returncode == 0, result.stderr
    result = run38(python38, *cli, "camera", "--source", frames, "--model", tiny_onnx, "--headless",
                   "--max-frames", "3", "--bench-json", str(tmp_path / "camera.json"))
    assert result.returncode == 0, result.stderr
    assert "3 frames" in result.stdout + result.stderr
    int8 = tmp_path / "int8" / "tiny.int8.onnx"
    result = run38(python38, *cli, "calibrate", tiny_onnx, "--calib", frames, "--images", "2",
                   "--method", "minmax", "--out", str(int8))
    assert result.returncode == 0, result.stderr
    result = run38(python38, *cli, "eval", str(int8), "--data", tiny_dataset, "--limit", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["precision"] == "int8"
    result = run38(python38, *cli, "report", str(tmp_path), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert (tmp_path / "report" / "report.md").is_file() and report["files"]


def test_a_training_command_on_python_38_says_it_needs_310(python38, tiny_dataset, tmp_path):
    result = run38(python38, "-m", "edge_mtl.cli", "train", "--data", tiny_dataset,
                   "--out", str(tmp_path / "run"), "--steps", "1")
    assert result.returncode == 2
    assert "needs Python 3.10 or newer" in result.stderr and "Traceback" not in result.stderr

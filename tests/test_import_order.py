"""The packages of ``src/caffe2tf`` import only downwards along the stages.

Every ``import``/``from ... import`` in every module (function-level ones included,
parsed with :mod:`ast`, never executed) must name a module of the same package or of
a lower stage; docs/DEVELOPING.md draws the same picture.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = SRC / "caffe2tf"

#: The stages, lowest first. A package may import its own modules and any lower stage's.
#: Stage 0 is the foundation every stage may use.
STAGES: list[tuple[str, ...]] = [
    ("caffe2tf", "caffe2tf.errors", "caffe2tf.devices", "caffe2tf.caffe_proto", "caffe2tf.registry"),
    ("caffe2tf.ir",),
    ("caffe2tf.frontend",),
    ("caffe2tf.passes",),
    ("caffe2tf.backend",),
    ("caffe2tf.model_dir",),
    ("caffe2tf.pipeline",),
    ("caffe2tf.verification",),
    ("caffe2tf.segmentation",),
    ("caffe2tf.detection",),
    ("caffe2tf.export",),
    ("caffe2tf.serving",),
    ("caffe2tf.cli",),
]
#: Entry points above every stage (``python -m caffe2tf`` runs the CLI).
ENTRY_POINTS = {"caffe2tf.__main__"}


def unit_of(module: str) -> str:
    """The stage unit (package or module named in STAGES) that ``module`` belongs to."""
    best = ""
    for stage in STAGES:
        for unit in stage:
            if unit != "caffe2tf" and (module == unit or module.startswith(unit + ".")) and len(unit) > len(best):
                best = unit
    return best or "caffe2tf"


def rank_of(unit: str) -> int:
    return next(i for i, stage in enumerate(STAGES) if unit in stage)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every caffe2tf import in ``path``."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # ``from caffe2tf import cli`` names a module too
            if target == "caffe2tf":
                found += [(node.lineno, f"caffe2tf.{a.name}") for a in node.names
                          if (ROOT / a.name).is_dir() or (ROOT / f"{a.name}.py").is_file()]
    return [(line, t) for line, t in found if t == "caffe2tf" or t.startswith("caffe2tf.")]


def violations() -> list[str]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "caffe_pb2.py":
            continue
        mod = module_name(path)
        if mod in ENTRY_POINTS:
            continue
        unit = unit_of(mod)
        for line, target in imports_of(path):
            tunit = unit_of(target)
            if tunit == unit or tunit == "caffe2tf" or rank_of(tunit) == 0 and rank_of(unit) == 0:
                continue
            if rank_of(tunit) >= rank_of(unit):
                out.append(f"{path.relative_to(SRC)}:{line}: {mod} (stage {unit}) imports {target} "
                           f"(stage {tunit}, not below it)")
    return out


def test_every_module_belongs_to_a_stage():
    top = {p.stem if p.suffix == ".py" else p.name for p in ROOT.iterdir()
           if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.name != "__pycache__"}
    named = {u.split(".", 1)[1] for stage in STAGES for u in stage if "." in u} | {"__init__", "__main__"}
    assert top - named == set(), f"place these in STAGES: {sorted(top - named)}"


def test_imports_go_only_downwards():
    bad = violations()
    assert not bad, "imports against the stage order:\n" + "\n".join(bad)


def test_the_check_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    """The check must fail on an upward import hidden in a function, and on a relative one."""
    fake = tmp_path / "src" / "caffe2tf"
    (fake / "frontend").mkdir(parents=True)
    (fake / "cli").mkdir()
    for d in (fake, fake / "frontend", fake / "cli"):
        (d / "__init__.py").write_text("")
    (fake / "frontend" / "reader.py").write_text("def f():\n    from caffe2tf.cli import main\n")
    (fake / "frontend" / "other.py").write_text("from ..cli import main\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "src")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake)
    bad = violations()
    assert any("frontend/reader.py:2" in b for b in bad), bad
    assert any("frontend/other.py:1" in b for b in bad), bad


@pytest.mark.parametrize("module, unit", [("caffe2tf.frontend.shapes._core", "caffe2tf.frontend"),
                                          ("caffe2tf.errors", "caffe2tf.errors"),
                                          ("caffe2tf.backend.layers.ssd", "caffe2tf.backend")])
def test_unit_of(module, unit):
    assert unit_of(module) == unit

"""Shared fixtures: the real-Caffe reference cases in ``../shared/caffe_reference``.

* ``SHARED_REFERENCE``: the directory holding one sub-directory per case.
* ``reference_case`` (a parameter, not a fixture to request by hand): any test
  taking an argument named ``reference_case`` runs once per case directory found
  by glob, with the case's ``Path``; ids are the case names.
* ``case_caffemodel`` (session): ``case_caffemodel(case) -> Path`` of the case's
  caffemodel; a case that ships only ``weights.recipe.json`` gets its caffemodel
  rebuilt once with ``../shared/tools/synth_caffemodel.py`` into ``tests/.cache/``
  (kept between runs, rebuilt when the recipe changes).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_REFERENCE = SHARED / "caffe_reference"
SYNTH_TOOL = SHARED / "tools" / "synth_caffemodel.py"
CACHE = REPO / "tests" / ".cache"


def reference_case_dirs() -> list[Path]:
    """Every case directory (one holding a ``net.prototxt``), sorted by name."""
    return sorted(p.parent for p in SHARED_REFERENCE.glob("*/net.prototxt"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "reference_case" in metafunc.fixturenames:
        cases = reference_case_dirs()
        if not cases:
            pytest.fail(f"no reference cases found under {SHARED_REFERENCE}")
        metafunc.parametrize("reference_case", cases, ids=[c.name for c in cases])


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    if not SHARED_REFERENCE.is_dir():
        pytest.fail(f"{SHARED_REFERENCE} is missing: the reference cases live beside the repository")
    return SHARED_REFERENCE


def _build_from_recipe(case: Path) -> Path:
    recipe = case / "weights.recipe.json"
    if not recipe.is_file():
        raise FileNotFoundError(f"{case.name}: neither weights.caffemodel nor weights.recipe.json")
    digest = hashlib.sha256(recipe.read_bytes() + SYNTH_TOOL.read_bytes()).hexdigest()[:16]
    out = CACHE / "caffemodels" / case.name / f"weights-{digest}.caffemodel"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    try:
        subprocess.run([sys.executable, str(SYNTH_TOOL), str(recipe), str(tmp)], check=True,
                       capture_output=True, text=True, timeout=600)
        os.replace(tmp, out)  # atomic: parallel sessions never see a half-written file
    finally:
        tmp.unlink(missing_ok=True)
    for stale in out.parent.glob("weights-*.caffemodel"):
        if stale != out:
            stale.unlink(missing_ok=True)
    return out


@pytest.fixture(scope="session")
def case_caffemodel() -> Callable[[str | Path], Path]:
    """``case_caffemodel(case)``: the caffemodel of a case (a name or a case directory)."""
    built: dict[str, Path] = {}

    def get(case: str | Path) -> Path:
        case_dir = Path(case) if Path(case).is_absolute() else SHARED_REFERENCE / str(case)
        shipped = case_dir / "weights.caffemodel"
        if shipped.is_file():
            return shipped
        if case_dir.name not in built:
            built[case_dir.name] = _build_from_recipe(case_dir)
        return built[case_dir.name]

    return get

"""The library never imports Slicer/Qt/VTK, and `import TLTTrackerLib` does not import torch."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO_ROOT

FORBIDDEN = {"slicer", "qt", "ctk", "vtk", "sitkUtils", "slicer_core"}


def _imported_roots(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_library_never_imports_slicer_qt_vtk():
    offenders = {}
    for path in sorted((REPO_ROOT / "TLTTrackerLib").rglob("*.py")):
        bad = _imported_roots(path) & FORBIDDEN
        if bad:
            offenders[str(path.relative_to(REPO_ROOT))] = sorted(bad)
    assert offenders == {}


def test_import_does_not_load_torch_or_gui():
    code = (
        "import sys, TLTTrackerLib, TLTTrackerLib.cli;"
        "bad = [m for m in ('torch', 'slicer', 'qt', 'vtk', 'matplotlib') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8", cwd=REPO_ROOT, check=True)
    assert out.stdout.strip() == ""

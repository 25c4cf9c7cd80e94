"""Static checks of the Slicer module: the .ui parses, every widget the code uses exists, every
SlicerParameterName is a parameter-node field, choice widgets offer exactly the allowed values, and the
CMake lists ship every library file the module needs."""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET

from pathlib import Path

from conftest import REPO_ROOT

MODULE = REPO_ROOT / "TLTTracker" / "TLTTracker.py"
UI = REPO_ROOT / "TLTTracker" / "Resources" / "UI" / "TLTTracker.ui"
sys.path.insert(0, str(REPO_ROOT / "TLTTracker"))


def _widgets():
    root = ET.parse(UI).getroot()
    return {w.get("name"): w for w in root.iter("widget") if w.get("name")}


def _parameter_fields():
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TLTTrackerParameterNode")
    return {stmt.target.id for stmt in cls.body if isinstance(stmt, ast.AnnAssign)}


def _annotations():
    """``{field: annotation source}`` of the parameter node class."""
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TLTTrackerParameterNode")
    return {stmt.target.id: ast.unparse(stmt.annotation) for stmt in cls.body if isinstance(stmt, ast.AnnAssign)}


def _module_enums():
    """``{enum class name: [values]}`` for the Enum classes defined in the module."""
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    out = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        if any(ast.unparse(b) == "enum.Enum" for b in cls.bases):
            out[cls.name] = [ast.literal_eval(a.value) for a in cls.body if isinstance(a, ast.Assign)]
    return out


def _method_choices():
    """METHOD_CHOICES as the module computes it (from the library's METHODS)."""
    from TLTTrackerLib.tracker import METHODS

    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "METHOD_CHOICES")
    return eval(compile(ast.Expression(node.value), "METHOD_CHOICES", "eval"), {"METHODS": METHODS})


# Widget classes the parameter-node GUI connectors of Slicer 5.12 accept per field type
# (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py at v5.12.0; exact class match).
_FLOAT_WIDGETS = {"QDoubleSpinBox", "ctkSliderWidget", "qMRMLSliderWidget", "ctkDoubleSlider", "ctkDoubleSpinBox",
                  "qMRMLSpinBox"}
_CONNECTABLE = {
    "float": _FLOAT_WIDGETS,
    "bool": {"QCheckBox", "ctkCheckBox", "QPushButton", "ctkCheckablePushButton"},
    "Path": {"ctkPathLineEdit", "ctkDirectoryButton"},
    "str": {"QLineEdit", "QLabel", "QTextEdit"},
    "choice": {"QComboBox", "ctkComboBox"},
    "node": {"qMRMLNodeComboBox"},
}


def _kind(annotation: str, enums) -> str:
    if annotation.startswith("vtkMRML"):
        return "node"
    if annotation in enums or "Choice(" in annotation:
        return "choice"
    base = annotation.removeprefix("Annotated[").split(",")[0].rstrip("]")
    return base


def test_bound_widgets_have_a_gui_connector():
    """A widget whose class has no connector for its field's type fails in connectGui at module load."""
    classes = {name: w.get("class") for name, w in _widgets().items()}
    annotations, enums = _annotations(), _module_enums()
    for name, w in _widgets().items():
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                field = prop.find("string").text
                kind = _kind(annotations[field], enums)
                assert classes[name] in _CONNECTABLE[kind], (name, classes[name], field, annotations[field])


def test_every_widget_used_in_code_exists_in_ui():
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE.read_text(encoding="utf-8")))
    assert used, "the module should use its .ui"
    missing = used - set(_widgets())
    assert not missing, missing


def test_every_parameter_name_maps_to_a_field_and_back():
    bound = {}
    for name, w in _widgets().items():
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[name] = prop.find("string").text
    fields = _parameter_fields()
    assert set(bound.values()) <= fields, set(bound.values()) - fields
    # every field is either bound to a widget or documented as GUI-free
    assert fields - set(bound.values()) == set(), fields - set(bound.values())


def test_choice_widgets_are_filled_from_the_code():
    """Combo boxes get their items from the parameter node (Choice/Enum), so the .ui must not list stale ones."""
    from TLTTrackerMRML import environment

    widgets = _widgets()
    for name in ("methodComboBox", "modelSourceComboBox", "deviceComboBox"):
        assert widgets[name].findall("item") == [], name
    assert _method_choices() == list(environment.methods())
    enums = _module_enums()
    assert tuple(enums["ModelSource"]) == environment.MODEL_SOURCES
    assert tuple(enums["Device"]) == environment.DEVICES


def test_methods_offered_exist_in_the_library():
    from TLTTrackerLib.tracker import METHODS

    assert _method_choices()[0] == "auto" and set(_method_choices()) == {*METHODS, "auto"}


def test_module_never_imports_torch_at_file_scope():
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top for a in n.names} | {
        (n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)}
    assert "torch" not in names


def test_cmake_ships_the_module_and_the_library():
    module_cmake = (REPO_ROOT / "TLTTracker" / "CMakeLists.txt").read_text(encoding="utf-8")
    for rel in ("TLTTracker.py", "Resources/UI/TLTTracker.ui", "Resources/Icons/TLTTracker.png"):
        assert rel.replace("TLTTracker.", "${MODULE_NAME}.") in module_cmake or rel in module_cmake, rel
    assert "TLTTrackerMRML/*.py" in module_cmake and "GLOB" in module_cmake  # the glue ships whole
    lib_cmake = (REPO_ROOT / "TLTTrackerLib" / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "WITH_SUBDIR" in lib_cmake and "GLOB" in lib_cmake
    top = (REPO_ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert key in top
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in top and 'set(EXTENSION_CATEGORY "Quantification")' in top
    assert "add_subdirectory(TLTTrackerLib)" in top and "add_subdirectory(TLTTracker)" in top


def test_catalog_entry_and_icon():
    import json

    entry = json.loads((REPO_ROOT / "TLTTracker.json").read_text(encoding="utf-8"))
    assert entry["category"] == "Quantification" and entry["build_dependencies"] == ["PyTorch"]
    assert {"$schema", "scm_url", "scm_revision"} <= set(entry)
    png = (REPO_ROOT / "TLTTracker.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (128, 128)


def test_module_file_loads_and_its_self_test_passes_with_gui_stubs(monkeypatch):
    """Import TLTTracker.py with stand-ins for what slicer-core lacks (Qt, ScriptedLoadableModule, i18n,
    parameterNodeWrapper) and run the module's self-test scenario with its TLTTrackerLogic (in process, then a
    child process reusing the registration, then Cancel): catches errors in module-level code and in the Logic
    class that the static checks cannot see."""
    import importlib.util
    import types

    import slicer

    class _Base:
        def __init__(self, *args, **kwargs):
            pass

    stubs = {
        "qt": types.ModuleType("qt"),
        "ctk": types.ModuleType("ctk"),
        "slicer.i18n": types.SimpleNamespace(tr=lambda text: text, translate=lambda context, text: text),
        "slicer.parameterNodeWrapper": types.SimpleNamespace(
            parameterNodeWrapper=lambda cls: cls, Choice=lambda choices: choices, WithinRange=lambda a, b: (a, b)),
        "slicer.ScriptedLoadableModule": types.SimpleNamespace(
            ScriptedLoadableModule=_Base, ScriptedLoadableModuleLogic=_Base, ScriptedLoadableModuleTest=_Base,
            ScriptedLoadableModuleWidget=_Base),
    }
    for name, module in stubs.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("TLTTracker_under_stubs", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    from TLTTrackerMRML import TrackingLogic
    from TLTTrackerMRML.selftest import run_self_test

    assert module.METHOD_CHOICES[0] == "auto" and issubclass(module.TLTTrackerLogic, TrackingLogic)
    assert [m.label() for m in module.Device] and [m.label() for m in module.ModelSource]
    logic = module.TLTTrackerLogic()
    assert logic.resolveChoices("auto", "none", module.Path())[1] is None
    logic.ensureDependencies("affine")  # nothing to install for model-free methods: no dialog
    assert Path(logic.pythonCommand()[0]).exists()

    measured = run_self_test(slicer.vtkMRMLScene(), logic, python=[sys.executable], method="affine", log=len)
    assert measured["background_max_difference_mm"] < 0.01


def test_loading_the_glue_does_not_import_torch():
    """Slicer imports the module file at startup: nothing it pulls in may import torch (seconds, or missing)."""
    import subprocess

    code = (f"import sys; sys.path.insert(0, {str(REPO_ROOT / 'TLTTracker')!r}); import TLTTrackerMRML, "
            "TLTTrackerMRML.environment, TLTTrackerMRML.selftest; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8", check=True, cwd=REPO_ROOT)
    assert out.stdout.strip().splitlines()[-1] == "False"

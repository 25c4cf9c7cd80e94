"""Static checks of the Slicer module: the .ui parses, every widget the code uses exists, every
SlicerParameterName is a parameter-node field, choice widgets offer exactly the allowed values, and the
CMake lists ship every library file the module needs."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET

from conftest import REPO_ROOT

MODULE = REPO_ROOT / "TLTTracker" / "TLTTracker.py"
UI = REPO_ROOT / "TLTTracker" / "Resources" / "UI" / "TLTTracker.ui"


def _widgets():
    root = ET.parse(UI).getroot()
    return {w.get("name"): w for w in root.iter("widget") if w.get("name")}


def _parameter_fields():
    tree = ast.parse(MODULE.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TLTTrackerParameterNode")
    return {stmt.target.id for stmt in cls.body if isinstance(stmt, ast.AnnAssign)}


def _module_constant(name):
    tree = ast.parse(MODULE.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == name)
    return ast.literal_eval(node.value)


def test_every_widget_used_in_code_exists_in_ui():
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE.read_text()))
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


def test_choice_widgets_offer_exactly_the_allowed_values():
    widgets = _widgets()
    for widget, constant in (("methodComboBox", "METHOD_CHOICES"), ("deviceComboBox", "DEVICE_CHOICES")):
        items = [i.find("property/string").text for i in widgets[widget].findall("item")]
        assert items == _module_constant(constant)


def test_methods_offered_exist_in_the_library():
    from TLTTrackerLib.tracker import METHODS

    assert set(_module_constant("METHOD_CHOICES")) <= {*METHODS, "auto"}


def test_module_never_imports_torch_at_file_scope():
    tree = ast.parse(MODULE.read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top for a in n.names} | {
        (n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)}
    assert "torch" not in names


def test_cmake_ships_the_module_and_the_library():
    module_cmake = (REPO_ROOT / "TLTTracker" / "CMakeLists.txt").read_text()
    for rel in ("TLTTracker.py", "Resources/UI/TLTTracker.ui", "Resources/Icons/TLTTracker.png"):
        assert rel.replace("TLTTracker.", "${MODULE_NAME}.") in module_cmake or rel in module_cmake, rel
    assert "TLTTrackerMRML" in module_cmake
    lib_cmake = (REPO_ROOT / "TLTTrackerLib" / "CMakeLists.txt").read_text()
    assert "WITH_SUBDIR" in lib_cmake and "GLOB" in lib_cmake
    top = (REPO_ROOT / "CMakeLists.txt").read_text()
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert key in top
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in top and 'set(EXTENSION_CATEGORY "Quantification")' in top
    assert "add_subdirectory(TLTTrackerLib)" in top and "add_subdirectory(TLTTracker)" in top


def test_catalog_entry_and_icon():
    import json

    entry = json.loads((REPO_ROOT / "TLTTracker.json").read_text())
    assert entry["category"] == "Quantification" and entry["build_dependencies"] == ["PyTorch"]
    assert {"$schema", "scm_url", "scm_revision"} <= set(entry)
    png = (REPO_ROOT / "TLTTracker.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (128, 128)

"""MRML glue under the real non-Qt Slicer core (PyPI slicer-core): volumes, markups, tables, frames.

These tests must run in CI: slicer-core is installed by `make test`; a missing module is an error, not a skip.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import slicer  # from PyPI slicer-core (never `pip install slicer`)
import vtk

from conftest import REPO_ROOT, oblique_direction

sys.path.insert(0, str(REPO_ROOT / "TLTTracker"))

from TLTTrackerMRML import (  # noqa: E402
    TABLE_COLUMNS,
    fill_results_table,
    lesions_from_markups,
    markups_from_results,
    node_from_volume,
    results_csv,
    volume_from_node,
)
from TLTTrackerLib.errors import InputError  # noqa: E402
from TLTTrackerLib.geometry import Volume, lps_to_ras  # noqa: E402
from TLTTrackerLib.tracked_lesion import TrackedLesion  # noqa: E402


@pytest.fixture
def scene():
    s = slicer.vtkMRMLScene()
    app = slicer.vtkMRMLApplicationLogic()
    app.SetMRMLScene(s)
    markups_logic = slicer.vtkSlicerMarkupsLogic()
    markups_logic.SetMRMLScene(s)
    yield s
    s.Clear(1)


@pytest.fixture
def volume(rng):
    arr = rng.integers(-1000, 1000, size=(5, 6, 7)).astype(np.int16)
    return Volume(arr, [10.0, -20.0, 30.0], [0.7, 0.9, 2.5], oblique_direction(25))


def test_volume_round_trip_keeps_geometry_and_voxels(scene, volume):
    node = node_from_volume(volume, scene, "v")
    back = volume_from_node(node)
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.same_geometry(volume, atol=1e-6)
    # Slicer's own RAS->IJK agrees with the library's LPS->index, through the flip
    p_lps = volume.index_kji_to_lps([2, 3, 4])
    m = vtk.vtkMatrix4x4()
    node.GetRASToIJKMatrix(m)
    ijk = m.MultiplyPoint([*lps_to_ras(p_lps), 1.0])[:3]
    np.testing.assert_allclose(ijk, [4, 3, 2], atol=1e-6)


def test_parent_transform_is_applied(scene, volume):
    node = node_from_volume(volume, scene, "v")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = [5.0, -7.0, 11.0]  # RAS mm
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shift))
    node.SetAndObserveTransformNodeID(transform.GetID())
    moved = volume_from_node(node)
    np.testing.assert_allclose(moved.origin_lps_mm, volume.origin_lps_mm + [-5.0, 7.0, 11.0], atol=1e-6)
    np.testing.assert_allclose(moved.direction, volume.direction, atol=1e-9)


def test_empty_volume_node_is_a_clear_error(scene):
    with pytest.raises(InputError, match="no volume"):
        volume_from_node(scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty"))
    with pytest.raises(InputError, match="no volume"):
        volume_from_node(None)


def test_markups_in_world_ras_become_lps_lesions(scene):
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "lesions")
    points.SetControlPointLabelFormat("L%d")  # as the module's lesion list does
    points.AddControlPoint(vtk.vtkVector3d(10.0, 20.0, 30.0), "Liver")
    n = points.AddControlPoint(vtk.vtkVector3d(-1.0, -2.0, -3.0), "")
    points.SetNthControlPointDescription(n, "radius_mm=4.5")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = [1.0, 1.0, 1.0]
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shift))
    points.SetAndObserveTransformNodeID(transform.GetID())
    lesions = lesions_from_markups(points, default_radius_mm=7.0)
    assert [les.id for les in lesions] == ["Liver", "L2"]
    np.testing.assert_allclose(lesions[0].center_lps_mm, [-11.0, -21.0, 31.0])  # world RAS (11, 21, 31)
    assert lesions[0].radius_mm == 7.0 and lesions[1].radius_mm == 4.5
    with pytest.raises(InputError, match="no lesions"):
        lesions_from_markups(scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "empty"))


def _result(i, b, f, conf=0.9, flags=()):
    return TrackedLesion(f"L{i}", np.array(b, float), np.array(f, float), 5.0, "refine", conf, np.array(f, float),
                         flags)


def test_results_become_points_table_and_csv(scene):
    results = [_result(1, [0, 0, 0], [3, 4, 0]), _result(2, [10, 10, 10], [10, 10, 22], 0.3, ("backtrack_mismatch",))]
    node = markups_from_results(results, scene)
    assert node.GetNumberOfControlPoints() == 2 and node.GetNthControlPointLabel(1) == "L2"
    pos = [0.0, 0.0, 0.0]
    node.GetNthControlPointPositionWorld(0, pos)
    np.testing.assert_allclose(pos, [-3, -4, 0])  # LPS (3, 4, 0) -> RAS
    assert "backtrack_mismatch" in node.GetNthControlPointDescription(1)
    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", "t")
    fill_results_table(table_node, results)
    table = table_node.GetTable()
    assert table.GetNumberOfRows() == 2 and table.GetNumberOfColumns() == len(TABLE_COLUMNS)
    assert table.GetValue(0, 0).ToString() == "L1"
    assert table.GetValue(0, 7).ToDouble() == pytest.approx(5.0)  # displacement mm
    assert table.GetValue(1, 8).ToDouble() == pytest.approx(0.3)
    fill_results_table(table_node, results[:1])  # refilled, not appended
    assert table_node.GetTable().GetNumberOfRows() == 1
    csv_text = results_csv(results)
    assert csv_text.splitlines()[0].startswith("Lesion,Baseline R") and "L2" in csv_text


def test_markups_file_is_lps_on_disk(scene, tmp_path):
    results = [_result(1, [0, 0, 0], [3, 4, 5])]
    node = markups_from_results(results, scene)
    path = tmp_path / "fu.mrk.json"
    storage = node.CreateDefaultStorageNode()
    storage.SetFileName(str(path))
    assert storage.WriteData(node)
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    markup = data["markups"][0]
    assert markup["coordinateSystem"] == "LPS"
    np.testing.assert_allclose(markup["controlPoints"][0]["position"], [3, 4, 5])


def test_radius_from_a_line_across_the_lesion(scene):
    from TLTTrackerMRML import set_radius_from_line

    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "lesions")
    points.AddControlPoint(vtk.vtkVector3d(0.0, 0.0, 0.0), "L1")
    points.AddControlPoint(vtk.vtkVector3d(50.0, 0.0, 0.0), "L2")
    line = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", "diameter")
    line.AddControlPoint(vtk.vtkVector3d(44.0, -8.0, 0.0))
    with pytest.raises(InputError, match="draw a line"):
        set_radius_from_line(points, line)  # one end only
    line.AddControlPoint(vtk.vtkVector3d(56.0, 8.0, 0.0))  # 20 mm across L2
    assert set_radius_from_line(points, line) == ("L2", pytest.approx(10.0))
    radii = {les.id: les.radius_mm for les in lesions_from_markups(points, default_radius_mm=3.0)}
    assert radii == {"L1": 3.0, "L2": pytest.approx(10.0)}
    far = scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", "elsewhere")
    far.AddControlPoint(vtk.vtkVector3d(200.0, 0.0, 0.0))
    far.AddControlPoint(vtk.vtkVector3d(210.0, 0.0, 0.0))
    with pytest.raises(InputError, match="nearest lesion"):
        set_radius_from_line(points, far)


def test_round_trip_under_a_rotating_parent_transform_keeps_world_geometry(scene, volume):
    """node (oblique, anisotropic, under a rotation + shift) -> Volume -> new node: same world voxel grid."""
    node = node_from_volume(volume, scene, "v")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    to_parent = np.eye(4)
    a = np.deg2rad(30)
    to_parent[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    to_parent[:3, 3] = [12.0, -3.0, 40.0]
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(to_parent))
    node.SetAndObserveTransformNodeID(transform.GetID())
    hardened = node_from_volume(volume_from_node(node), scene, "hardened")

    def world_ijk_to_ras(n):
        m = vtk.vtkMatrix4x4()
        n.GetIJKToRASMatrix(m)
        world = np.eye(4)
        if n.GetParentTransformNode() is not None:
            w = vtk.vtkMatrix4x4()
            n.GetParentTransformNode().GetMatrixTransformToWorld(w)
            world = slicer.util.arrayFromVTKMatrix(w)
        return world @ slicer.util.arrayFromVTKMatrix(m)

    np.testing.assert_allclose(world_ijk_to_ras(hardened), world_ijk_to_ras(node), atol=1e-9)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(hardened), volume.array)

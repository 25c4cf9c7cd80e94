"""MRML nodes <-> TLTTrackerLib objects. The only place where RAS (Slicer) becomes LPS (library) and back.

Uses only ``slicer.vtkMRML*`` classes, ``slicer.util`` array helpers and ``vtk``, so it runs under the non-Qt
Slicer core from PyPI (``slicer-core``) as well as inside Slicer. Every function takes explicit nodes or a
scene; nothing touches ``slicer.mrmlScene``.

World coordinates: a node's "world" position includes its parent transforms (Slicer world = RAS).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import slicer
import vtk

from TLTTrackerLib.errors import InputError
from TLTTrackerLib.geometry import Volume, lps_to_ras, ras_to_lps
from TLTTrackerLib.lesions import DEFAULT_RADIUS_MM, Lesion
from TLTTrackerLib.confidence import needs_check
from TLTTrackerLib.results import confidence_text

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
RADIUS_PREFIX = "radius_mm="


def _matrix(vtk_matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _to_world(node) -> np.ndarray:
    """4x4 node-to-world (RAS) matrix of a transformable node's parent transforms; error if non-linear."""
    parent = node.GetParentTransformNode()
    if parent is None:
        return np.eye(4)
    if not parent.IsTransformToWorldLinear():
        raise InputError(f"{node.GetName()} is under a non-linear transform; harden it first (Transforms module)")
    m = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(m)
    return _matrix(m)


def volume_from_node(node) -> Volume:
    """Scalar volume node (parent transforms applied) -> Volume in LPS; the voxel array is copied."""
    if node is None or node.GetImageData() is None:
        raise InputError("no volume selected, or the volume has no image data; load a CT volume first")
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    m = LPS_FROM_RAS @ _to_world(node) @ _matrix(ijk_to_ras)
    columns = m[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    direction = columns / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise InputError(f"{node.GetName()} has a sheared or non-rigid geometry; resample it first")
    array = np.array(slicer.util.arrayFromVolume(node), copy=True)
    if array.ndim != 3:
        raise InputError(f"{node.GetName()} is not a 3D scalar volume (array shape {array.shape})")
    return Volume(array, m[:3, 3], spacing, direction)


def node_from_volume(volume: Volume, scene, name: str, node=None):
    """Volume -> (new or given) scalar volume node with the same geometry (RAS in the scene)."""
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    m = LPS_FROM_RAS @ volume.index_to_lps_matrix()  # LPS -> RAS is the same flip
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(m))
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(volume.array))
    return node


def _radius_from_description(text: str, default: float) -> float:
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if part.startswith(RADIUS_PREFIX):
            try:
                return float(part[len(RADIUS_PREFIX):])
            except ValueError:
                break
    return default


def lesions_from_markups(points_node, default_radius_mm: float = DEFAULT_RADIUS_MM) -> list[Lesion]:
    """Point list (world RAS) -> Lesions (LPS). Ids = labels (``L<n>`` when empty); radius from a control
    point description ``radius_mm=R`` if present, else ``default_radius_mm``."""
    if points_node is None or points_node.GetNumberOfControlPoints() == 0:
        raise InputError("no lesions: place at least one point on the baseline (Add lesion)")
    lesions = []
    seen: set[str] = set()
    for n in range(points_node.GetNumberOfControlPoints()):
        if points_node.GetNthControlPointPositionStatus(n) != points_node.PositionDefined:
            continue
        ras = [0.0, 0.0, 0.0]
        points_node.GetNthControlPointPositionWorld(n, ras)
        label = points_node.GetNthControlPointLabel(n) or f"L{n + 1}"
        if label in seen:
            label = f"{label}_{n + 1}"
        seen.add(label)
        radius = _radius_from_description(points_node.GetNthControlPointDescription(n), default_radius_mm)
        lesions.append(Lesion(label, ras_to_lps(np.array(ras)), radius))
    if not lesions:
        raise InputError("no placed lesion points yet: finish placing points on the baseline")
    return lesions


def set_radius_from_line(points_node, line_node) -> tuple[str, float]:
    """Half the world length of a line drawn across a lesion becomes that lesion's radius.

    The lesion is the placed point nearest to the line's centre; its description gets ``radius_mm=R``.
    Returns ``(label, radius_mm)``.

    Raises:
        InputError: unfinished line, no placed lesion, or the line's centre farther than its length from every
            lesion (it was drawn elsewhere).
    """
    if line_node is None or line_node.GetNumberOfDefinedControlPoints() < 2:
        raise InputError("draw a line across the lesion first (both end points), then set the radius")
    defined = [n for n in range(points_node.GetNumberOfControlPoints())
               if points_node.GetNthControlPointPositionStatus(n) == points_node.PositionDefined] if points_node else []
    if not defined:
        raise InputError("place the lesion point first (Add lesion), then draw a line across it")
    ends = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    for n, end in enumerate(ends):
        line_node.GetNthControlPointPositionWorld(n, end)
    ends = [np.array(end) for end in ends]
    length = float(np.linalg.norm(ends[1] - ends[0]))
    centre = (ends[0] + ends[1]) / 2
    distances = []
    for n in defined:
        p = [0.0, 0.0, 0.0]
        points_node.GetNthControlPointPositionWorld(n, p)
        distances.append((float(np.linalg.norm(np.array(p) - centre)), n))
    distance, n = min(distances)
    if length <= 0 or distance > length:
        raise InputError(f"the line's centre is {distance:.0f} mm from the nearest lesion; draw it across the lesion")
    radius = length / 2.0
    points_node.SetNthControlPointDescription(n, f"{RADIUS_PREFIX}{radius:.2f}")
    return points_node.GetNthControlPointLabel(n), radius


def markups_from_results(results: Sequence, scene, name: str = "Follow-up lesions", node=None):
    """TrackedLesion list -> point list in follow-up world RAS, same labels; confidence and method in the
    description, flags as a node attribute."""
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
        node.CreateDefaultDisplayNodes()
    node.RemoveAllControlPoints()
    for r in results:
        ras = lps_to_ras(r.followup_center_lps_mm)
        n = node.AddControlPointWorld(vtk.vtkVector3d(*ras), r.id)
        flags = f", flags {'/'.join(r.flags)}" if r.flags else ""
        node.SetNthControlPointDescription(n, f"confidence {confidence_text(r.confidence)}, {r.method}{flags}")
    node.SetAttribute("TLTTracker.confidences", ",".join(confidence_text(r.confidence, ".4f") for r in results))
    return node


TABLE_COLUMNS = (
    "Lesion", "Baseline R", "Baseline A", "Baseline S", "Follow-up R", "Follow-up A", "Follow-up S",
    "Displacement (mm)", "Confidence", "Check", "Method", "Flags",
)


def results_table_rows(results: Sequence) -> list[list]:
    """Rows of the results table (RAS mm, as shown in Slicer); confidence NaN (shown "nan") when the method
    has none (flag no_confidence_measure / untrained_model in the Flags column); Check is "check" when the
    confidence is below ``TLTTrackerLib.confidence.CHECK_THRESHOLD`` (look at that lesion), else empty."""
    rows = []
    for r in results:
        b, f = lps_to_ras(r.baseline_center_lps_mm), lps_to_ras(r.followup_center_lps_mm)
        rows.append([r.id, *np.round(b, 2).tolist(), *np.round(f, 2).tolist(),
                     round(float(np.linalg.norm(f - b)), 2), round(float(r.confidence), 3),
                     "check" if np.isfinite(r.confidence) and needs_check(r.confidence) else "", r.method,
                     " ".join(r.flags)])
    return rows


def fill_results_table(table_node, results: Sequence):
    """Replace the table's contents with one row per tracked lesion (columns: :data:`TABLE_COLUMNS`)."""
    table = table_node.GetTable()
    table.Initialize()
    numeric = {1, 2, 3, 4, 5, 6, 7, 8}
    for c, name in enumerate(TABLE_COLUMNS):
        col = vtk.vtkDoubleArray() if c in numeric else vtk.vtkStringArray()
        col.SetName(name)
        table.AddColumn(col)
    rows = results_table_rows(results)
    table.SetNumberOfRows(len(rows))
    for i, row in enumerate(rows):
        for c, value in enumerate(row):
            table.SetValue(i, c, vtk.vtkVariant(value if c in numeric else str(value)))
    table.Modified()
    table_node.SetUseColumnTitleAsColumnHeader(True)  # model row i = lesion i (else row 0 shows the names)
    table_node.Modified()
    return table_node


def results_csv(results: Sequence) -> str:
    """The results table as CSV text (RAS mm)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(TABLE_COLUMNS)
    writer.writerows(results_table_rows(results))
    return buf.getvalue()

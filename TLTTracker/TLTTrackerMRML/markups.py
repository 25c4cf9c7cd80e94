"""Markups point lists <-> lesions: baseline clicks in, tracked follow-up points out (world RAS in MRML, LPS inside).

Each baseline control point is one lesion: its label is the lesion id (``L1``, ``L2`` ... by default), its world
position the centre, and an optional ``radius <r> mm`` in its description the radius (else the default radius).
Tracked points are written with the same labels at their follow-up world positions; their description says the
confidence, method and flags.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np
import slicer
import vtk

from TLTTrackerLib.errors import InputError
from TLTTrackerLib.geometry import lps_to_ras, ras_to_lps
from TLTTrackerLib.lesions import Lesion

LABEL_FORMAT = "L%d"
_RADIUS_RE = re.compile(r"\bradius\s*[=:]?\s*([0-9]*\.?[0-9]+)\s*(?:mm)?", re.IGNORECASE)


def _defined(node: Any, index: int) -> bool:
    return node.GetNthControlPointPositionStatus(index) == node.PositionDefined


def point_world_ras(node: Any, index: int) -> np.ndarray:
    """World RAS position (parent transforms applied) of control point ``index``, ``(3,)`` mm."""
    p = [0.0, 0.0, 0.0]
    node.GetNthControlPointPositionWorld(index, p)
    return np.array(p, dtype=float)


def point_radius_mm(node: Any, index: int) -> float | None:
    """Radius written in the description of control point ``index`` (``"radius 6.5 mm"``), or None."""
    match = _RADIUS_RE.search(node.GetNthControlPointDescription(index) or "")
    if match is None:
        return None
    value = float(match.group(1))
    return value if value > 0 else None


def set_point_radius_mm(node: Any, index: int, radius_mm: float) -> None:
    """Store ``radius_mm`` in the description of control point ``index`` (replacing an earlier radius)."""
    if not radius_mm > 0:
        raise InputError(f"lesion radius must be positive, got {radius_mm}")
    text = node.GetNthControlPointDescription(index) or ""
    radius_text = f"radius {radius_mm:.1f} mm"
    text = _RADIUS_RE.sub(radius_text, text) if _RADIUS_RE.search(text) else (f"{text}; {radius_text}" if text else radius_text)
    node.SetNthControlPointDescription(index, text)


def lesions_from_markups(points_node: Any, default_radius_mm: float) -> list[Lesion]:
    """Defined control points of a point list -> lesions (LPS centres), in list order.

    Raises:
        InputError: no node, no placed point, or two points sharing a label.
    """
    if points_node is None:
        raise InputError("no lesion list selected; press 'Add lesion' and click each lesion on the baseline")
    lesions: list[Lesion] = []
    seen: set[str] = set()
    for n in range(points_node.GetNumberOfControlPoints()):
        if not _defined(points_node, n):
            continue
        label = (points_node.GetNthControlPointLabel(n) or "").strip() or f"L{n + 1}"
        if label in seen:
            raise InputError(
                f"two lesions in {points_node.GetName()!r} are labelled {label!r}; rename one (labels identify lesions)"
            )
        seen.add(label)
        radius = point_radius_mm(points_node, n) or float(default_radius_mm)
        lesions.append(Lesion(label, ras_to_lps(point_world_ras(points_node, n)), radius))
    if not lesions:
        raise InputError(
            f"{points_node.GetName()!r} has no placed points; press 'Add lesion' and click each lesion on the baseline"
        )
    return lesions


def radius_from_line(points_node: Any, line_node: Any) -> tuple[int, float]:
    """The lesion a line markup was drawn across, and half the line's length.

    Returns:
        (index of the control point nearest the line's midpoint, radius in mm = world length / 2).

    Raises:
        InputError: the line is unfinished, or its midpoint is farther than its length from every lesion.
    """
    if line_node is None or line_node.GetNumberOfDefinedControlPoints() < 2:
        raise InputError("draw a line across the lesion (both end points) before measuring its radius")
    if points_node is None or points_node.GetNumberOfDefinedControlPoints() == 0:
        raise InputError("place the lesion first ('Add lesion'), then draw a line across it")
    start = point_world_ras(line_node, 0)
    end = point_world_ras(line_node, 1)
    length = float(np.linalg.norm(end - start))
    if length <= 0:
        raise InputError("the line has zero length; draw it across the lesion")
    mid = (start + end) / 2
    candidates = [
        (float(np.linalg.norm(point_world_ras(points_node, n) - mid)), n)
        for n in range(points_node.GetNumberOfControlPoints())
        if _defined(points_node, n)
    ]
    distance, index = min(candidates)
    if distance > length:
        raise InputError(
            f"the line is {distance:.0f} mm from the nearest lesion; draw it across the lesion you want to measure"
        )
    return index, length / 2


def point_positions_by_label(node: Any) -> dict[str, np.ndarray]:
    """``{label: world RAS (3,)}`` for the defined points of ``node`` (empty for None)."""
    if node is None:
        return {}
    return {
        node.GetNthControlPointLabel(n): point_world_ras(node, n)
        for n in range(node.GetNumberOfControlPoints())
        if _defined(node, n)
    }


def describe_result(confidence: float, method: str, flags: Sequence[str]) -> str:
    """Description text of a tracked point, e.g. ``"confidence 0.93, refine, flags: low_similarity"``."""
    text = f"confidence {confidence:.2f}, {method}"
    return f"{text}, flags: {', '.join(flags)}" if flags else text


def write_tracked_points(output_node: Any, rows: Sequence[dict[str, Any]]) -> Any:
    """Replace the points of ``output_node`` with tracked lesions at their world positions.

    Args:
        output_node: a ``vtkMRMLMarkupsFiducialNode`` (a parent transform is respected).
        rows: dicts with ``id``, ``followup_center_lps_mm`` ``(3,)``, ``confidence``, ``method``, ``flags``.
    """
    with slicer.util.NodeModify(output_node):
        output_node.RemoveAllControlPoints()
        for row in rows:
            ras = lps_to_ras(np.asarray(row["followup_center_lps_mm"], dtype=float))
            index = output_node.AddControlPointWorld(vtk.vtkVector3d(*ras.tolist()), str(row["id"]))
            output_node.SetNthControlPointDescription(
                index, describe_result(float(row["confidence"]), str(row["method"]), row.get("flags", ()))
            )
    return output_node

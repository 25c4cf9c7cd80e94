"""The results table (``vtkMRMLTableNode``): one row per lesion, RAS millimetres as Slicer shows them.

Columns: Lesion, Displacement (mm), Confidence, Method, Flags, Baseline R/A/S, Follow-up R/A/S, Radius (mm).
The review columns come first so they are visible in the narrow module panel; positions are world RAS (the
frame of Slicer's views and of the point lists). Displacement is the distance between the two positions, which
is the lesion's motion only when both scans share a patient frame.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import vtk

from TLTTrackerLib.geometry import lps_to_ras

LESION = "Lesion"
DISPLACEMENT = "Displacement (mm)"
CONFIDENCE = "Confidence"
METHOD = "Method"
FLAGS = "Flags"
BASELINE_RAS = ("Baseline R", "Baseline A", "Baseline S")
FOLLOWUP_RAS = ("Follow-up R", "Follow-up A", "Follow-up S")
RADIUS = "Radius (mm)"
COLUMNS = (LESION, DISPLACEMENT, CONFIDENCE, METHOD, FLAGS, *BASELINE_RAS, *FOLLOWUP_RAS, RADIUS)
_TEXT_COLUMNS = {LESION, METHOD, FLAGS}


def row_values(row: dict[str, Any]) -> dict[str, Any]:
    """A tracked-lesion dict (LPS: ``id``, ``baseline_center_lps_mm``, ``followup_center_lps_mm``, ``confidence``,
    ``method``, ``flags``, ``radius_mm``) -> ``{column: value}`` with RAS positions rounded to 0.01 mm."""
    b = lps_to_ras(np.asarray(row["baseline_center_lps_mm"], dtype=float))
    f = lps_to_ras(np.asarray(row["followup_center_lps_mm"], dtype=float))
    values: dict[str, Any] = {
        LESION: str(row["id"]),
        DISPLACEMENT: round(float(np.linalg.norm(f - b)), 2),
        CONFIDENCE: round(float(row["confidence"]), 3),
        METHOD: str(row["method"]),
        FLAGS: ";".join(row.get("flags", ())),
        RADIUS: round(float(row["radius_mm"]), 2),
    }
    values.update({name: round(float(v), 2) for name, v in zip(BASELINE_RAS, b)})
    values.update({name: round(float(v), 2) for name, v in zip(FOLLOWUP_RAS, f)})
    return values


def fill_results_table(table_node: Any, rows: Sequence[dict[str, Any]]) -> Any:
    """Replace the contents of ``table_node`` with one row per tracked lesion (see :func:`row_values`)."""
    values = [row_values(r) for r in rows]
    was_modifying = table_node.StartModify()
    try:
        table_node.RemoveAllColumns()
        for name in COLUMNS:
            array = vtk.vtkStringArray() if name in _TEXT_COLUMNS else vtk.vtkDoubleArray()
            array.SetName(name)
            for v in values:
                if name in _TEXT_COLUMNS:
                    array.InsertNextValue(str(v[name]))
                else:
                    array.InsertNextValue(float(v[name]))
            table_node.AddColumn(array)
        if hasattr(table_node, "SetUseColumnTitleAsColumnHeader"):
            table_node.SetUseColumnTitleAsColumnHeader(True)
        table_node.SetColumnUnitLabel(DISPLACEMENT, "mm")
        table_node.SetColumnDescription(DISPLACEMENT, "distance between baseline and follow-up positions (world RAS)")
        table_node.SetColumnDescription(CONFIDENCE, "0 to 1; low means: check this lesion")
    finally:
        table_node.EndModify(was_modifying)
    return table_node


def table_rows(table_node: Any) -> list[dict[str, Any]]:
    """The table as ``[{column: value}]`` (numbers as float, text as str)."""
    table = table_node.GetTable()
    names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    rows = []
    for r in range(table.GetNumberOfRows()):
        row = {}
        for c, name in enumerate(names):
            text = table_node.GetCellText(r, c)
            row[name] = text if name in _TEXT_COLUMNS or name not in COLUMNS else float(text)
        rows.append(row)
    return rows


def positions_for_lesion(table_node: Any, label: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(baseline RAS (3,), follow-up RAS (3,))`` of the row labelled ``label``, or None."""
    for row in table_rows(table_node):
        if row.get(LESION) == label:
            return (np.array([row[c] for c in BASELINE_RAS]), np.array([row[c] for c in FOLLOWUP_RAS]))
    return None


def write_table_csv(table_node: Any, path: str | os.PathLike[str]) -> Path:
    """Write the table as CSV (header = column names; positions in world RAS mm). Returns the path."""
    p = Path(path)
    rows = table_rows(table_node)
    table = table_node.GetTable()
    names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    tmp = p.with_name(f".{p.name}.part")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for row in rows:
            writer.writerow([row[n] for n in names])
    os.replace(tmp, p)
    return p

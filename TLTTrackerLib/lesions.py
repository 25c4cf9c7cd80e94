"""Lesion lists: the ``LESIONS.json`` / CSV / Slicer ``.mrk.json`` inputs of ``tlt-tracker track``.

LESIONS.json::

    {"coordinate_system": "LPS",            # or "RAS"
     "lesions": [{"id": "L1", "center": [x, y, z], "radius_mm": 8.0}, ...]}

CSV: a header with ``id,x,y,z`` and optionally ``radius_mm`` (frame given by the caller, LPS by default).
Slicer markups (``*.mrk.json``): control points with labels; ``coordinateSystem`` says LPS or RAS.

In memory every centre is LPS mm; :func:`read_lesions` converts and returns the file's frame so that results
can be written back in the frame the user gave.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import InputError
from .geometry import lps_to_ras, ras_to_lps

DEFAULT_RADIUS_MM = 10.0
FRAMES = ("LPS", "RAS")


@dataclass(frozen=True, eq=False)
class Lesion:
    """A lesion on one scan.

    Attributes:
        id: label shown to the user (unique within a list).
        center_lps_mm: ``(3,)`` centre in LPS mm.
        radius_mm: approximate radius in mm (half the longest diameter); sets the template prior width.
    """

    id: str
    center_lps_mm: np.ndarray
    radius_mm: float = DEFAULT_RADIUS_MM

    def __post_init__(self) -> None:
        c = np.asarray(self.center_lps_mm, dtype=float).reshape(-1)
        if c.shape != (3,) or not np.all(np.isfinite(c)):
            shown = np.asarray(self.center_lps_mm, dtype=float).reshape(-1).tolist() if c.size else "nothing"
            raise InputError(f"lesion {self.id!r}: centre must be 3 finite numbers, got {shown}")
        try:
            radius = float(self.radius_mm)
        except (TypeError, ValueError):
            radius = float("nan")
        if not (np.isfinite(radius) and radius > 0):
            raise InputError(f"lesion {self.id!r}: radius_mm must be a number > 0, got {self.radius_mm}")
        object.__setattr__(self, "center_lps_mm", c)
        object.__setattr__(self, "radius_mm", radius)


def to_frame(points_lps_mm: np.ndarray, frame: str) -> np.ndarray:
    """LPS points -> points in ``frame`` ("LPS" or "RAS")."""
    return lps_to_ras(points_lps_mm) if frame.upper() == "RAS" else np.asarray(points_lps_mm, dtype=float)


def from_frame(points: np.ndarray, frame: str) -> np.ndarray:
    """Points in ``frame`` ("LPS" or "RAS") -> LPS."""
    frame = frame.upper()
    if frame not in FRAMES:
        raise InputError(f"unknown coordinate_system {frame!r}; use LPS or RAS")
    return ras_to_lps(points) if frame == "RAS" else np.asarray(points, dtype=float)


def parse_lesion_arg(text: str, index: int, frame: str = "LPS") -> Lesion:
    """``"X,Y,Z[,R]"`` (command line ``--lesion``) -> Lesion with id ``L<index>``."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (3, 4):
        raise InputError(f"--lesion {text!r}: expected X,Y,Z or X,Y,Z,RADIUS_MM in mm")
    radius = values[3] if len(values) == 4 else DEFAULT_RADIUS_MM
    return Lesion(f"L{index}", from_frame(np.array(values[:3]), frame), radius)


def _check_unique(lesions: Sequence[Lesion], source: str) -> list[Lesion]:
    ids = [les.id for les in lesions]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InputError(f"{source}: duplicate lesion ids {dupes}; give each lesion its own id")
    if not lesions:
        raise InputError(f"{source}: no lesions; add at least one lesion")
    return list(lesions)


def _lesions_from_json(data: Any, source: str) -> tuple[list[Lesion], str]:
    if isinstance(data, dict) and "markups" in data:  # Slicer markups file
        out: list[Lesion] = []
        for markup in data["markups"]:
            frame = str(markup.get("coordinateSystem", "LPS")).upper()
            for n, cp in enumerate(markup.get("controlPoints", []), start=1):
                label = str(cp.get("label") or f"L{n}")
                if cp.get("position") is None:
                    raise InputError(f"{source}: markup point {label!r} has no position; place it or delete it")
                out.append(Lesion(label, from_frame(np.array(cp["position"], dtype=float), frame)))
        return _check_unique(out, source), frame if out else "LPS"
    if not isinstance(data, dict) or not isinstance(data.get("lesions"), list):
        raise InputError(f"{source}: expected {{'coordinate_system': 'LPS', 'lesions': [...]}}")
    frame = str(data.get("coordinate_system", "LPS")).upper()
    if frame not in FRAMES:
        raise InputError(f"{source}: unknown coordinate_system {frame!r}; use LPS or RAS")
    lesions = []
    for n, item in enumerate(data["lesions"], start=1):
        try:
            center = from_frame(np.array(item["center"], dtype=float), frame)
            radius = float(item.get("radius_mm", DEFAULT_RADIUS_MM))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source}: lesion #{n} needs 'center': [x, y, z] and optional 'radius_mm'") from exc
        lesions.append(Lesion(str(item.get("id", f"L{n}")), center, radius))
    return _check_unique(lesions, source), frame


def _lesions_from_csv(path: Path, frame: str) -> list[Lesion]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = {f.strip().lower() for f in reader.fieldnames or []}
        if not {"x", "y", "z"} <= fields:
            raise InputError(f"{path}: CSV needs columns id,x,y,z[,radius_mm]; found {sorted(fields)}")
        lesions = []
        for n, row in enumerate(reader, start=1):
            row = {k.strip().lower(): v for k, v in row.items() if k}
            values = {}
            for column in ("x", "y", "z", "radius_mm"):
                text = (row.get(column) or "").strip()
                if column == "radius_mm" and not text:
                    values[column] = DEFAULT_RADIUS_MM
                    continue
                try:
                    values[column] = float(text)
                except ValueError:
                    values[column] = float("nan")
                if not np.isfinite(values[column]):
                    raise InputError(f"{path}: row {n}, column {column}: {text!r} is missing or non-numeric; "
                                     "give a finite number in mm")
            center = from_frame(np.array([values[a] for a in "xyz"]), frame)
            radius = values["radius_mm"]
            lesions.append(Lesion(row.get("id") or f"L{n}", center, radius))
    return _check_unique(lesions, str(path))


def read_lesions(path: str | os.PathLike[str], csv_frame: str = "LPS") -> tuple[list[Lesion], str]:
    """Read lesions from LESIONS.json, a Slicer ``.mrk.json`` or a CSV. Returns (lesions in LPS, file frame)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"lesion file not found: {p}")
    try:
        if p.suffix.lower() == ".csv":
            return _lesions_from_csv(p, csv_frame.upper()), csv_frame.upper()
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{p} is not valid JSON ({exc}); see README for the LESIONS.json format") from exc
        return _lesions_from_json(data, str(p))
    except InputError as exc:
        if str(p) in str(exc):
            raise
        raise InputError(f"{p}: {exc}") from exc  # e.g. a Lesion's own check: name the file too
    except UnicodeDecodeError as exc:
        raise InputError(f"{p} is not UTF-8 text ({exc.reason}); save it as UTF-8 CSV or JSON") from exc


def lesions_to_dict(lesions: Iterable[Lesion], frame: str = "LPS") -> dict[str, Any]:
    """Lesions -> the LESIONS.json structure in ``frame``."""
    return {
        "coordinate_system": frame.upper(),
        "lesions": [
            {"id": les.id, "center": to_frame(les.center_lps_mm, frame).tolist(), "radius_mm": les.radius_mm}
            for les in lesions
        ],
    }


def write_lesions(lesions: Iterable[Lesion], path: str | os.PathLike[str], frame: str = "LPS") -> Path:
    """Write a LESIONS.json file atomically."""
    from .io import atomic_write

    p = Path(path)
    text = json.dumps(lesions_to_dict(lesions, frame), indent=2)
    atomic_write(p, lambda tmp: tmp.write_text(text))
    return p

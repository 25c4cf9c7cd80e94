"""DLS (DeepLesion tracking benchmark, Cai et al., CVPR 2021) annotation and prediction files as typed records.

Formats read (JimmyCai91/DLT, CC-BY-SA-4.0; details in method-notes §5):

- annotations (``valid.json``, ``test.json``): a dict keyed "0001", "0002", ... of directed lesion pairs;
- predictions (``DLTMix.json``): ``{"results": [record, ...], "iso_radius": -1}``, records in the same format
  plus prediction fields; or any file of either shape with a prediction field.

Voxel coordinates are DLS's: centre ``[x, y, z]`` with x = PNG column, y = PNG row, z = slice index within the
sub-volume named by ``source``/``target`` (0-based); boxes ``[xmin, ymin, zmin, w, h, d]``; spacing
``[sx, sy, sz]`` mm; RECIST diameters in *pixels*. No torch, no SimpleITK.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

_KNOWN = {
    "source", "target", "source center", "target center", "source box", "target box", "source spacing",
    "target spacing", "source recist diameter", "target recist diameter",
}


@dataclass(frozen=True, eq=False)
class DLSPair:
    """One directed lesion pair (source scan -> target scan), DLS voxel coordinates (x, y, z)."""

    key: str
    source: str
    target: str
    source_center_xyz: np.ndarray
    target_center_xyz: np.ndarray
    source_box: np.ndarray
    target_box: np.ndarray
    source_spacing_mm: np.ndarray
    target_spacing_mm: np.ndarray
    source_recist_diameter_px: np.ndarray
    target_recist_diameter_px: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def target_radius_mm(self) -> float:
        """DLT's radius: max target RECIST diameter (px) / 2 × target x-spacing."""
        return float(np.max(self.target_recist_diameter_px) / 2.0 * self.target_spacing_mm[0])

    @property
    def source_radius_mm(self) -> float:
        return float(np.max(self.source_recist_diameter_px) / 2.0 * self.source_spacing_mm[0])

    @property
    def target_box_diagonal(self) -> float:
        """TLT code's ``lesion_size``: sqrt(w² + h² + d²) of the target box, in voxels (secondary metric)."""
        return float(np.linalg.norm(self.target_box[3:6]))

    def prediction(self, field_name: str) -> np.ndarray:
        """A prediction field ``[x, y, z]`` of this record (e.g. "predict target center")."""
        if field_name not in self.extra:
            raise InputError(f"pair {self.key} has no field {field_name!r}; choose another --field")
        return np.asarray(self.extra[field_name], dtype=float)[:3]


def _record(key: str, rec: dict[str, Any]) -> DLSPair:
    missing = sorted(_KNOWN - set(rec))
    if missing:
        raise InputError(f"DLS record {key} lacks {missing}; is this a DLS annotation or prediction file?")
    arr = lambda name: np.asarray(rec[name], dtype=float)  # noqa: E731
    return DLSPair(
        key=key,
        source=str(rec["source"]),
        target=str(rec["target"]),
        source_center_xyz=arr("source center"),
        target_center_xyz=arr("target center"),
        source_box=arr("source box"),
        target_box=arr("target box"),
        source_spacing_mm=arr("source spacing"),
        target_spacing_mm=arr("target spacing"),
        source_recist_diameter_px=arr("source recist diameter"),
        target_recist_diameter_px=arr("target recist diameter"),
        extra={k: v for k, v in rec.items() if k not in _KNOWN},
    )


def load_dls(path: str | os.PathLike[str]) -> list[DLSPair]:
    """Read a DLS annotation or prediction file into records (sorted by key; list files keyed by position)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"DLS file not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{p} is not valid JSON ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        items = [(f"{n + 1:04d}", rec) for n, rec in enumerate(data["results"])]
    elif isinstance(data, dict):
        items = sorted((k, v) for k, v in data.items() if isinstance(v, dict))
    elif isinstance(data, list):
        items = [(f"{n + 1:04d}", rec) for n, rec in enumerate(data)]
    else:
        raise InputError(f"{p}: expected a dict of DLS records or {{'results': [...]}}")
    if not items:
        raise InputError(f"{p} holds no DLS records")
    return [_record(k, v) for k, v in items]


def match_ground_truth(predictions: list[DLSPair], truth: list[DLSPair]) -> list[DLSPair]:
    """Ground-truth records for ``predictions``, matched by (source, target, source centre)."""

    def ident(r: DLSPair) -> tuple:
        return (r.source, r.target, tuple(np.round(r.source_center_xyz, 0)))

    index = {ident(t): t for t in truth}
    out = []
    for r in predictions:
        if ident(r) not in index:
            raise InputError(f"prediction {r.key} ({r.source} -> {r.target}) has no match in the ground truth file")
        out.append(index[ident(r)])
    return out

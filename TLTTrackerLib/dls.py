"""DLS (DeepLesion tracking benchmark, Cai et al., CVPR 2021) annotation and prediction files as typed records.

Formats read (JimmyCai91/DLT, CC-BY-SA-4.0; details in method-notes §5.1):

- annotations (``valid.json``, ``test.json``): a dict keyed "0001", "0002", ... of directed lesion pairs;
- DLT's published predictions (``DLTMix.json``): ``{"results": [record, ...], "iso_radius": -1}``, records in
  the annotation format plus prediction fields, in another order than ``test.json`` and without keys;
- any prediction file of either shape, or a dict keyed like the annotations whose records hold only a
  prediction field (``{"0001": {"predict target center": [x, y, z]}, ...}``), scored with ``--ground-truth``.

Voxel coordinates are DLS's: centre ``[x, y, z]`` with x = PNG column, y = PNG row, z = slice index within the
sub-volume named by ``source``/``target`` (0-based, may be fractional); boxes ``[xmin, ymin, zmin, w, h, d]``;
spacing ``[sx, sy, sz]`` mm; RECIST diameters ``[long, short]`` and coordinates ``[p1x, p1y, ..., p4x, p4y]`` in
*pixels*. :func:`TLTTrackerLib.deeplesion.dls_center_to_lps` maps a centre to LPS mm. No torch, no SimpleITK.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import InputError

PREDICT_FIELD = "predict target center"
_REQUIRED = (
    "source", "target", "source center", "target center", "source box", "target box", "source spacing",
    "target spacing", "source recist diameter", "target recist diameter",
)
_OPTIONAL = ("source recist coordinate", "target recist coordinate", PREDICT_FIELD)
_POSITIVE = ("source spacing", "target spacing")
_NON_NEGATIVE = ("source recist diameter", "target recist diameter")
_IDENTITY = ("source", "target", "source center")
MATCH_TOLERANCE_PX = 0.5  # source centres of the same pair differ by ≤ 0.07 px between test.json and DLTMix.json


def _vector(rec: dict[str, Any], name: str, length: int, where: str) -> np.ndarray:
    value = rec.get(name)
    try:
        arr = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.shape != (length,) or not np.all(np.isfinite(arr)):
        raise InputError(f"{where}: {name!r} should be {length} finite numbers, got {value!r}")
    if name in _POSITIVE and not np.all(arr > 0):
        raise InputError(f"{where}: {name!r} must be > 0 (mm), got {arr.tolist()}; fix the record")
    if name in _NON_NEGATIVE and (np.any(arr < 0) or not np.any(arr > 0)):
        raise InputError(f"{where}: {name!r} must be ≥ 0 with a positive long diameter (pixels), got "
                         f"{arr.tolist()}; fix the record")
    return arr


@dataclass(frozen=True, eq=False)
class DLSPair:
    """One directed lesion pair (source scan -> target scan) in DLS voxel coordinates.

    Attributes:
        key: record key ("0001"...); for a ``{"results": [...]}`` file, the 1-based position as "0001"....
        source, target: sub-volume file names ``PPPPPP_SS_SS_aaa-bbb.nii.gz``.
        source_center_xyz, target_center_xyz: ``(3,)`` [x = column, y = row, z = slice in sub-volume].
        source_box, target_box: ``(6,)`` [xmin, ymin, zmin, w, h, d] voxels.
        source_spacing_mm, target_spacing_mm: ``(3,)`` [sx, sy, sz] mm.
        source_recist_diameter_px, target_recist_diameter_px: ``(2,)`` [long, short] pixels.
        source_recist_coordinate_px, target_recist_coordinate_px: ``(8,)`` RECIST end points, or None.
        predict_target_center_xyz: ``(3,)`` the record's "predict target center" (DLT's affine start in the
            annotation files, DLT-Mix's output in DLTMix.json), or None.
        extra: every other field of the record, unchanged.
    """

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
    source_recist_coordinate_px: np.ndarray | None = None
    target_recist_coordinate_px: np.ndarray | None = None
    predict_target_center_xyz: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def target_radius_mm(self) -> float:
        """DLT's radius: max target RECIST diameter (px) / 2 × target x-spacing (mm)."""
        return float(np.max(self.target_recist_diameter_px) / 2.0 * self.target_spacing_mm[0])

    @property
    def source_radius_mm(self) -> float:
        """Max source RECIST diameter (px) / 2 × source x-spacing (mm)."""
        return float(np.max(self.source_recist_diameter_px) / 2.0 * self.source_spacing_mm[0])

    @property
    def target_box_diagonal(self) -> float:
        """TLT code's ``lesion_size``: sqrt(w² + h² + d²) of the target box, in voxels (secondary metric)."""
        return float(np.linalg.norm(self.target_box[3:6]))

    def prediction(self, field_name: str = PREDICT_FIELD) -> np.ndarray:
        """A prediction field ``[x, y, z]`` of this record, ``(3,)`` (e.g. "predict target center")."""
        if field_name == PREDICT_FIELD and self.predict_target_center_xyz is not None:
            return self.predict_target_center_xyz
        if field_name not in self.extra:
            raise InputError(f"pair {self.key} has no field {field_name!r}; choose another --field")
        return _vector(self.extra, field_name, 3, f"pair {self.key}")


@dataclass(frozen=True, eq=False)
class DLSPrediction:
    """A predicted target centre, with what is needed to find its ground truth.

    Attributes:
        key: the record key, or the 1-based position ("0001"...) in a ``{"results": [...]}`` / list file.
        keyed: True when ``key`` came from the file (a dict of records), False when it is a position.
        center_xyz: ``(3,)`` predicted [x, y, z] in target voxels.
        source, target, source_center_xyz: the pair's identity when the record has them, else None.
        pair: the full record when it carries the ground-truth fields, else None.
    """

    key: str
    keyed: bool
    center_xyz: np.ndarray
    source: str | None = None
    target: str | None = None
    source_center_xyz: np.ndarray | None = None
    pair: DLSPair | None = None


def parse_record(key: str, rec: dict[str, Any]) -> DLSPair:
    """One DLS record (a dict with the annotation fields) -> :class:`DLSPair`."""
    where = f"DLS record {key}"
    if not isinstance(rec, dict):
        raise InputError(f"{where} is not an object; is this a DLS annotation or prediction file?")
    missing = [k for k in _REQUIRED if k not in rec]
    if missing:
        raise InputError(f"{where} lacks {missing}; is this a DLS annotation or prediction file?")
    optional = {
        name: _vector(rec, name, 8 if "coordinate" in name else 3, where) if rec.get(name) is not None else None
        for name in _OPTIONAL
    }
    return DLSPair(
        key=key,
        source=str(rec["source"]),
        target=str(rec["target"]),
        source_center_xyz=_vector(rec, "source center", 3, where),
        target_center_xyz=_vector(rec, "target center", 3, where),
        source_box=_vector(rec, "source box", 6, where),
        target_box=_vector(rec, "target box", 6, where),
        source_spacing_mm=_vector(rec, "source spacing", 3, where),
        target_spacing_mm=_vector(rec, "target spacing", 3, where),
        source_recist_diameter_px=_vector(rec, "source recist diameter", 2, where),
        target_recist_diameter_px=_vector(rec, "target recist diameter", 2, where),
        source_recist_coordinate_px=optional["source recist coordinate"],
        target_recist_coordinate_px=optional["target recist coordinate"],
        predict_target_center_xyz=optional[PREDICT_FIELD],
        extra={k: v for k, v in rec.items() if k not in _REQUIRED and k not in _OPTIONAL},
    )


def _read_items(path: str | os.PathLike[str]) -> tuple[list[tuple[str, Any]], bool]:
    """(key, record) items of a DLS-shaped JSON file, and whether the keys come from the file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"DLS file not found: {p}; check the path")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{p} is not valid JSON ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        items, keyed = [(f"{n + 1:04d}", rec) for n, rec in enumerate(data["results"])], False
    elif isinstance(data, dict):
        items, keyed = sorted(data.items()), True
        bad = next((k for k, v in items if not isinstance(v, dict)), None)
        if bad is not None:
            raise InputError(f"{p}: record {bad!r} is not an object ({type(data[bad]).__name__}); "
                             "every value of a keyed DLS file must be a record")
    elif isinstance(data, list):
        items, keyed = [(f"{n + 1:04d}", rec) for n, rec in enumerate(data)], False
    else:
        raise InputError(f"{p}: expected a dict of DLS records or {{'results': [...]}}")
    if not items:
        raise InputError(f"{p} holds no DLS records")
    return items, keyed


def load_dls(path: str | os.PathLike[str]) -> list[DLSPair]:
    """Read a DLS annotation or prediction file into records (dict files sorted by key; list files in order)."""
    items, _ = _read_items(path)
    return [parse_record(k, v) for k, v in items]


def load_predictions(path: str | os.PathLike[str], field: str = PREDICT_FIELD) -> list[DLSPrediction]:
    """Read the predicted centres ``field`` (``[x, y, z]`` target voxels) of every record of a DLS-shaped file.

    Records with all annotation fields also give their ground truth (``DLSPrediction.pair``).
    """
    items, keyed = _read_items(path)
    out = []
    for key, rec in items:
        where = f"{Path(path).name} record {key}"
        if not isinstance(rec, dict) or field not in rec:
            raise InputError(f"{where} has no field {field!r}; choose the prediction field with --field")
        center = _vector(rec, field, 3, where)
        truth_fields = [k for k in _REQUIRED if k not in _IDENTITY]
        present = [k for k in truth_fields if k in rec]
        if present and len(present) < len(truth_fields):  # half a ground-truth record: malformed, not "none"
            raise InputError(f"{where} has some ground-truth fields but lacks "
                             f"{[k for k in truth_fields if k not in rec]}; fix the record or drop them all")
        pair = parse_record(key, rec) if all(k in rec for k in _REQUIRED) else None
        has_id = all(k in rec for k in _IDENTITY)
        if not has_id and any(k in rec for k in _IDENTITY):
            raise InputError(f"{where} names its pair only in part; give all of {list(_IDENTITY)} or none")
        out.append(DLSPrediction(
            key=key, keyed=keyed, center_xyz=center,
            source=str(rec["source"]) if has_id else None,
            target=str(rec["target"]) if has_id else None,
            source_center_xyz=_vector(rec, "source center", 3, where) if has_id else None,
            pair=pair,
        ))
    return out


def match_ground_truth(
    predictions: Sequence[DLSPrediction], truth: Sequence[DLSPair], tolerance_px: float = MATCH_TOLERANCE_PX
) -> list[DLSPair]:
    """The ground-truth record of each prediction.

    By key when the prediction file is keyed like the annotations (and, when the record names its pair, the
    key's pair must be the same one); otherwise by identity: same ``source`` and ``target`` and the nearest
    source centre, at most ``tolerance_px`` away (DLTMix.json has no keys and a different order than test.json).

    Raises:
        InputError: a prediction has no ground truth, or a key names another pair in the two files.
    """
    by_key = {t.key: t for t in truth}
    by_scans: dict[tuple[str, str], list[DLSPair]] = defaultdict(list)
    for t in truth:
        by_scans[(t.source, t.target)].append(t)

    def same_pair(p: DLSPrediction, t: DLSPair) -> bool:
        return (p.source, p.target) == (t.source, t.target) and bool(
            np.linalg.norm(p.source_center_xyz - t.source_center_xyz) <= tolerance_px
        )

    out = []
    for p in predictions:
        if p.keyed and p.key in by_key:
            t = by_key[p.key]
            if p.source is not None and not same_pair(p, t):
                raise InputError(
                    f"prediction {p.key} is {p.source} -> {p.target} but ground truth {p.key} is "
                    f"{t.source} -> {t.target}; are the two files from the same DLS split?"
                )
            out.append(t)
            continue
        if p.source is None:
            raise InputError(f"prediction {p.key} has no ground truth record of that key; check --ground-truth")
        candidates = by_scans.get((p.source, p.target), [])
        best = min(candidates, key=lambda t: float(np.linalg.norm(t.source_center_xyz - p.source_center_xyz)),
                   default=None)
        if best is None or not same_pair(p, best):
            raise InputError(
                f"prediction {p.key} ({p.source} -> {p.target}) has no match in the ground truth file"
            )
        out.append(best)
    return out

"""RESULTS.json / CSV: the output contract of ``tlt-tracker track`` (and of the Slicer module's export).

RESULTS.json::

    {"coordinate_system": "LPS",
     "lesions": [{"id": "L1", "baseline_center": [x, y, z], "followup_center": [x, y, z], "method": "refine",
                  "confidence": 0.93, "affine_center": [x, y, z], "radius_mm": 6.0, "flags": [],
                  "needs_check": false}, ...],
     "registration": {"baseline_to_followup": {...}, "metric_value": ..., "seconds": ...},
     "timing_s": {"read": ..., "registration": ..., "tracking": ..., "total": ...},
     "version": "0.1.0"}

Centres are mm in ``coordinate_system`` (the frame the lesions were given in). ``confidence`` is ``null``
(CSV: empty, table: ``n/a``) when the method has no confidence measure: ``affine`` (flag
``no_confidence_measure``) and a model that was never trained (flag ``untrained_model``). ``needs_check``
is true when the confidence is below ``confidence.CHECK_THRESHOLD`` (0.5): look at that lesion (the table
shows ``check``); ``null`` with a ``null`` confidence.
"""

from __future__ import annotations

import csv
import io as _io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__
from .confidence import needs_check
from .lesions import to_frame

CSV_COLUMNS = (
    "id", "baseline_x", "baseline_y", "baseline_z", "followup_x", "followup_y", "followup_z",
    "displacement_mm", "confidence", "method", "radius_mm", "flags",
)


def confidence_json(value: float | None) -> float | None:
    """A confidence for RESULTS.json: rounded to 4 places, or None (``null``) when there is none (NaN)."""
    if value is None or not np.isfinite(float(value)):
        return None
    return round(float(value), 4)


def confidence_text(value: float | None, fmt: str = ".2f") -> str:
    """A confidence for people: formatted, or ``n/a`` when there is none (None or NaN)."""
    return "n/a" if value is None or not np.isfinite(float(value)) else format(float(value), fmt)


def results_to_dict(
    results: Sequence[Any], registration: Any, timing_s: dict[str, float], frame: str = "LPS"
) -> dict[str, Any]:
    """TrackedLesion list + RegistrationResult -> the RESULTS.json structure, centres in ``frame``."""
    lesions = []
    for r in results:
        lesions.append(
            {
                "id": r.id,
                "baseline_center": to_frame(r.baseline_center_lps_mm, frame).round(3).tolist(),
                "followup_center": to_frame(r.followup_center_lps_mm, frame).round(3).tolist(),
                "method": r.method,
                "confidence": confidence_json(r.confidence),
                "affine_center": to_frame(r.affine_center_lps_mm, frame).round(3).tolist(),
                "radius_mm": r.radius_mm,
                "flags": list(r.flags),
                "needs_check": None if confidence_json(r.confidence) is None else needs_check(r.confidence),
            }
        )
    return {
        "coordinate_system": frame.upper(),
        "lesions": lesions,
        "registration": registration.to_dict() if registration is not None else None,
        "timing_s": {k: round(float(v), 4) for k, v in timing_s.items()},
        "version": __version__,
    }


def _csv_text(payload: dict[str, Any]) -> str:
    buf = _io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for les in payload["lesions"]:
        b, f = np.array(les["baseline_center"]), np.array(les["followup_center"])
        writer.writerow(
            [les["id"], *b.tolist(), *f.tolist(), round(float(np.linalg.norm(f - b)), 3),
             "" if les["confidence"] is None else les["confidence"],
             les["method"], les["radius_mm"], ";".join(les["flags"])]
        )
    return buf.getvalue()


def write_results(payload: dict[str, Any], path: str | Path) -> Path:
    """Write RESULTS as JSON (``.json``) or CSV (``.csv``); InputError for any other suffix."""
    from .io import atomic_write

    from .errors import InputError

    p = Path(path)
    if p.suffix.lower() not in (".json", ".csv"):
        raise InputError(f"results file {p}: unknown file type {p.suffix or '(none)'}; name it .json or .csv")
    text = _csv_text(payload) if p.suffix.lower() == ".csv" else json.dumps(payload, indent=2)
    atomic_write(p, lambda tmp: tmp.write_text(text))
    return p


def format_table(payload: dict[str, Any]) -> str:
    """A human-readable table of a RESULTS payload."""
    frame = payload["coordinate_system"]
    head = (f"{'lesion':<10} {'follow-up centre (' + frame + ' mm)':<32} {'moved mm':>8} {'conf':>5} {'':5}  "
            "method  flags")
    lines = [head, "-" * len(head)]
    for les in payload["lesions"]:
        b, f = np.array(les["baseline_center"]), np.array(les["followup_center"])
        centre = "(" + ", ".join(f"{v:7.1f}" for v in f) + ")"
        lines.append(
            f"{les['id']:<10} {centre:<32} {np.linalg.norm(f - b):8.1f} {confidence_text(les['confidence']):>5} "
            f"{'check' if les.get('needs_check') else '':5}  "
            f"{les['method']:<7} {','.join(les['flags'])}"
        )
    t = payload.get("timing_s", {})
    if t:
        lines.append("time: " + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()))
    return "\n".join(lines)


def results_from_dict(payload: dict[str, Any]) -> list[Any]:
    """RESULTS.json structure -> TrackedLesion list (centres converted back to LPS)."""
    from .lesions import from_frame
    from .tracked_lesion import TrackedLesion

    frame = payload.get("coordinate_system", "LPS")
    out = []
    for les in payload["lesions"]:
        out.append(
            TrackedLesion(
                id=les["id"],
                baseline_center_lps_mm=from_frame(np.array(les["baseline_center"]), frame),
                followup_center_lps_mm=from_frame(np.array(les["followup_center"]), frame),
                radius_mm=float(les.get("radius_mm", 10.0)),
                method=les["method"],
                confidence=float("nan") if les["confidence"] is None else float(les["confidence"]),
                affine_center_lps_mm=from_frame(np.array(les.get("affine_center", les["followup_center"])), frame),
                flags=tuple(les.get("flags", ())),
            )
        )
    return out

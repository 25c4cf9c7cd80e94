"""What was tracked last time, stored on the output point list so re-tracking can skip unchanged lesions.

The state is one JSON node attribute (saved with the scene): the scan-pair fingerprint, the method settings, the
pair's registration (reused while the pair is unchanged) and, per lesion id, the baseline input and the result
(LPS mm, as TLTTrackerLib speaks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from TLTTrackerLib.lesions import Lesion
from TLTTrackerLib.tracker import TrackedLesion

STATE_ATTRIBUTE = "TLTTracker.state"
STATE_VERSION = 1
_MOVED_MM = 1e-3  # a lesion "changed" when its centre moved more than this or its radius changed


@dataclass
class TrackState:
    """Attributes:
    pair_key: fingerprint of (baseline, follow-up) world geometry and voxels.
    settings_key: method and model the results were made with.
    registration: ``RegistrationResult.to_dict()`` of the pair, or None.
    inputs: ``{id: {"center_lps_mm": [x, y, z], "radius_mm": r}}`` as tracked.
    results: ``{id: tracked_to_dict(...)}``.
    heatmap_node_ids: ``{id: volume node ID}`` of heatmap overlays.
    """

    pair_key: str
    settings_key: str
    registration: dict[str, Any] | None = None
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    heatmap_node_ids: dict[str, str] = field(default_factory=dict)


def tracked_to_dict(t: TrackedLesion) -> dict[str, Any]:
    """TrackedLesion -> plain JSON-able dict (LPS mm; the heatmap is not included)."""
    return {
        "id": t.id,
        "baseline_center_lps_mm": np.asarray(t.baseline_center_lps_mm, dtype=float).tolist(),
        "followup_center_lps_mm": np.asarray(t.followup_center_lps_mm, dtype=float).tolist(),
        "affine_center_lps_mm": np.asarray(t.affine_center_lps_mm, dtype=float).tolist(),
        "radius_mm": float(t.radius_mm),
        "method": t.method,
        "confidence": float(t.confidence),
        "flags": list(t.flags),
    }


def lesion_input(lesion: Lesion) -> dict[str, Any]:
    return {"center_lps_mm": lesion.center_lps_mm.tolist(), "radius_mm": lesion.radius_mm}


def read_state(node: Any) -> TrackState | None:
    """The state stored on ``node``, or None (no node, no state, or an unreadable/older state)."""
    text = node.GetAttribute(STATE_ATTRIBUTE) if node is not None else None
    if not text:
        return None
    try:
        data = json.loads(text)
        if data.get("version") != STATE_VERSION:
            return None
        return TrackState(
            pair_key=str(data["pair_key"]),
            settings_key=str(data["settings_key"]),
            registration=data.get("registration"),
            inputs=dict(data.get("inputs", {})),
            results=dict(data.get("results", {})),
            heatmap_node_ids=dict(data.get("heatmap_node_ids", {})),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def write_state(node: Any, state: TrackState) -> None:
    data = {"version": STATE_VERSION, **state.__dict__}
    node.SetAttribute(STATE_ATTRIBUTE, json.dumps(data))


def lesion_changed(lesion: Lesion, previous_input: dict[str, Any] | None) -> bool:
    """True when ``lesion`` is new or its centre or radius differs from ``previous_input``."""
    if previous_input is None:
        return True
    moved = np.linalg.norm(lesion.center_lps_mm - np.asarray(previous_input["center_lps_mm"], dtype=float))
    return bool(moved > _MOVED_MM or abs(lesion.radius_mm - float(previous_input["radius_mm"])) > 1e-6)


def lesions_to_track(
    lesions: Sequence[Lesion], previous: TrackState | None, pair_key: str, settings_key: str, only_changed: bool
) -> list[Lesion]:
    """All lesions, or (``only_changed`` and same pair and settings) only new or moved ones with a result."""
    if not only_changed or previous is None or previous.pair_key != pair_key or previous.settings_key != settings_key:
        return list(lesions)
    return [
        les for les in lesions
        if les.id not in previous.results or lesion_changed(les, previous.inputs.get(les.id))
    ]

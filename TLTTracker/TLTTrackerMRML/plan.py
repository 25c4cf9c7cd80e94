"""A tracking job as plain data: what to track (read from the scene once) and what came back.

A :class:`TrackPlan` is made on the main thread from MRML nodes; after that, running it (in this process or in
a ``tlt-tracker track`` subprocess) touches no node. The :class:`TrackOutcome` is applied to the scene on the
main thread, only on success.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.lesions import Lesion
from TLTTrackerLib.tracker import TrackedLesion

from .state import TrackState


@dataclass
class TrackPlan:
    """Attributes:
    baseline, followup: world LPS volumes copied from the nodes.
    lesions: every baseline lesion (node order); to_track: the subset to compute now.
    method, model, device: LesionTracker / CLI arguments (model: path, registry name or None).
    registration: ``RegistrationResult.to_dict()`` to reuse, or None to register.
    with_heatmap: ask for per-lesion heatmaps.
    pair_key, settings_key: fingerprints stored with the results.
    previous: the state found on the output node (results reused for unchanged lesions).
    nodes: the MRML nodes the plan was made from and writes to (``baseline``, ``followup``, ``lesions``,
        ``output`` and ``table``, the last two possibly None until applied).
    """

    baseline: Volume
    followup: Volume
    lesions: list[Lesion]
    to_track: list[Lesion]
    method: str
    model: str | None
    device: str
    registration: dict[str, Any] | None
    with_heatmap: bool
    pair_key: str
    settings_key: str
    previous: TrackState | None = None
    nodes: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrackOutcome:
    """Results for ``plan.to_track`` (same order), the pair's registration dict and timings in seconds."""

    results: list[TrackedLesion]
    registration: dict[str, Any] | None
    timing_s: dict[str, float] = field(default_factory=dict)

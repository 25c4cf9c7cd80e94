"""TrackedLesion: where one baseline lesion is in the follow-up scan (what :class:`~.tracker.LesionTracker` returns).

Every centre is LPS mm; ``results.py`` writes and reads it as RESULTS.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .confidence import needs_check
from .geometry import Volume


@dataclass(frozen=True, eq=False)
class TrackedLesion:
    """Where one baseline lesion is in the follow-up scan.

    Attributes:
        id: the lesion's id.
        baseline_center_lps_mm: ``(3,)`` the input centre on the baseline.
        followup_center_lps_mm: ``(3,)`` the tracked centre on the follow-up.
        radius_mm: the input radius.
        method: the method that produced ``followup_center_lps_mm``.
        confidence: in [0, 1]; low means "check this one"; NaN when the method has no confidence measure
            ("affine": flag ``"no_confidence_measure"``; an untrained model: flag ``"untrained_model"``).
        affine_center_lps_mm: ``(3,)`` the registration-only estimate.
        flags: warnings such as ``"outside_followup"`` or ``"backtrack_mismatch"``.
        heatmap: optional follow-up likelihood as a Volume (follow-up geometry), when requested.
    """

    id: str
    baseline_center_lps_mm: np.ndarray
    followup_center_lps_mm: np.ndarray
    radius_mm: float
    method: str
    confidence: float
    affine_center_lps_mm: np.ndarray
    flags: tuple[str, ...] = ()
    heatmap: Volume | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_check(self) -> bool:
        """True when the confidence is below ``confidence.CHECK_THRESHOLD`` or unknown: check by eye."""
        return needs_check(self.confidence)

    @property
    def displacement_mm(self) -> float:
        """Distance between the baseline and follow-up centres in mm (meaningful when frames are shared)."""
        return float(np.linalg.norm(self.followup_center_lps_mm - self.baseline_center_lps_mm))

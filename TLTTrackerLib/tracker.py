"""LesionTracker: the end-to-end tracking session (SAM-predictor style: set the pair once, track many).

    tracker = LesionTracker(method="auto")
    tracker.set_pair(baseline, followup)          # registration + per-pair preprocessing, cached
    results = tracker.track([Lesion("L1", center_lps_mm, radius_mm=6.0)])
    results[0].followup_center_lps_mm             # (3,) LPS mm in the follow-up scan

Every centre is LPS mm. ``progress(fraction, message)`` callbacks report work; ``cancel()`` returning True
stops between steps with :class:`Cancelled`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .errors import InputError, TLTError
from .geometry import Volume
from .lesions import Lesion
from .registration import RegistrationResult, register_affine

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]

METHODS = ("affine",)


class Cancelled(TLTError):
    """The user cancelled tracking."""


@dataclass(frozen=True, eq=False)
class TrackedLesion:
    """Where one baseline lesion is in the follow-up scan.

    Attributes:
        id: the lesion's id.
        baseline_center_lps_mm: ``(3,)`` the input centre on the baseline.
        followup_center_lps_mm: ``(3,)`` the tracked centre on the follow-up.
        radius_mm: the input radius.
        method: the method that produced ``followup_center_lps_mm``.
        confidence: in [0, 1]; low means "check this one".
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
    def displacement_mm(self) -> float:
        """Distance between the baseline and follow-up centres in mm (meaningful when frames are shared)."""
        return float(np.linalg.norm(self.followup_center_lps_mm - self.baseline_center_lps_mm))


class LesionTracker:
    """Tracks lesions between one baseline and one follow-up scan.

    Args:
        method: "affine" (registration only) or "auto" (the best measured method available).
        model: a model path or registry name for learned methods (``None``: bundled model if any).
        device: "auto", "cpu" or "cuda" for learned methods.
    """

    def __init__(self, method: str = "auto", model: str | None = None, device: str = "auto") -> None:
        if method not in (*METHODS, "auto"):
            raise InputError(f"unknown method {method!r}; choose one of {', '.join((*METHODS, 'auto'))}")
        self.method = method
        self.model = model
        self.device = device
        self.baseline: Volume | None = None
        self.followup: Volume | None = None
        self.registration: RegistrationResult | None = None
        self.timing_s: dict[str, float] = {}

    def resolved_method(self) -> str:
        return "affine" if self.method == "auto" else self.method

    def set_pair(
        self,
        baseline: Volume,
        followup: Volume,
        registration: RegistrationResult | None = None,
        progress: ProgressFn | None = None,
    ) -> RegistrationResult:
        """Register the pair (or reuse ``registration``) and cache it for :meth:`track`."""
        self.baseline, self.followup = baseline, followup
        t0 = time.perf_counter()
        if registration is None:
            if progress:
                progress(0.0, "registering baseline to follow-up")
            registration = register_affine(baseline, followup)
        self.registration = registration
        self.timing_s["registration"] = time.perf_counter() - t0
        logger.info("registration: metric %.4f in %.2f s", registration.metric_value, registration.seconds)
        return registration

    def track(
        self,
        lesions: Sequence[Lesion],
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> list[TrackedLesion]:
        """Track ``lesions`` (baseline LPS) into the follow-up. Call :meth:`set_pair` first."""
        if self.registration is None or self.baseline is None or self.followup is None:
            raise InputError("no scan pair set: call set_pair(baseline, followup) before track()")
        for les in lesions:
            if not self.baseline.contains_lps(les.center_lps_mm):
                raise InputError(
                    f"lesion {les.id} at LPS {np.round(les.center_lps_mm, 1).tolist()} mm lies outside the "
                    "baseline volume; place it on the baseline scan"
                )
        t0 = time.perf_counter()
        results = []
        for n, les in enumerate(lesions):
            if cancel and cancel():
                raise Cancelled("tracking cancelled")
            affine_c = self.registration.baseline_to_followup.apply(les.center_lps_mm)
            flags = () if self.followup.contains_lps(affine_c) else ("outside_followup",)
            results.append(
                TrackedLesion(
                    id=les.id,
                    baseline_center_lps_mm=les.center_lps_mm,
                    followup_center_lps_mm=affine_c,
                    radius_mm=les.radius_mm,
                    method="affine",
                    confidence=0.5 if not flags else 0.0,
                    affine_center_lps_mm=affine_c,
                    flags=flags,
                )
            )
            if progress:
                progress((n + 1) / len(lesions), f"tracked {les.id}")
        self.timing_s["tracking"] = time.perf_counter() - t0
        return results

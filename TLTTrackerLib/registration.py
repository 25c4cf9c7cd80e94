"""Affine registration of a baseline CT to a follow-up CT (SimpleITK).

``register_affine(baseline, followup)`` returns a :class:`RegistrationResult` whose
``baseline_to_followup`` maps baseline LPS points to follow-up LPS points.
(ITK's optimised transform maps follow-up (fixed) points to baseline (moving) points; we invert it.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .geometry import Volume
from .io import volume_to_sitk
from .transforms import AffineTransform

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True, eq=False)
class RegistrationResult:
    """Outcome of :func:`register_affine`.

    Attributes:
        baseline_to_followup: maps baseline LPS mm points to follow-up LPS mm points.
        metric_value: final image metric (Mattes mutual information; lower, more negative, is better).
        seconds: wall time of the registration.
        info: extra figures (iterations per level, shrink factors, initialisation).
    """

    baseline_to_followup: AffineTransform
    metric_value: float
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def followup_to_baseline(self) -> AffineTransform:
        return self.baseline_to_followup.inverse()

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline_to_followup": self.baseline_to_followup.to_dict(),
            "metric_value": self.metric_value,
            "seconds": self.seconds,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RegistrationResult":
        """Inverse of :meth:`to_dict` (a saved registration, reused without recomputing: ``seconds`` = 0)."""
        return cls(
            baseline_to_followup=AffineTransform.from_dict(d["baseline_to_followup"]),
            metric_value=float(d.get("metric_value", float("nan"))),
            seconds=0.0,
            info={**d.get("info", {}), "reused": True},
        )


def register_affine(
    baseline: Volume,
    followup: Volume,
    progress: ProgressFn | None = None,
) -> RegistrationResult:
    """Register ``baseline`` to ``followup`` with a multi-resolution affine (Mattes MI), moments start."""
    import SimpleITK as sitk

    t0 = time.perf_counter()
    fixed = sitk.Cast(volume_to_sitk(followup.with_array(np.maximum(followup.array, -1024))), sitk.sitkFloat32)
    moving = sitk.Cast(volume_to_sitk(baseline.with_array(np.maximum(baseline.array, -1024))), sitk.sitkFloat32)
    init = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.05, seed=1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-3, 100, relaxationFactor=0.6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([8, 4, 2])
    reg.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.5])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(init, inPlace=False)
    out = reg.Execute(fixed, moving)
    affine_fixed_to_moving = _to_affine(out)
    seconds = time.perf_counter() - t0
    if progress:
        progress(1.0, "registration done")
    return RegistrationResult(
        baseline_to_followup=affine_fixed_to_moving.inverse(),
        metric_value=float(reg.GetMetricValue()),
        seconds=seconds,
        info={"stop": reg.GetOptimizerStopConditionDescription()},
    )


def _to_affine(transform: Any) -> AffineTransform:
    """Any SimpleITK transform made of affine pieces -> AffineTransform (same direction as ITK's)."""
    import SimpleITK as sitk

    total = AffineTransform.identity()
    if transform.GetName() == "CompositeTransform":
        comp = sitk.CompositeTransform(transform)
        # ITK composite applies the last-added transform first.
        pieces = [comp.GetNthTransform(i) for i in range(comp.GetNumberOfTransforms())][::-1]
    else:
        pieces = [transform]
    for piece in pieces:
        a = np.array(piece.GetMatrix()).reshape(3, 3)
        c = np.array(piece.GetCenter())
        t = np.array(piece.GetTranslation())
        total = total.then(AffineTransform(a, t + c - a @ c))
    return total

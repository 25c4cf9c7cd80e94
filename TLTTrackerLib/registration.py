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

from .errors import InputError
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


def _working_image(volume: Volume, spacing_mm: float) -> Any:
    """Float32 SimpleITK image, HU clamped to [-1024, 1500] and shifted by +1024 (air = 0), averaged down
    (BinShrink) to about ``spacing_mm`` per axis. Geometry (LPS) is kept."""
    import SimpleITK as sitk

    array = np.clip(volume.array, -1024, 1500).astype(np.float32) + 1024.0
    image = volume_to_sitk(volume.with_array(array))
    shrink = [max(1, int(round(spacing_mm / s))) for s in volume.spacing_mm]
    return sitk.BinShrink(image, shrink) if max(shrink) > 1 else image


def _body_centroid_lps(image: Any, threshold: float = 524.0) -> np.ndarray:
    """Centroid (LPS mm) of voxels above ``threshold`` (-500 HU after the +1024 shift) of a working image."""
    import SimpleITK as sitk

    arr = sitk.GetArrayViewFromImage(image)
    idx = np.argwhere(arr > threshold)
    if len(idx) == 0:
        raise InputError("a volume has no body voxels above -500 HU; is it a CT scan in Hounsfield units?")
    k, j, i = idx.mean(axis=0)
    return np.array(image.TransformContinuousIndexToPhysicalPoint((float(i), float(j), float(k))))


def _z_extent_mm(image: Any) -> float:
    corners = [image.TransformIndexToPhysicalPoint((0, 0, 0)),
               image.TransformIndexToPhysicalPoint((0, 0, image.GetSize()[2] - 1))]
    return abs(corners[1][2] - corners[0][2]) + image.GetSpacing()[2]


def register_affine(
    baseline: Volume,
    followup: Volume,
    progress: ProgressFn | None = None,
    coarse_mm: float = 6.0,
    fine_mm: float = 3.0,
    iterations: int = 80,
    sampling: float = 0.15,
    z_search_step_mm: float = 8.0,
) -> RegistrationResult:
    """Register ``baseline`` to ``followup`` (affine, Mattes mutual information, two resolutions).

    Start: the body centroids aligned in x and y; along z (fields of view often differ, and DeepLesion volumes
    have origin 0) the best of a coarse search over shifts is taken. Then affine optimisation at ``coarse_mm``
    and ``fine_mm`` working resolutions (images averaged down once, not smoothed per level).

    Returns the transform mapping baseline LPS points to follow-up LPS points, and the final metric value
    (negative mutual information: lower is better).
    """
    import SimpleITK as sitk

    for name, vol in (("baseline", baseline), ("follow-up", followup)):
        if min(vol.shape_kji) < 4 or np.ptp(vol.array) == 0:
            raise InputError(f"the {name} volume is too small or constant ({vol.shape_kji}); give a CT volume")
    t0 = time.perf_counter()
    fixed_fine = _working_image(followup, fine_mm)
    moving_fine = _working_image(baseline, fine_mm)
    factor = max(1, int(round(coarse_mm / fine_mm)))
    fixed_coarse = sitk.BinShrink(fixed_fine, [factor] * 3) if factor > 1 else fixed_fine
    moving_coarse = sitk.BinShrink(moving_fine, [factor] * 3) if factor > 1 else moving_fine
    if progress:
        progress(0.1, "registration: initialising")

    # Fixed (follow-up) point y -> moving (baseline) point x. Start: centroids aligned, then a z search.
    c_fixed = _body_centroid_lps(fixed_coarse)
    c_moving = _body_centroid_lps(moving_coarse)
    init = sitk.AffineTransform(3)
    init.SetCenter(tuple(c_fixed))
    reg = _method(iterations, sampling)
    z_range = 0.5 * abs(_z_extent_mm(fixed_coarse) - _z_extent_mm(moving_coarse)) + 2 * z_search_step_mm
    best = None
    for dz in np.arange(-z_range, z_range + 1e-6, z_search_step_mm):
        init.SetTranslation(tuple(c_moving - c_fixed + np.array([0.0, 0.0, dz])))
        reg.SetInitialTransform(init, inPlace=False)
        value = reg.MetricEvaluate(fixed_coarse, moving_coarse)
        if best is None or value < best[0]:
            best = (value, dz)
    init.SetTranslation(tuple(c_moving - c_fixed + np.array([0.0, 0.0, best[1]])))

    transform = sitk.AffineTransform(init)
    levels = ((fixed_coarse, moving_coarse), (fixed_fine, moving_fine))
    for n, (fixed, moving) in enumerate(levels):
        reg = _method(iterations, sampling)
        reg.SetInitialTransform(transform, inPlace=True)
        reg.Execute(fixed, moving)
        if progress:
            progress(0.3 + 0.35 * (n + 1), f"registration level {n + 1} of {len(levels)}")
    affine_fixed_to_moving = _to_affine(transform)
    seconds = time.perf_counter() - t0
    logger.debug("registration: z start %+.0f mm, metric %.4f, %.2f s", best[1], reg.GetMetricValue(), seconds)
    return RegistrationResult(
        baseline_to_followup=affine_fixed_to_moving.inverse(),
        metric_value=float(reg.GetMetricValue()),
        seconds=seconds,
        info={"z_start_mm": float(best[1]), "stop": reg.GetOptimizerStopConditionDescription(),
              "working_mm": [coarse_mm, fine_mm]},
    )


def _method(iterations: int, sampling: float) -> Any:
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(sampling, seed=1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(2.0, 1e-3, iterations, relaxationFactor=0.6)
    reg.SetOptimizerScalesFromPhysicalShift()
    return reg


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

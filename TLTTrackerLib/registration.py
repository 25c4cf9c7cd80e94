"""Affine registration of a baseline CT to a follow-up CT (SimpleITK), fast and with a robust start.

``register_affine(baseline, followup)`` returns a :class:`RegistrationResult` whose ``baseline_to_followup``
maps baseline LPS mm points to follow-up LPS mm points.

Method (about 1-2 s of CPU for a 512x512x133 chest CT):

1. Working images, made once: HU clamped to [-1024, 1500] (voxels outside the scanner's field of view hold
   -2048 or -3024), box-averaged (``BinShrink``) to about ``levels_mm[-1]``, then again to each coarser level.
2. Roles: the scan with less body (voxels above -500 HU, in mm³) is the *fixed* image, so that nearly every
   sample has a partner in the other scan; ITK's optimised transform maps fixed points to moving points, and
   is inverted when the follow-up is the fixed image.
3. Start (does not trust header geometry: DeepLesion volumes all have origin 0 and different fields of
   view): the body centroids aligned (moments initialisation, as ITK's ``CenteredTransformInitializer``),
   then a 1D search over z shifts at the coarsest level, keeping the shift with the best metric among those
   that keep at least half of the fixed scan's z range overlapping the moving one.
4. Affine optimisation (regular-step gradient descent, scales from physical shifts) level by level, with a
   fixed number of random samples (fixed seed) drawn inside the fixed body mask, dilated by one voxel so
   that the skin edge counts, less a 5 mm band along either scan's field-of-view edge (where thick slices
   and padding of resampled scans pulled the result by about 1 mm on the phantom), and with gradients taken
   at the samples rather than from precomputed gradient images (which cost more than the whole
   optimisation at these sizes).

The default metric is mean squares: on our benchmark (``benchmarks/registration.py``) it was as accurate as
Mattes mutual information, also with soft tissue brightened by up to 200 HU in the follow-up (contrast
enhancement), and cheaper; ``metric="mattes"`` remains available for scans of different contrast.

The final quality figures are the optimised metric (``metric_value``, lower is better) and, in ``info``, the
Pearson correlation of the two registered working images over the fixed body mask (``correlation``; about
0.9 or more for a good match) and the fraction of that mask the moving scan covers (``overlap_fraction``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError, TLTError
from .geometry import Volume
from .registration_images import (
    AIR_HU,
    BODY_HU,
    body_voxels,
    inside_both,
    mask_image,
    shrink,
    working_image,
    z_range_mm,
)
from .transforms import AffineTransform

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]

METRICS = ("meansquares", "mattes", "correlation")
POOR_CORRELATION = 0.5  # a registration whose body correlation is at most this is "poor" (warned, retried)
_MIN_VOXELS = 4  # per axis, in the input
_OUTSIDE = -1.0e6  # resampling default that marks points outside the moving image


@dataclass(frozen=True, eq=False)
class RegistrationResult:
    """Outcome of :func:`register_affine`.

    Attributes:
        baseline_to_followup: maps baseline LPS mm points to follow-up LPS mm points.
        metric_value: final value of the optimised metric at the finest level, lower is better (mean squared
            HU difference for ``meansquares``, negative mutual information for ``mattes``, negative squared
            correlation for ``correlation``); NaN when unknown.
        seconds: wall time of the registration (0 for a reused one, see :meth:`from_dict`).
        info: JSON-friendly figures: ``correlation``, ``overlap_fraction``, ``fixed_image``, ``z_start_mm``,
            ``levels`` (spacing, iterations, stop condition per level), ``seconds_by_stage``, options.
        working_images: the SimpleITK working images ``(baseline, follow-up)`` (clamped HU, averaged down to
            ``levels_mm[-1]``), kept for the deformable step (:func:`~.deformable.register_field`); not saved
            by :meth:`to_dict` (None for a reused registration).
    """

    baseline_to_followup: AffineTransform
    metric_value: float
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    working_images: tuple[Any, Any] | None = field(default=None, repr=False)

    @property
    def followup_to_baseline(self) -> AffineTransform:
        """Maps follow-up LPS mm points to baseline LPS mm points."""
        return self.baseline_to_followup.inverse()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict; :meth:`from_dict` reads it back."""
        forward = self.baseline_to_followup.to_dict()
        return {"baseline_to_followup": forward, "metric_value": self.metric_value, "seconds": self.seconds,
                "info": self.info}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RegistrationResult":
        """Inverse of :meth:`to_dict`: a saved registration, reused without recomputing (``seconds`` = 0, the
        original time kept as ``info["seconds_when_computed"]``, ``info["reused"]`` = True)."""
        try:
            forward = AffineTransform.from_dict(d["baseline_to_followup"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"not a saved registration (no valid 'baseline_to_followup' matrix: {exc}); "
                "give a file written by RegistrationResult.to_dict / --registration-out"
            ) from exc
        if not (np.all(np.isfinite(forward.matrix)) and np.all(np.isfinite(forward.translation_mm))):
            raise InputError("the saved registration holds non-finite numbers; register the pair again")
        if abs(np.linalg.det(forward.matrix)) < 1e-6:
            raise InputError("the saved registration's matrix is singular; register the pair again")
        info = dict(d.get("info") or {})
        info.setdefault("seconds_when_computed", float(d.get("seconds", float("nan"))))
        info["reused"] = True
        value = d.get("metric_value")
        return cls(forward, float("nan") if value is None else float(value), 0.0, info)


# ---------------------------------------------------------------------------------------------- registration
def _method(metric: str, n_samples: int, n_mask: int, iterations: int, mask: Any, seed: int,
            threads: int | None) -> Any:
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    if threads:
        reg.SetNumberOfThreads(int(threads))
    if metric == "meansquares":
        reg.SetMetricAsMeanSquares()
    elif metric == "mattes":
        reg.SetMetricAsMattesMutualInformation(32)
    else:
        reg.SetMetricAsCorrelation()
    reg.MetricUseFixedImageGradientFilterOff()
    reg.MetricUseMovingImageGradientFilterOff()
    if mask is not None:
        reg.SetMetricFixedMask(mask)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(min(1.0, n_samples / max(n_mask, 1)), seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(2.0, 1e-3, int(iterations), relaxationFactor=0.6)
    reg.SetOptimizerScalesFromPhysicalShift()
    return reg


def _z_search(fixed: Any, moving: Any, reg: Any, step_mm: float) -> tuple[Any, float]:
    """Moments start plus the best z shift (see module docstring). Returns the ITK transform and the shift."""
    import SimpleITK as sitk

    def centroid(image: Any, name: str) -> np.ndarray:
        idx = np.argwhere(sitk.GetArrayViewFromImage(image) > BODY_HU)
        if len(idx) == 0:
            raise InputError(
                f"the {name} has no body left at {max(image.GetSpacing()):.0f} mm (no voxel above -500 HU); "
                "use finer levels_mm"
            )
        k, j, i = idx.mean(axis=0)
        return np.array(image.TransformContinuousIndexToPhysicalPoint((float(i), float(j), float(k))))

    c_fixed, c_moving = centroid(fixed, "fixed image"), centroid(moving, "moving image")
    (f0, f1), (m0, m1) = z_range_mm(fixed), z_range_mm(moving)
    base = c_moving - c_fixed
    reach = 0.5 * abs((f1 - f0) - (m1 - m0)) + max(2 * step_mm, 0.25 * min(f1 - f0, m1 - m0))
    transform = sitk.AffineTransform(3)
    transform.SetCenter(tuple(float(v) for v in c_fixed))
    best: tuple[float, float] | None = None
    for dz in np.arange(-np.floor(reach / step_mm), np.floor(reach / step_mm) + 1) * step_mm:
        shift = base[2] + dz  # fixed z -> moving z + shift; overlap of the fixed z range with the moving one
        overlap = min(f1 + shift, m1) - max(f0 + shift, m0)
        if overlap < 0.5 * min(f1 - f0, m1 - m0) and dz != 0:
            continue
        transform.SetTranslation(tuple(float(v) for v in base + [0.0, 0.0, dz]))
        reg.SetInitialTransform(transform, inPlace=False)
        try:
            value = reg.MetricEvaluate(fixed, moving)
        except RuntimeError:  # no sample inside the moving image at this shift
            continue
        if np.isfinite(value) and (best is None or value < best[0]):
            best = (float(value), float(dz))
    dz = 0.0 if best is None else best[1]
    transform.SetTranslation(tuple(float(v) for v in base + [0.0, 0.0, dz]))
    return transform, dz


def _quality(fixed: Any, moving: Any, transform: Any, body: np.ndarray) -> tuple[float, float]:
    """Pearson correlation of fixed and resampled moving over ``body`` (fixed grid); fraction covered."""
    import SimpleITK as sitk

    warped = sitk.GetArrayFromImage(sitk.Resample(moving, fixed, transform, sitk.sitkLinear, _OUTSIDE))
    covered = body & (warped > AIR_HU - 1.0)
    overlap = float(covered.sum() / max(body.sum(), 1))
    if covered.sum() < 10:
        return float("nan"), overlap
    a = sitk.GetArrayViewFromImage(fixed)[covered].astype(np.float64)
    b = warped[covered].astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return (float((a * b).sum() / denominator) if denominator > 0 else float("nan")), overlap


def _per_level(value: int | Sequence[int], n: int, name: str) -> list[int]:
    values = [int(value)] * n if np.isscalar(value) else [int(v) for v in value]  # type: ignore[union-attr]
    if len(values) != n or min(values) < 1:
        raise InputError(f"{name} must be a positive number or one per level ({n}), got {value!r}")
    return values


def _check_volume(volume: Volume, name: str) -> None:
    if min(volume.shape_kji) < _MIN_VOXELS:
        raise InputError(
            f"the {name} volume is too small (shape {volume.shape_kji}); registration needs at least "
            f"{_MIN_VOXELS} voxels along each axis: give a 3D CT volume"
        )


def register_affine(
    baseline: Volume,
    followup: Volume,
    progress: ProgressFn | None = None,
    *,
    levels_mm: Sequence[float] = (6.0, 3.0),
    max_iterations: int | Sequence[int] = (150, 60),
    samples: int | Sequence[int] = (10000, 20000),
    metric: str = "meansquares",
    z_search_step_mm: float = 8.0,
    body_mask: bool = True,
    edge_margin_mm: float = 5.0,
    seed: int = 1,
    threads: int | None = None,
    fallback_metric: str | None = "mattes",
) -> RegistrationResult:
    """Register ``baseline`` to ``followup`` with a 12-parameter affine (method in the module docstring).

    Args:
        baseline, followup: CT volumes in HU (any spacing, direction, origin, field of view).
        progress: optional ``progress(fraction, message)`` callback.
        levels_mm: working resolutions, coarse to fine (mm per voxel, approximate: integer box averaging).
        max_iterations: optimiser iterations per level (one number or one per level).
        samples: metric samples per level, drawn at random inside the fixed body mask.
        metric: ``"meansquares"`` (default), ``"mattes"`` (mutual information) or ``"correlation"``.
        z_search_step_mm: step of the start's search over z shifts.
        body_mask: sample the metric only inside the fixed body mask (else over the whole fixed image).
        edge_margin_mm: leave out samples closer than this to either scan's field-of-view edge (at each level,
            with the transform reached so far).
        seed: sampling seed: the same inputs and options (and thread count) give the same result.
        threads: SimpleITK threads for the optimisation (default: SimpleITK's global default).
        fallback_metric: when the result's correlation is ≤ :data:`POOR_CORRELATION`, the registration is run
            again with this metric and the better-correlated result kept (``info["fallback"]``); None: never.

    Returns:
        :class:`RegistrationResult`; ``baseline_to_followup`` maps baseline LPS mm to follow-up LPS mm.

    Raises:
        InputError: a volume is too small, constant or holds no body, or an option is invalid.
        TLTError: the optimisation failed (e.g. the scans do not overlap).
    """
    import SimpleITK as sitk

    levels = [float(v) for v in levels_mm]
    if not levels or min(levels) <= 0 or levels != sorted(levels, reverse=True):
        raise InputError(f"levels_mm must be positive and go from coarse to fine, got {levels_mm!r}")
    if metric not in METRICS:
        raise InputError(f"unknown registration metric {metric!r}; use one of {', '.join(METRICS)}")
    iterations = _per_level(max_iterations, len(levels), "max_iterations")
    n_samples = _per_level(samples, len(levels), "samples")
    _check_volume(baseline, "baseline")
    _check_volume(followup, "follow-up")
    t0 = time.perf_counter()
    stages: dict[str, float] = {}

    # 1-2. working images, roles
    with ThreadPoolExecutor(max_workers=2) as pool:  # both at once: clamp and averaging release the GIL
        shrunk = list(pool.map(lambda volume: working_image(volume, levels[-1]), (baseline, followup)))
    images = {"baseline": shrunk[0], "follow-up": shrunk[1]}
    body_mm3 = {}
    for name, image in images.items():
        array = sitk.GetArrayViewFromImage(image)
        if float(array.max()) == float(array.min()):
            raise InputError(f"the {name} volume is constant ({float(array.min()):.0f} HU); give a CT scan")
        body_mm3[name] = float(np.count_nonzero(array > BODY_HU) * np.prod(image.GetSpacing()))
        if body_mm3[name] == 0:
            raise InputError(f"the {name} volume has no voxel above -500 HU; is it a CT in Hounsfield units?")
    fixed_name = "baseline" if body_mm3["baseline"] < body_mm3["follow-up"] else "follow-up"
    moving_name = "follow-up" if fixed_name == "baseline" else "baseline"
    pyramid = [(shrink(images[fixed_name], mm), shrink(images[moving_name], mm)) for mm in levels]
    bodies = [body_voxels(f) if body_mask else np.ones(f.GetSize()[::-1], bool) for f, _ in pyramid]
    stages["prepare"] = time.perf_counter() - t0
    if progress:
        progress(0.1, "registration: images prepared")

    final_body = bodies[-1] if body_mask else body_voxels(pyramid[-1][0])
    transform, dz, level_info = _optimise(pyramid, bodies, metric, iterations, n_samples, z_search_step_mm,
                                          edge_margin_mm, seed, threads, stages, progress)
    correlation, overlap = _quality(pyramid[-1][0], pyramid[-1][1], transform, final_body)
    fallback = None
    if _is_poor(correlation) and fallback_metric and fallback_metric != metric:
        # a wrong local optimum (e.g. mean squares on a short scan with a contrast change): try the other metric
        logger.info("registration: correlation %.2f with %s; trying %s", correlation, metric, fallback_metric)
        t_fallback = time.perf_counter()
        other = _optimise(pyramid, bodies, fallback_metric, iterations, n_samples, z_search_step_mm,
                          edge_margin_mm, seed, threads, {}, None)
        stages["fallback"] = time.perf_counter() - t_fallback
        other_corr, other_overlap = _quality(pyramid[-1][0], pyramid[-1][1], other[0], final_body)
        kept = bool(other_corr > correlation)
        fallback = {"metric": fallback_metric, "correlation": other_corr, "kept": kept}
        if kept:
            (transform, dz, level_info), correlation, overlap = other, other_corr, other_overlap
            metric = fallback_metric
    fixed_to_moving = _to_affine(transform)
    forward = fixed_to_moving if fixed_name == "baseline" else fixed_to_moving.inverse()
    seconds = time.perf_counter() - t0
    stages["total"] = seconds
    metric_value = level_info[-1]["metric"]
    logger.info(
        "registration: %s metric %.4g, correlation %.3f, overlap %.2f, z start %+.0f mm, %.2f s",
        metric, metric_value, correlation, overlap, dz, seconds,
    )
    if _is_poor(correlation):
        logger.warning("registration looks poor (correlation %.2f); check the result", correlation)
    info = {"metric": metric, "correlation": correlation, "overlap_fraction": overlap,
            "fixed_image": fixed_name, "z_start_mm": dz, "levels": level_info, "samples": n_samples,
            "seconds_by_stage": {k: round(v, 3) for k, v in stages.items()}, "fallback": fallback}
    return RegistrationResult(forward, float(metric_value), seconds, info, (shrunk[0], shrunk[1]))


def _is_poor(correlation: float) -> bool:
    """A registration whose body correlation is unknown or at most :data:`POOR_CORRELATION`."""
    return not (np.isfinite(correlation) and correlation > POOR_CORRELATION)


def _optimise(pyramid: list, bodies: list, metric: str, iterations: list[int], n_samples: list[int],
              z_search_step_mm: float, edge_margin_mm: float, seed: int, threads: int | None,
              stages: dict[str, float], progress: ProgressFn | None) -> tuple[Any, float, list[dict[str, Any]]]:
    """Steps 3-4 of the module docstring (start over z shifts, then the affine levels) for one metric:
    ``(SimpleITK AffineTransform fixed -> moving, z start mm, per-level info)``."""
    import SimpleITK as sitk

    # 3. start
    t1 = time.perf_counter()
    mask = mask_image(bodies[0], pyramid[0][0])
    reg = _method(metric, n_samples[0], int(bodies[0].sum()), 1, mask, seed, threads)
    transform, dz = _z_search(pyramid[0][0], pyramid[0][1], reg, z_search_step_mm)
    stages["start"] = time.perf_counter() - t1
    if progress:
        progress(0.2, "registration: start found")

    # 4. levels
    transform = sitk.AffineTransform(transform)
    level_info = []
    for n, (fixed, moving) in enumerate(pyramid):
        t1 = time.perf_counter()
        sampled = bodies[n] & inside_both(fixed, moving, _to_affine(transform), edge_margin_mm)
        if sampled.sum() < 0.1 * bodies[n].sum():  # little overlap yet: the edges cannot be spared
            sampled = bodies[n]
        n_sampled = int(sampled.sum())
        mask = mask_image(sampled, fixed)
        reg = _method(metric, n_samples[n], n_sampled, iterations[n], mask, seed, threads)
        reg.SetInitialTransform(transform, inPlace=True)
        try:
            reg.Execute(fixed, moving)
        except RuntimeError as exc:
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            msg = f"affine registration failed at level {n + 1} ({last})"
            raise TLTError(f"{msg}; do both scans show the same body region?") from exc
        stages[f"level_{n + 1}"] = time.perf_counter() - t1
        level_info.append({
            "spacing_mm": [round(float(s), 3) for s in fixed.GetSpacing()],
            "iterations": int(reg.GetOptimizerIteration()),
            "sampled_voxels": n_sampled,
            "metric": float(reg.GetMetricValue()),
            "stop": reg.GetOptimizerStopConditionDescription(),
        })
        if progress:
            progress(0.2 + 0.75 * (n + 1) / len(pyramid), f"registration: level {n + 1} of {len(pyramid)} done")
    return transform, dz, level_info


def _to_affine(transform: Any) -> AffineTransform:
    """SimpleITK ``AffineTransform`` -> :class:`AffineTransform` (same direction as ITK's)."""
    a = np.array(transform.GetMatrix()).reshape(3, 3)
    c, t = np.array(transform.GetCenter()), np.array(transform.GetTranslation())
    return AffineTransform(a, t + c - a @ c)

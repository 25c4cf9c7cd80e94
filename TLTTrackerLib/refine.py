"""The ``refine`` method: affine start + multi-level demons registration of the region around the lesion. No weights.

For a baseline lesion at ``c`` (LPS mm) and the affine ``T(x) = A x + t`` from registration, the start is
``p0 = T(c)``. Each level samples two images on one grid of offsets ``g`` (mm, along the LPS axes) around ``p0``::

    fixed(g)  = baseline(c + A⁻¹ g)     the baseline, mapped into the follow-up frame by the affine
    moving(g) = followup(p0 + g)

and runs symmetric-forces demons (Thirion 1998; Vercauteren et al. 2007; SimpleITK's
``FastSymmetricForcesDemonsRegistrationFilter``): a smooth displacement field ``d`` with
``fixed(g) ≈ moving(g + d(g))``, started from the previous level's field. The first level (4 mm, ±40 mm) starts from
a local affine of its region fitted by correlation, and takes up the organ-scale motion a global affine leaves
(≈ 6–7 mm at lesions, up to 15 mm); the 2 mm and 1 mm levels (±24, ±12 mm) place the point. The lesion's
follow-up centre is ``p0 + d(0)``.

Why the region and not a patch around the lesion: a small lesion without a pattern of its own (a sub-3 mm nodule
against the chest wall) slides along the wall when matched alone; the smooth motion of the tissue around it does
not. Growth or shrinkage of a lesion about its centre leaves the centre where the field puts it.

Both images are clipped to ``clip_hu`` (bone, hundreds of HU above soft tissue, would dominate), blurred to a
common resolution per axis (a 5 mm follow-up against a 1 mm baseline). Demons has no masks, and air where a scan
ends would pull the field: faces of the region mostly outside a scan are cut off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .core_share import Threads, thread_count
from .geometry import Volume
from .matching import (
    axis_resolution_mm,
    masked_ncc_map,
    match_resolution,
    patch_offsets_mm,
    sample_patch,
    sample_patch_smooth,
    weighted_ncc,
)
from .transforms import AffineTransform


@dataclass(frozen=True)
class DemonsLevel:
    """One level: grid spacing (mm), half-size of the region (mm), demons iterations, and the Gaussian
    regularisation of the field (standard deviation, mm; larger = smoother, motion carried further into
    featureless tissue)."""

    spacing_mm: float
    half_mm: float
    iterations: int
    smoothing_mm: float


@dataclass(frozen=True)
class RefineConfig:
    """Levels run coarse to fine.

    Attributes:
        affine_iterations: before the first demons level, fit an affine of that level's region (correlation,
            gradient descent) and start the field from it: the smooth part of the motion in one step, which
            demons (small steps, local forces) picks up slowly in featureless tissue. 0: off.
        affine_sampling: fraction of the region's voxels (random, fixed seed) that the local affine's correlation
            samples; 1.0: all. 0.3 is 3x faster (0.12 vs 0.35 s per region on 2 cores) and moves the start of
            demons by ~0.3 mm, but cost 3 of 197 hits on the tuning seeds as the default (docs/benchmarks.md §8):
            used by the back-tracking check only.
        min_similarity: below this weighted NCC after the first level the images do not match: keep the
            affine start (flag ``low_similarity``, confidence 0.1).
        min_keep_mm: trimming keeps at least this much of the region on each side of the start point.
        max_shift_mm: a larger move from the affine start is not trusted either (same fallback); a local affine
            that moves the centre further is dropped.
        similarity_sigma_mm: Gaussian window (at least 1.5 lesion radii) of each level's similarity (confidence).
        heatmap_search_mm: half-size of the lesion-template NCC map returned with ``keep_maps``.
        match_intensity: give the follow-up region the baseline region's histogram before demons (a monotone
            map of 15 quantiles, :func:`quantile_map`, fitted once on the first, largest level's region and
            applied to every level): demons compares intensities, and a contrast change (an organ 40 HU brighter)
            pulls it off. Fitted on the large region, the map ignores a lesion's own growth (fitted per level,
            SimpleITK's HistogramMatching on the 1 mm region moved LIDC nodules 0.2 -> 0.7 mm). Tuning seeds
            0–3, with the lesion snap: abdomen CPM@10mm 0.809 -> 0.926, no scenario lost (docs/benchmarks.md §10).
        threads: SimpleITK threads of each registration filter; 0 = SimpleITK's default (all cores). The
            regions are small, so lesions tracked side by side with one thread each run faster than one lesion
            at a time on all cores (:class:`~.tracker.LesionTracker`'s ``workers``); results do not change. A
            callable (a :class:`~.core_share.CoreShare`) is asked for the count as each filter starts.

    The defaults were chosen on synthetic pairs of LIDC-IDRI-0001, POPI and TotalSegmentator CTs
    (``docs/benchmarks.md``: the numbers per choice).
    """

    levels: tuple[DemonsLevel, ...] = (DemonsLevel(4.0, 40.0, 80, 6.0), DemonsLevel(2.0, 24.0, 40, 3.0),
                                       DemonsLevel(1.0, 12.0, 30, 1.5))
    affine_iterations: int = 100
    affine_sampling: float = 1.0
    clip_hu: tuple[float, float] = (-1000.0, 200.0)
    min_similarity: float = 0.1
    max_shift_mm: float = 40.0
    min_keep_mm: float = 8.0
    similarity_sigma_mm: float = 8.0
    heatmap_search_mm: float = 8.0
    match_intensity: bool = True
    threads: Threads = 0


@dataclass(frozen=True, eq=False)
class RefineResult:
    """Refined follow-up centre ``(3,)`` LPS mm, per-level similarity (weighted NCC after registration), and a
    confidence in [0, 1]: the mean of those similarities (the 1 mm level alone can sit inside a large lesion)."""

    center_lps_mm: np.ndarray
    level_similarity: tuple[float, ...]
    confidence: float
    fell_back: bool = False
    info: dict = field(default_factory=dict)


def refine_center(
    baseline: Volume,
    followup: Volume,
    center_lps_mm: np.ndarray,
    radius_mm: float,
    baseline_to_followup: AffineTransform,
    config: RefineConfig = RefineConfig(),
    start_lps_mm: np.ndarray | None = None,
    keep_maps: bool = False,
    prior: Callable[[np.ndarray], np.ndarray] | None = None,
) -> RefineResult:
    """Track one lesion centre from ``baseline`` into ``followup`` (see module docstring).

    Args:
        center_lps_mm: ``(3,)`` lesion centre on the baseline, LPS mm.
        radius_mm: lesion radius in mm (sets the similarity window and the heatmap template).
        baseline_to_followup: the affine from registration.
        start_lps_mm: follow-up start point (default: the affine image of the centre).
        keep_maps: also return a lesion-template NCC map around the result in ``info["maps"]`` as
            ``[(score (Z, Y, X), origin_lps_mm (3,), spacing_mm)]``: node (0, 0, 0) at ``origin``, LPS-aligned axes.
        prior: the first level's demons starts from this displacement instead of the local affine: offsets
            ``g`` ``(N, 3)`` mm (x, y, z, from the start point) -> ``d(g)`` ``(N, 3)`` mm, ITK convention
            ``fixed(g) ≈ moving(g + d(g))`` (e.g. a whole-pair field's local shape, :mod:`.multistart`).
    """
    c = np.asarray(center_lps_mm, dtype=float)
    start = baseline_to_followup.apply(c) if start_lps_mm is None else np.asarray(start_lps_mm, dtype=float)
    linear_inv = np.linalg.inv(baseline_to_followup.matrix)
    res = (axis_resolution_mm(baseline), axis_resolution_mm(followup))
    sigma = max(config.similarity_sigma_mm, 1.5 * radius_mm)
    displacement = None
    scores: list[float] = []
    info: dict[str, Any] = {}
    center, confidence = start, 0.1
    intensity_map = None
    for n, level in enumerate(config.levels):
        fixed, moving, intensity_map = _level_images(baseline, followup, c, start, linear_inv, level, res, config,
                                                     intensity_map)
        if n == 0 and prior is not None:
            displacement = _prior_field(fixed, prior)
        elif n == 0 and config.affine_iterations > 0:
            displacement = _local_affine_field(fixed, moving, config.affine_iterations, config.max_shift_mm,
                                               config.threads, config.affine_sampling)
        displacement = _demons(fixed, moving, displacement, level.iterations, level.smoothing_mm / level.spacing_mm,
                               config.threads)
        transform = _field_transform(displacement)
        shift = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)), dtype=float)  # d(0), mm x y z
        scores.append(_similarity(fixed, moving, transform, sigma))
        if n == 0 and (scores[0] < config.min_similarity or np.linalg.norm(shift) > config.max_shift_mm):
            info["reason"] = "low_similarity" if scores[0] < config.min_similarity else "large_shift"
            break
        center, confidence = start + shift, float(np.clip(np.mean(scores), 0.0, 1.0))
        info["shift_mm"] = shift.tolist()
    if keep_maps:
        info["maps"] = [lesion_score_map(baseline, followup, c, center, radius_mm, linear_inv, res,
                                         config.heatmap_search_mm)]
    return RefineResult(center, tuple(scores), confidence, fell_back="reason" in info, info=info)


def _level_images(baseline, followup, c, start, linear_inv, level: DemonsLevel, res, config: RefineConfig,
                  intensity_map: tuple[np.ndarray, np.ndarray] | None = None):
    """The (fixed, moving) SimpleITK images of one level, origin = offset (mm) of voxel 0 from the start point,
    and the intensity map applied to ``moving`` (``config.match_intensity``: ``intensity_map``, or fitted here on
    this level when None; with it off, ``intensity_map`` as given).

    Faces of the region that lie mostly outside either scan are cut off (:func:`_trim_box`): demons has no masks,
    and air where a scan ends would pull the field.
    """
    import SimpleITK as sitk

    s = level.spacing_mm
    h = round(level.half_mm / s)
    fixed, f_in = sample_patch_smooth(baseline, c, h, s, linear_inv)
    moving, m_in = sample_patch_smooth(followup, start, h, s, None)
    box = _trim_box(f_in & m_in, h, int(np.ceil(config.min_keep_mm / s)))
    target = np.maximum(np.maximum(res[0], res[1]), s)
    fixed = match_resolution(np.clip(fixed[box], *config.clip_hu), np.maximum(res[0], s), target, s)
    moving = match_resolution(np.clip(moving[box], *config.clip_hu), np.maximum(res[1], s), target, s)
    fixed, moving = fixed.astype(np.float32), moving.astype(np.float32)
    if config.match_intensity:
        intensity_map = quantile_map(fixed, moving) if intensity_map is None else intensity_map
        moving = remap(moving, intensity_map)
    images = []
    for patch in (fixed, moving):
        image = sitk.GetImageFromArray(patch)
        image.SetSpacing((s, s, s))
        image.SetOrigin(tuple(float((b.start - h) * s) for b in box[::-1]))  # x, y, z offset of voxel 0
        images.append(image)
    return images[0], images[1], intensity_map


def quantile_map(fixed: np.ndarray, moving: np.ndarray, points: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """The monotone intensity map that gives ``moving`` the histogram of ``fixed`` (arrays of any shape):
    ``(moving quantiles, fixed quantiles)`` at ``points`` levels from 0.5 to 99.5 %, for :func:`remap`."""
    q = np.linspace(0.5, 99.5, points)
    qf, qm = np.percentile(fixed, q), np.percentile(moving, q)
    keep = np.concatenate([[True], np.diff(qm) > 1e-3])  # strictly increasing knots
    return qm[keep], np.maximum.accumulate(qf[keep])


def remap(values: np.ndarray, intensity_map: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``values`` through the piecewise-linear map of :func:`quantile_map` (float32, same shape); beyond its end
    knots the map shifts (slope 1): a lesion brighter than the region's 99.5 % keeps its contrast."""
    qm, qf = intensity_map
    v = np.asarray(values, dtype=np.float64)
    mapped = np.interp(v, qm, qf)
    return np.where(v < qm[0], v - qm[0] + qf[0], np.where(v > qm[-1], v - qm[-1] + qf[-1], mapped)).astype(np.float32)


def _trim_box(inside: np.ndarray, h: int, min_keep: int) -> tuple[slice, slice, slice]:
    """Box around the centre voxel ``(h, h, h)``: faces that lie mostly (> 50 %) outside ``inside`` are peeled,
    the worst first, but never closer than ``min_keep`` voxels to the centre."""
    lo, hi = [0, 0, 0], [2 * h + 1] * 3
    while True:
        sub = inside[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        best, face = 0.5, None
        for axis in range(3):
            for side in (0, -1):
                if (side == 0 and lo[axis] >= h - min_keep) or (side == -1 and hi[axis] <= h + min_keep + 1):
                    continue
                outside = 1.0 - float(np.take(sub, side, axis=axis).mean())
                if outside > best:
                    best, face = outside, (axis, side)
        if face is None:
            return slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2])
        axis, side = face
        if side == 0:
            lo[axis] += 1
        else:
            hi[axis] -= 1


def _local_affine_field(fixed, moving, iterations: int, max_shift_mm: float, threads: Threads = 0,
                        sampling: float = 1.0):
    """Displacement field (on the fixed grid) of the affine that best correlates the region: ITK convention,
    ``fixed(g) ≈ moving(g + d(g))``. ``None`` when it moves the centre more than ``max_shift_mm``."""
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    if n_threads := thread_count(threads):
        reg.SetNumberOfThreads(n_threads)
    reg.SetMetricAsCorrelation()
    if sampling < 1.0:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(float(sampling), 1)  # fixed seed: the same input, the same result
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=0.01, numberOfIterations=iterations,
                                                 relaxationFactor=0.5)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(sitk.AffineTransform(3), inPlace=False)
    transform = reg.Execute(fixed, moving)
    if np.linalg.norm(transform.TransformPoint((0.0, 0.0, 0.0))) > max_shift_mm:
        return None
    return sitk.TransformToDisplacementField(transform, sitk.sitkVectorFloat64, fixed.GetSize(), fixed.GetOrigin(),
                                             fixed.GetSpacing(), fixed.GetDirection())


def _prior_field(fixed, prior: Callable[[np.ndarray], np.ndarray]):
    """``prior`` (:func:`refine_center`) evaluated at every node of the fixed grid: a SimpleITK vector image."""
    import SimpleITK as sitk

    zz, yy, xx = _node_offsets_mm(fixed)
    d = np.asarray(prior(np.stack([xx, yy, zz], axis=-1).reshape(-1, 3)), float).reshape(*zz.shape, 3)
    image = sitk.GetImageFromArray(d, isVector=True)
    image.CopyInformation(fixed)
    return image


def _demons(fixed, moving, previous, iterations: int, smoothing_voxels: float, threads: Threads = 0):
    """Symmetric-forces demons field (SimpleITK vector image on the fixed grid), started from ``previous``."""
    import SimpleITK as sitk

    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    if n_threads := thread_count(threads):
        demons.SetNumberOfThreads(n_threads)
    demons.SetNumberOfIterations(int(iterations))
    demons.SetStandardDeviations(smoothing_voxels)
    if previous is None:
        return demons.Execute(fixed, moving)
    start = sitk.Resample(previous, fixed, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
    return demons.Execute(fixed, moving, start)


def _field_transform(displacement):
    """The field as a transform ``g -> g + d(g)`` (trilinear). It takes its image over, so it gets a copy: the
    field itself starts the next level."""
    import SimpleITK as sitk

    return sitk.DisplacementFieldTransform(sitk.Image(displacement))


def _similarity(fixed, moving, transform, sigma_mm: float) -> float:
    """NCC of ``fixed`` and ``moving`` warped by ``transform`` (:func:`_field_transform`), Gaussian-weighted
    around offset 0 (sigma in mm)."""
    import SimpleITK as sitk

    warped = sitk.GetArrayFromImage(sitk.Resample(moving, fixed, transform, sitk.sitkLinear, -1000.0))
    f = sitk.GetArrayFromImage(fixed).astype(np.float64)
    w = np.exp(-0.5 * sum(g * g for g in _node_offsets_mm(fixed)) / sigma_mm**2)
    return weighted_ncc(f, warped.astype(np.float64), w)


def _node_offsets_mm(image) -> list[np.ndarray]:
    """``[z, y, x]`` offsets (mm) from the start point of every node of a level image (:func:`_level_images`),
    each of the image's array shape (z, y, x)."""
    size, origin, spacing = image.GetSize(), np.asarray(image.GetOrigin()), image.GetSpacing()[0]
    return np.meshgrid(*(origin[a] + spacing * np.arange(size[a]) for a in (2, 1, 0)), indexing="ij")


def lesion_score_map(
    baseline: Volume, followup: Volume, c: np.ndarray, center: np.ndarray, radius_mm: float,
    linear_inv: np.ndarray, res, search_mm: float, spacing_mm: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """NCC of a lesion template (baseline around ``c``, Gaussian-weighted) at every 1 mm shift within
    ±``search_mm`` of ``center`` in the follow-up: ``(score (2k+1)³ z y x, origin_lps_mm of node 0, spacing_mm)``."""
    s = spacing_mm
    h = round(float(np.clip(1.5 * radius_mm + 8.0, 8.0, 24.0)) / s)
    k = int(np.ceil(search_mm / s))
    template, t_in = sample_patch(baseline, c, (h, h, h), s, linear_inv, return_mask=True)
    image, i_in = sample_patch(followup, center, (h + k,) * 3, s, None, return_mask=True)
    target = np.maximum(np.maximum(res[0], res[1]), s)
    template = match_resolution(np.clip(template, -1024.0, 200.0), res[0], target, s)
    image = match_resolution(np.clip(image, -1024.0, 200.0), res[1], target, s)
    d2 = np.sum(patch_offsets_mm((h, h, h), s) ** 2, axis=-1)
    weight = np.exp(-0.5 * d2 / max(4.0, 1.5 * radius_mm) ** 2) * t_in
    score = masked_ncc_map(template, image, weight, i_in).astype(np.float32)
    return score, center - k * s, s

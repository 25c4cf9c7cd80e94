"""The ``refine`` method: affine start + coarse-to-fine normalised cross-correlation matching. No weights.

For a baseline lesion at ``c`` (LPS mm) with radius ``r`` and an affine ``T(x) = A x + t`` from registration,
each stage samples a baseline template around ``c`` on a grid warped by ``A⁻¹`` (so the follow-up's rotation
and scale are undone), samples a follow-up search region around the current estimate ``p`` (start ``T(c)``),
matches them by FFT normalised cross-correlation (NCC), and moves ``p`` to the best sub-voxel peak:

1. context (2 mm grid, a 64 mm cube of anatomy around the lesion, search ±24 mm): absorbs the organ-scale motion
   that a global affine cannot model; a mild distance penalty prefers the affine start when scores tie.
2. neighbourhood (1 mm grid, 32 mm cube, search ±8 mm), then the motion of 14 anchor patches 20 mm around the
   lesion, matched independently and fitted by a robust local affine: predicts where the lesion went even when
   it has no distinctive pattern of its own (a small nodule against the chest wall slides when matched alone).
3. lesion (1 mm grid, template ≈ 1.5 r + 8 mm, several growth factors): centres on the lesion itself.
4. fine (0.5 mm grid, template ≈ r + 4 mm, search ±2 mm): sub-millimetre placement.

Both patches are blurred to a common resolution per axis first, so a 5 mm follow-up matches a 1 mm baseline.
Lesion growth or shrinkage keeps the centre of a roughly symmetric lesion at the NCC peak.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import Volume
from .matching import (
    axis_resolution_mm,
    masked_ncc_map,
    match_resolution,
    ncc_map,
    patch_offsets_mm,
    sample_patch,
    subvoxel_at,
    subvoxel_peak,
)
from .transforms import AffineTransform


@dataclass(frozen=True)
class RefineStage:
    """One matching stage. Template half-size = clip(radius_factor * r + margin_mm, min_half_mm, max_half_mm)."""

    spacing_mm: float
    search_mm: float
    radius_factor: float
    margin_mm: float
    min_half_mm: float
    max_half_mm: float
    distance_penalty: float = 0.0  # score -= penalty * (distance from the affine start / search_mm)²
    supersample: bool = False  # sample at spacing/2 and average 2×2×2 (anti-aliasing on coarse grids)
    scales: tuple[float, ...] = (1.0,)  # lesion growth factors tried, relative to the previous stage's best
    weight_sigma_mm: float | None = None  # Gaussian template weight: sigma = max(this, weight_radius_factor * r)
    weight_radius_factor: float = 0.0
    clip_hu: float = 200.0  # intensities above are clipped before matching
    spacing_per_radius: float = 0.0  # grid spacing = max(spacing_mm, this * lesion radius): big lesions, coarser


@dataclass(frozen=True)
class RefineConfig:
    """Stages run in order; ``min_context_ncc`` below which the affine start is kept (low confidence)."""

    stages: tuple[RefineStage, ...] = (
        # context: anatomy within ~3 cm, organ-scale motion
        RefineStage(2.0, 24.0, 0.0, 32.0, 32.0, 32.0, distance_penalty=0.15, supersample=True, weight_sigma_mm=12.0),
        # neighbourhood: the local displacement around the lesion
        RefineStage(1.0, 8.0, 0.0, 16.0, 16.0, 16.0, distance_penalty=0.1, weight_sigma_mm=8.0),
        # lesion: its size may have changed, so several growth factors are tried
        RefineStage(1.0, 4.0, 1.5, 8.0, 12.0, 24.0, distance_penalty=0.05, scales=(0.65, 0.8, 1.0, 1.25, 1.55),
                    weight_sigma_mm=4.0, weight_radius_factor=1.5, spacing_per_radius=1 / 8),
        # fine: sub-millimetre placement
        RefineStage(0.5, 2.0, 1.0, 4.0, 6.0, 12.0, scales=(0.9, 1.0, 1.1), weight_sigma_mm=2.5,
                    weight_radius_factor=1.2, spacing_per_radius=1 / 12),
    )
    min_context_ncc: float = 0.25
    anchors_after_stage: int = 1  # -1: off. After this stage, fit the local motion to matched anchor patches
    anchor_distance_mm: float = 20.0
    anchor_half_mm: float = 12.0
    anchor_search_mm: float = 8.0
    anchor_min_ncc: float = 0.6
    anchor_spacing_mm: float = 1.0
    context_candidates: int = 3  # context peaks handed to the neighbourhood stage
    candidate_margin: float = 0.15  # ... if they score within this of the best one


@dataclass(frozen=True, eq=False)
class RefineResult:
    """Refined follow-up centre ``(3,)`` LPS mm, per-stage NCC peaks, and a confidence in [0, 1]."""

    center_lps_mm: np.ndarray
    stage_ncc: tuple[float, ...]
    confidence: float
    fell_back: bool = False
    info: dict = field(default_factory=dict)


def _sample(
    volume: Volume, center: np.ndarray, half: int, spacing: float, linear, supersample: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Patch values (float32) and inside-the-volume mask, cube of half-size ``half`` voxels."""
    shape = (half, half, half)
    if not supersample:
        return sample_patch(volume, center, shape, spacing, linear, return_mask=True)
    # 8 sub-grids shifted by ±spacing/4, averaged: a 2×2×2 box filter before decimation.
    lin = np.eye(3) if linear is None else np.asarray(linear)
    acc, mask = None, None
    for dz in (-0.25, 0.25):
        for dy in (-0.25, 0.25):
            for dx in (-0.25, 0.25):
                shift = lin @ (np.array([dx, dy, dz]) * spacing)
                p, m = sample_patch(volume, center + shift, shape, spacing, linear, return_mask=True)
                acc, mask = (p, m) if acc is None else (acc + p, mask & m)
    return acc / 8.0, mask


def refine_center(
    baseline: Volume,
    followup: Volume,
    center_lps_mm: np.ndarray,
    radius_mm: float,
    baseline_to_followup: AffineTransform,
    config: RefineConfig = RefineConfig(),
    start_lps_mm: np.ndarray | None = None,
    keep_maps: bool = False,
) -> RefineResult:
    """Track one lesion centre from ``baseline`` into ``followup`` (see module docstring).

    Args:
        center_lps_mm: ``(3,)`` lesion centre on the baseline, LPS mm.
        radius_mm: lesion radius in mm (sets template sizes).
        baseline_to_followup: the affine from registration.
        start_lps_mm: follow-up start point (default: the affine image of the centre).
        keep_maps: also return each stage's score map in ``info["maps"]`` as
            ``(score (Z, Y, X), origin_lps_mm (3,), spacing_mm)``: node (0, 0, 0) at ``origin``, LPS-aligned axes.
    """
    c = np.asarray(center_lps_mm, dtype=float)
    start = baseline_to_followup.apply(c) if start_lps_mm is None else np.asarray(start_lps_mm, dtype=float)
    linear_inv = np.linalg.inv(baseline_to_followup.matrix)
    res = (axis_resolution_mm(baseline), axis_resolution_mm(followup))
    p = start.copy()
    scores: list[float] = []
    maps = []
    growth = 1.0
    centers = []
    for n, stage in enumerate(config.stages):
        best = None
        for rel in stage.scales:
            score, k, sp = _stage_scores(baseline, followup, c, p, start, stage, linear_inv, radius_mm, res,
                                         growth * rel)
            idx, peak = subvoxel_peak(score)
            if best is None or peak > best[1]:
                best = (idx, peak, score, k, growth * rel, sp)
        idx, peak, score, k, growth, sp = best
        if keep_maps:
            maps.append((score.astype(np.float32), p - k * sp, sp))
        scores.append(float(peak))
        if n == 0 and peak < config.min_context_ncc:
            info = {"reason": "low_ncc", "maps": maps} if keep_maps else {"reason": "low_ncc"}
            return RefineResult(start, tuple(scores), confidence=0.1, fell_back=True, info=info)
        if n == 0 and config.context_candidates > 1 and len(config.stages) > 1:
            # The context peak can be wrong where anatomy repeats or slides (chest wall): keep the best few
            # context peaks and let the next (more local) stage choose among them.
            p = _choose_candidate(baseline, followup, c, p, start, config, score, k, sp, linear_inv, radius_mm, res)
        else:
            p = p + (idx - k)[::-1] * sp
        if n == config.anchors_after_stage:
            p = _anchor_estimate(baseline, followup, c, p, linear_inv, res, config)
        centers.append(p.copy())
    confidence = float(np.clip(0.5 * max(scores[0], 0.0) + 0.5 * max(scores[-1], 0.0), 0.0, 1.0))
    info = {"growth": growth, "stage_centers_lps_mm": centers, **({"maps": maps} if keep_maps else {})}
    return RefineResult(p, tuple(scores), confidence, info=info)


_ANCHOR_DIRECTIONS = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]
    + [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float
)
_ANCHOR_DIRECTIONS /= np.linalg.norm(_ANCHOR_DIRECTIONS, axis=1, keepdims=True)


def _anchor_estimate(baseline, followup, c, p, linear_inv, res, config: RefineConfig) -> np.ndarray:
    """Follow-up position of ``c`` from the motion of 14 anchor patches around it.

    Points without a distinctive pattern of their own (a small nodule against the chest wall) slide along
    edges when matched alone. Anchors at ``anchor_distance_mm`` in 14 directions are matched independently
    (1 mm grid, ±``anchor_search_mm``); a weighted least-squares affine from their baseline to their
    follow-up positions, refitted without outliers, predicts where ``c`` went. Falls back to ``p``.
    """
    a_fwd = np.linalg.inv(linear_inv)
    s = config.anchor_spacing_mm
    h = int(round(config.anchor_half_mm / s))
    k = int(round(config.anchor_search_mm / s))
    src, dst, wts = [], [], []
    for direction in _ANCHOR_DIRECTIONS:
        offset = direction * config.anchor_distance_mm
        b = c + offset
        guess = p + a_fwd @ offset
        template, t_mask = sample_patch(baseline, b, (h, h, h), s, linear_inv, return_mask=True)
        image, i_mask = sample_patch(followup, guess, (h + k, h + k, h + k), s, None, return_mask=True)
        if t_mask.mean() < 0.9:
            continue
        template, image = _comparable(template, image, res[0], res[1], s, clip_hu=200.0)
        if template.std() < 20.0:  # featureless (e.g. air): no information
            continue
        score = masked_ncc_map(template, image, t_mask.astype(float), i_mask)
        idx, peak = subvoxel_peak(score)
        if peak < config.anchor_min_ncc:
            continue
        src.append(offset)
        dst.append(guess + (idx - k)[::-1] * s)
        wts.append(peak)
    if len(src) < 6:
        return p
    src_a, dst_a, w = np.array(src), np.array(dst), np.array(wts)
    keep = np.ones(len(src_a), bool)
    for _ in range(2):
        x = np.hstack([src_a[keep], np.ones((keep.sum(), 1))]) * w[keep, None]
        coef, *_ = np.linalg.lstsq(x, dst_a[keep] * w[keep, None], rcond=None)
        resid = np.linalg.norm(np.hstack([src_a, np.ones((len(src_a), 1))]) @ coef - dst_a, axis=1)
        new_keep = resid <= max(2.0, 2.5 * np.median(resid))
        if new_keep.sum() < 6 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    estimate = coef[3]  # the fitted map at offset 0, i.e. at the lesion centre
    return estimate if np.linalg.norm(estimate - p) <= config.anchor_search_mm + 4.0 else p


def _local_maxima(score: np.ndarray, count: int, min_separation: int, floor: float) -> list[np.ndarray]:
    """Up to ``count`` local maxima (index (z, y, x)) of a score map, best first, at least ``min_separation``
    voxels apart and scoring at least ``floor``."""
    from scipy.ndimage import maximum_filter

    peaks = np.argwhere((score == maximum_filter(score, size=3)) & (score >= floor))
    peaks = peaks[np.argsort(-score[tuple(peaks.T)])]
    chosen: list[np.ndarray] = []
    for peak in peaks:
        if all(np.max(np.abs(peak - c)) >= min_separation for c in chosen):
            chosen.append(peak)
        if len(chosen) == count:
            break
    return chosen


def _choose_candidate(baseline, followup, c, p, start, config, score, k, sp, linear_inv, radius_mm, res):
    """Follow-up point of the context candidate whose neighbourhood match (next stage) scores best."""
    peak_value = float(score.max())
    candidates = _local_maxima(score, config.context_candidates, max(1, int(round(6.0 / sp))),
                               peak_value - config.candidate_margin)
    nxt = config.stages[1]
    best = None
    for cand in candidates:
        point = p + (subvoxel_at(score, cand) - k)[::-1] * sp
        local, _, _ = _stage_scores(baseline, followup, c, point, start, nxt, linear_inv, radius_mm, res, 1.0)
        value = float(local.max()) + 0.5 * float(score[tuple(cand)])
        if best is None or value > best[0]:
            best = (value, point)
    return best[1]


def _comparable(
    template: np.ndarray, image: np.ndarray, res_template: np.ndarray, res_image: np.ndarray, spacing_mm: float,
    clip_hu: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Make two patches comparable: clip intensities above ``clip_hu`` (bone, hundreds of HU above soft
    tissue, would dominate the correlation although it moves differently from the soft tissue and lung around
    most lesions), then blur both to a common resolution per axis (``res_*``: each patch's own, x y z mm)."""
    np.clip(template, -1024.0, clip_hu, out=template)
    np.clip(image, -1024.0, clip_hu, out=image)
    target = np.maximum(np.maximum(res_template, res_image), spacing_mm)
    return (match_resolution(template, res_template, target, spacing_mm),
            match_resolution(image, res_image, target, spacing_mm))


def _stage_scores(
    baseline: Volume,
    followup: Volume,
    c: np.ndarray,
    p: np.ndarray,
    start: np.ndarray,
    stage: RefineStage,
    linear_inv: np.ndarray,
    radius_mm: float,
    res: tuple[np.ndarray, np.ndarray],
    growth: float,
) -> tuple[np.ndarray, int, float]:
    """(score map ``(2k+1)³``, k, grid spacing mm) of one stage at one lesion growth factor; index k = no shift."""
    s = max(stage.spacing_mm, stage.spacing_per_radius * radius_mm * growth)
    half_mm = stage.radius_factor * radius_mm * growth + stage.margin_mm
    h = int(round(float(np.clip(half_mm, stage.min_half_mm, stage.max_half_mm)) / s))
    k = int(np.ceil(stage.search_mm / s))
    # A follow-up offset g corresponds to the baseline offset A⁻¹ g / growth around the lesion centre.
    template, template_mask = _sample(baseline, c, h, s, linear_inv / growth, stage.supersample)
    image, image_mask = _sample(followup, p, h + k, s, None, stage.supersample)
    res_b, res_f = res
    own = s if stage.supersample else 0.0  # a supersampled patch is already box-filtered to its spacing
    template, image = _comparable(template, image, np.maximum(res_b / growth, own), np.maximum(res_f, own), s,
                                  clip_hu=stage.clip_hu)
    if stage.weight_sigma_mm is not None:  # favour the lesion and its near surroundings
        sigma = max(stage.weight_sigma_mm, stage.weight_radius_factor * radius_mm * growth)
        d2 = np.sum(patch_offsets_mm((h, h, h), s) ** 2, axis=-1)
        weight = np.exp(-0.5 * d2 / sigma**2) * template_mask
        score = masked_ncc_map(template, image, weight, image_mask)
    elif template_mask.all() and image_mask.all():
        score = ncc_map(template, image)
    else:  # part of a patch lies outside a scan's field of view: compare only what both scans show
        score = masked_ncc_map(template, image, template_mask, image_mask)
    if stage.distance_penalty > 0:
        grid = (np.indices(score.shape).transpose(1, 2, 3, 0) - k)[..., ::-1] * s  # offsets, x y z mm
        dist = np.linalg.norm(p + grid - start, axis=-1) / stage.search_mm
        score = score - stage.distance_penalty * dist**2
    return score, k, s

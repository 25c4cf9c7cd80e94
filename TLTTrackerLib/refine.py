"""The ``refine`` method: affine start + coarse-to-fine normalised cross-correlation matching. No weights.

For a baseline lesion at ``c`` (LPS mm) with radius ``r`` and an affine ``T(x) = A x + t`` from registration,
each stage samples a baseline template around ``c`` on a grid warped by ``A⁻¹`` (so the follow-up's rotation
and scale are undone), samples a follow-up search region around the current estimate ``p`` (start ``T(c)``),
matches them by FFT normalised cross-correlation (NCC), and moves ``p`` to the best sub-voxel peak:

1. context (2 mm grid, a 64 mm cube of anatomy around the lesion, search ±24 mm): absorbs the organ-scale motion
   that a global affine cannot model; a mild distance penalty prefers the affine start when scores tie.
2. lesion (1 mm grid, template ≈ 1.5 r + 6 mm): centres on the lesion and its immediate surroundings.
3. fine (0.5 mm grid, template ≈ r + 4 mm, search ±2 mm): sub-millimetre placement.

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
        p = p + (idx - k)[::-1] * sp
        centers.append(p.copy())
    confidence = float(np.clip(0.5 * max(scores[0], 0.0) + 0.5 * max(scores[-1], 0.0), 0.0, 1.0))
    info = {"growth": growth, "stage_centers_lps_mm": centers, **({"maps": maps} if keep_maps else {})}
    return RefineResult(p, tuple(scores), confidence, info=info)


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
    # Bone (hundreds of HU above soft tissue) would dominate the correlation although it moves differently
    # from the soft tissue and lung around most lesions: clip it to the soft-tissue range.
    np.clip(template, -1024.0, stage.clip_hu, out=template)
    np.clip(image, -1024.0, stage.clip_hu, out=image)
    target = np.maximum(np.maximum(res_b / growth, res_f), s)
    own = s if stage.supersample else 0.0
    template = match_resolution(template, np.maximum(res_b / growth, own), target, s)
    image = match_resolution(image, np.maximum(res_f, own), target, s)
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

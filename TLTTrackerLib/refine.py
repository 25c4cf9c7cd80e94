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
from .matching import axis_resolution_mm, match_resolution, ncc_map, sample_patch, subvoxel_peak
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


@dataclass(frozen=True)
class RefineConfig:
    """Stages run in order; ``min_context_ncc`` below which the affine start is kept (low confidence)."""

    stages: tuple[RefineStage, ...] = (
        RefineStage(2.0, 24.0, 0.0, 32.0, 32.0, 32.0, distance_penalty=0.15, supersample=True),
        RefineStage(1.0, 5.0, 1.5, 6.0, 10.0, 24.0),
        RefineStage(0.5, 2.0, 1.0, 4.0, 6.0, 12.0),
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


def _sample(volume: Volume, center: np.ndarray, half: int, spacing: float, linear, supersample: bool) -> np.ndarray:
    shape = (half, half, half)
    if not supersample:
        return sample_patch(volume, center, shape, spacing, linear)
    # 8 sub-grids shifted by ±spacing/4, averaged: a 2×2×2 box filter before decimation.
    lin = np.eye(3) if linear is None else np.asarray(linear)
    acc = None
    for dz in (-0.25, 0.25):
        for dy in (-0.25, 0.25):
            for dx in (-0.25, 0.25):
                shift = lin @ (np.array([dx, dy, dz]) * spacing)
                p = sample_patch(volume, center + shift, shape, spacing, linear)
                acc = p if acc is None else acc + p
    return acc / 8.0


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
    res_b = axis_resolution_mm(baseline)
    res_f = axis_resolution_mm(followup)
    p = start.copy()
    scores: list[float] = []
    maps = []
    for n, stage in enumerate(config.stages):
        s = stage.spacing_mm
        half_mm = float(np.clip(stage.radius_factor * radius_mm + stage.margin_mm, stage.min_half_mm, stage.max_half_mm))
        h = int(round(half_mm / s))
        k = int(np.ceil(stage.search_mm / s))
        template = _sample(baseline, c, h, s, linear_inv, stage.supersample)
        image = _sample(followup, p, h + k, s, None, stage.supersample)
        target = np.maximum(np.maximum(res_b, res_f), s)
        own = s if stage.supersample else 0.0
        template = match_resolution(template, np.maximum(res_b, own), target, s)
        image = match_resolution(image, np.maximum(res_f, own), target, s)
        score = ncc_map(template, image)  # (2k+1)³, index k = no shift
        if stage.distance_penalty > 0:
            grid = (np.indices(score.shape).transpose(1, 2, 3, 0) - k)[..., ::-1] * s  # offsets, x y z mm
            dist = np.linalg.norm(p + grid - start, axis=-1) / stage.search_mm
            score = score - stage.distance_penalty * dist**2
        idx, peak = subvoxel_peak(score)
        if keep_maps:
            maps.append((score.astype(np.float32), p - k * s, s))
        scores.append(float(peak))
        if n == 0 and peak < config.min_context_ncc:
            info = {"reason": "low_ncc", "maps": maps} if keep_maps else {"reason": "low_ncc"}
            return RefineResult(start, tuple(scores), confidence=0.1, fell_back=True, info=info)
        shift_xyz = (idx - k)[::-1] * s
        p = p + shift_xyz
    confidence = float(np.clip(0.5 * max(scores[0], 0.0) + 0.5 * max(scores[-1], 0.0), 0.0, 1.0))
    return RefineResult(p, tuple(scores), confidence, info={"maps": maps} if keep_maps else {})

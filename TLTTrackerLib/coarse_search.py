"""Wide coarse search before the region registration: large-context NCC at 4 mm over ±48 mm of the start.

The region registration of :mod:`.refine` converges from up to ≈ 15 mm; a lesion further from the affine estimate
ends on the wrong tissue. This search finds where the lesion's wide surroundings sit in the follow-up, cheaply:

    template(g) = baseline(c + A⁻¹ g)     g on a 4 mm grid, |g| ≤ ``template_half_mm`` per axis
    image(g)    = followup(p0 + g)        |g| ≤ ``template_half_mm + search_mm`` per axis

scored by Gaussian-weighted, masked NCC at every 4 mm shift (FFT, :func:`~.matching.masked_ncc_map`; ≈ 0.05 s).
Both are clipped to ``clip_hu`` and blurred to a common resolution (thick follow-up slices). NCC is invariant to
a linear intensity change over the window, and a 48 mm context is dominated by organ outlines, fat and bone, not
by the enhancement of one organ, which is what makes it survive a contrast change.

The result is up to ``n_candidates`` local maxima (at least ``min_separation_mm`` apart, parabolic sub-voxel
peaks), best first, plus the score at the start itself: the caller refines from the best ones and uses the gap
between the best and the second-best peak as a measure of ambiguity (:mod:`.confidence`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter

from .geometry import Volume
from .matching import masked_ncc_map, match_resolution, patch_offsets_mm, sample_patch_smooth, subvoxel_at


@dataclass(frozen=True)
class CoarseConfig:
    """Grid spacing, template half-size and search half-size (mm); Gaussian weight of the template (sigma, mm);
    HU clip; how many peaks to return and how far apart; ``distance_penalty`` per mm of shift subtracted from the
    score when ranking (a tie goes to the peak nearer the start)."""

    spacing_mm: float = 4.0
    template_half_mm: float = 24.0
    search_mm: float = 48.0
    weight_sigma_mm: float = 16.0
    clip_hu: tuple[float, float] = (-1000.0, 200.0)
    n_candidates: int = 3
    min_separation_mm: float = 10.0
    distance_penalty: float = 0.001


@dataclass(frozen=True, eq=False)
class CoarseMatch:
    """``candidates_lps_mm`` ``(K, 3)`` follow-up points (LPS mm), best first, their ``scores`` ``(K,)`` (NCC in
    [-1, 1], before the distance penalty) and ``score_at_start`` (the NCC with no shift)."""

    candidates_lps_mm: np.ndarray
    scores: np.ndarray
    score_at_start: float
    score_map: np.ndarray | None = None
    start_lps_mm: np.ndarray | None = None
    spacing_mm: float = 4.0

    def score_at(self, point_lps_mm: np.ndarray) -> float:
        """The NCC map interpolated (trilinear) at a follow-up point; NaN outside the searched shifts."""
        from scipy.ndimage import map_coordinates

        if self.score_map is None or self.start_lps_mm is None:
            return float("nan")
        k = (self.score_map.shape[0] - 1) / 2
        idx = (np.asarray(point_lps_mm, float) - self.start_lps_mm)[::-1] / self.spacing_mm + k
        if np.any(idx < 0) or np.any(idx > 2 * k):
            return float("nan")
        return float(map_coordinates(self.score_map, idx[:, None], order=1)[0])

    @property
    def gap(self) -> float:
        """Best minus second-best peak score (1.0 when there is only one peak): small = ambiguous."""
        return float(self.scores[0] - self.scores[1]) if len(self.scores) > 1 else 1.0


def coarse_search(
    baseline: Volume,
    followup: Volume,
    center_lps_mm: np.ndarray,
    start_lps_mm: np.ndarray,
    linear_inv: np.ndarray,
    res: tuple[np.ndarray, np.ndarray],
    config: CoarseConfig = CoarseConfig(),
) -> CoarseMatch:
    """Peaks of the large-context NCC of the baseline around ``center_lps_mm`` over shifts of ``start_lps_mm``.

    Args:
        linear_inv: ``(3, 3)`` inverse of the affine's linear part (baseline template in follow-up orientation).
        res: resolution ``(3,)`` mm along LPS x, y, z of the baseline and of the follow-up
            (:func:`~.matching.axis_resolution_mm`).
    """
    s = config.spacing_mm
    h = round(config.template_half_mm / s)
    k = round(config.search_mm / s)
    c = np.asarray(center_lps_mm, dtype=float)
    p0 = np.asarray(start_lps_mm, dtype=float)
    template, t_in = sample_patch_smooth(baseline, c, h, s, linear_inv)
    image, i_in = sample_patch_smooth(followup, p0, h + k, s, None)
    target = np.maximum(np.maximum(res[0], res[1]), s)
    template = match_resolution(np.clip(template, *config.clip_hu), np.maximum(res[0], s), target, s)
    image = match_resolution(np.clip(image, *config.clip_hu), np.maximum(res[1], s), target, s)
    d2 = np.sum(patch_offsets_mm((h, h, h), s) ** 2, axis=-1)
    weight = np.exp(-0.5 * d2 / config.weight_sigma_mm**2) * t_in
    score = masked_ncc_map(template, image, weight, i_in)  # (2k+1)³, node (k, k, k) = no shift
    offsets = patch_offsets_mm((k, k, k), s)  # x, y, z mm per node
    ranked = score - config.distance_penalty * np.linalg.norm(offsets, axis=-1)
    peaks = np.argwhere((ranked == maximum_filter(ranked, size=3, mode="nearest")) & (score > 0))
    order = np.argsort(-ranked[tuple(peaks.T)]) if len(peaks) else np.array([], int)
    chosen: list[np.ndarray] = []
    for idx in peaks[order]:
        fine = subvoxel_at(score, idx)
        shift = (fine[::-1] - k) * s  # z y x index -> x y z mm
        if all(np.linalg.norm(shift - q) >= config.min_separation_mm for q in chosen):
            chosen.append(shift)
            if len(chosen) == config.n_candidates:
                break
    if not chosen:
        chosen = [np.zeros(3)]
    scores = np.array([_score_at(score, k + q[::-1] / s) for q in chosen])
    return CoarseMatch(p0 + np.array(chosen), scores, float(score[k, k, k]), score.astype(np.float32), p0, s)


def _score_at(score: np.ndarray, index_zyx: np.ndarray) -> float:
    """Score at the nearest node of a fractional index."""
    i = np.clip(np.round(index_zyx).astype(int), 0, np.array(score.shape) - 1)
    return float(score[tuple(i)])

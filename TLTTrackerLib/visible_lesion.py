"""A visible lesion's own blob: where a doubtful result lies off it, snap onto it.

Under large motion the region registration (:mod:`.refine`) can align the tissue around a lesion and leave the
lesion 8–15 mm away: a soft-tissue lesion in homogeneous liver, spleen or muscle is a small part of the ±40 mm
region it matches. Such a lesion is still plain to see in the follow-up, as a ball brighter or darker than a
homogeneous shell around it. At a point ``q`` and a ball radius ``ρ`` (mm):

    contrast(q, ρ)  = mean over the ball  |x − q| ≤ 0.7 ρ  −  mean over the shell  1.3 ρ ≤ |x − q| ≤ 2 ρ   (HU)
    shell_std(q, ρ) = standard deviation over that shell (HU): low in homogeneous surroundings

measured on a patch sampled along the LPS axes at ``max(1, r / 3)`` mm (both images clipped to ``clip_hu``;
nothing is measured where the ball or shell reaches beyond the scan's coverage). The baseline gives the lesion's
contrast ``C`` and shell std ``S`` at its centre and radius ``r``; in the follow-up
``s · contrast`` (``s`` the sign of ``C``) is maximised over ``ρ = r · k · scale`` for the growth factors ``k`` in
``scales`` (lesions grow and shrink between scans; ``scale`` is the affine's linear scale) within ``search_mm`` of
the result. A local maximum is *the lesion's look-alike* where its contrast is ``contrast_ratio`` × |C| and its
shell std at most ``max(shell_factor · S, S + shell_margin_hu)``. The snap moves the result to the strongest
look-alike when

- the lesion is visible and not a small nodule: |C| ≥ ``min_contrast_hu``, r > ``min_radius_mm`` (smaller ones
  have :func:`~.lesion_template.snap_to_lesion`);
- the lesion is a look-alike of itself: searched in the baseline around its own centre, one of the look-alikes
  found lies on it (a point on an organ's edge, beside bone or inside a vertebra is mostly none; a faint lesion
  among noise of its own contrast may not be), and there are at most ``max_look_alikes`` of them: a twin or two
  nearby are allowed, textured surroundings with many (the tuning rows' anatomical points and organ interiors
  that are look-alikes of themselves have 4–9) are not;
- the result is doubtful: its confidence is below ``below_confidence`` (confident results were nearly always
  right, and the snap's only losses on the tuning pairs were among them); or, for a confident result, the lesion
  is plainly not there and its look-alike is the lesion: the result's own contrast (as ``C``, ball ``r · scale``)
  is below ``confident_max_own`` × |C|, and the lesion's template (the baseline around it,
  :func:`~.lesion_template.lesion_match`, given as ``template_match``) matches the look-alike better than the
  result. A twin, the one way such a move lost, sits in other surroundings: on the tuning rows each of the 15
  moves that would have lost a hit had the twin's template match below the result's (docs/benchmarks.md §31);
- the result lies ``min_edge_mm`` or more inside the follow-up's coverage: nearer the edge the scan cuts the
  lesion's surroundings off (``fov-edge`` tuning pairs: the one snap there took a hit 5.0 → 12.3 mm off);
- no look-alike lies within ``max(near_mm, near_fraction · ρ)`` of the result (it is not already on one);
- the look-alike lies ``rim_mm`` inside the search sphere: a maximum on its surface is where the map was cut off.

The caller checks the snapped point by tracking it back like any other result; its confidence is not below the
result's it replaces (:mod:`.multistart`, docs/benchmarks.md §26).

Tuning (``docs/benchmarks.md`` §24, §25), every result with a confidence below 0.7 on the tuning seeds 0–9 of the
whole suite and on the painted cases of the chest scenarios' tuning seeds (``large-motion`` and ``extreme`` 0–47):
16 snaps besides the ``fov-edge`` one above, 12 misses rescued and 4 hits brought closer, none made worse; no
anatomical point, organ interior or LIDC nodule moved. (§24 asked the lesion to be its baseline's only look-alike:
5 snaps, 3 rescues. Most painted lesions that failed that have a twin 10–14 mm away.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .geometry import Volume
from .matching import patch_offsets_mm, sample_patch_smooth, subvoxel_at


@dataclass(frozen=True)
class VisibleSnapConfig:
    """The snap's settings (module docstring); ``below_confidence`` 0 turns it off, ``confident_max_own`` 0 keeps
    every confident result where it is."""

    below_confidence: float = 0.7
    min_contrast_hu: float = 20.0
    min_radius_mm: float = 3.0
    max_look_alikes: int = 3
    search_mm: float = 15.0
    scales: tuple[float, ...] = (0.6, 0.75, 0.9, 1.1, 1.3, 1.6)
    contrast_ratio: tuple[float, float] = (0.6, 1.6)
    shell_factor: float = 2.0
    shell_margin_hu: float = 15.0
    near_mm: float = 3.0
    near_fraction: float = 0.7
    rim_mm: float = 1.0
    min_edge_mm: float = 15.0
    clip_hu: tuple[float, float] = (-1000.0, 400.0)
    confident_max_own: float = 0.6


@dataclass(frozen=True)
class LookAlike:
    """A local maximum of the follow-up's signed contrast: ``point_lps_mm`` ``(3,)``, ``contrast_hu`` (signed as
    the baseline lesion's, so positive), ``shell_std_hu``, ``ball_radius_mm`` (ρ)."""

    point_lps_mm: np.ndarray
    contrast_hu: float
    shell_std_hu: float
    ball_radius_mm: float


def _kernels(ball_radius_mm: float, spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Ball (|x| ≤ 0.7 ρ) and shell (1.3 ρ ≤ |x| ≤ 2 ρ) averaging kernels on a cubic grid, each summing to 1."""
    h = int(np.ceil(2.0 * ball_radius_mm / spacing_mm)) + 1
    d = _distance_mm(h, spacing_mm)
    ball = (d <= 0.7 * ball_radius_mm).astype(float)
    shell = ((d >= 1.3 * ball_radius_mm) & (d <= 2.0 * ball_radius_mm)).astype(float)
    return ball / ball.sum(), shell / shell.sum()


def _distance_mm(half: int, spacing_mm: float) -> np.ndarray:
    """Each node's distance (mm) from the centre of a cubic grid ``(2 half + 1,)*3``."""
    return np.linalg.norm(patch_offsets_mm((half, half, half), spacing_mm), axis=-1)


def contrast_maps(patch: np.ndarray, ball_radius_mm: float, spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """``(contrast, shell_std)`` HU at every node of ``patch`` (any 3D array on a cubic grid of ``spacing_mm``)."""
    from scipy.signal import fftconvolve

    ball, shell = _kernels(ball_radius_mm, spacing_mm)
    patch = patch.astype(np.float64)
    inner = fftconvolve(patch, ball, mode="same")
    mean = fftconvolve(patch, shell, mode="same")
    square = fftconvolve(patch * patch, shell, mode="same")
    return inner - mean, np.sqrt(np.maximum(square - mean * mean, 0.0))


def _reaches(mask: np.ndarray, ball_radius_mm: float, spacing_mm: float) -> np.ndarray:
    """Where a node's ball or shell covers any node of ``mask`` (float 0/1, the patch's shape)."""
    from scipy.signal import fftconvolve

    ball, shell = _kernels(ball_radius_mm, spacing_mm)
    return fftconvolve(mask, ball + shell, mode="same") > 1e-6


def _patch(volume: Volume, center_lps_mm: np.ndarray, half: int, spacing_mm: float,
           clip_hu: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The clipped cubic patch ``(2 half + 1,)*3`` (z, y, x along LPS) around a point, and its in-scan mask."""
    patch, inside = sample_patch_smooth(volume, np.asarray(center_lps_mm, float), half, spacing_mm, None)
    return np.clip(patch, *clip_hu), inside


def contrast_at(volume: Volume, point_lps_mm: np.ndarray, ball_radius_mm: float,
                config: VisibleSnapConfig = VisibleSnapConfig()) -> tuple[float, float]:
    """``(contrast, shell_std)`` HU of the ball of radius ``ball_radius_mm`` at a point ``(3,)`` LPS mm (at a
    lesion's baseline centre and radius: the lesion's own)."""
    g = _spacing(ball_radius_mm)
    half = int(np.ceil(2.2 * ball_radius_mm / g)) + 2
    contrast, shell_std = contrast_maps(_patch(volume, point_lps_mm, half, g, config.clip_hu)[0], ball_radius_mm,
                                        g)
    return float(contrast[half, half, half]), float(shell_std[half, half, half])


def _spacing(radius_mm: float) -> float:
    """The maps' grid (mm) for a lesion of radius ``radius_mm``: three nodes a radius, at least 1 mm apart."""
    return max(1.0, radius_mm / 3.0)


def look_alikes(followup: Volume, point_lps_mm: np.ndarray, radius_mm: float, contrast_hu: float,
                shell_std_hu: float, scale: float = 1.0,
                config: VisibleSnapConfig = VisibleSnapConfig()) -> list[LookAlike]:
    """The look-alikes of a baseline lesion (``contrast_hu``, ``shell_std_hu``, ``radius_mm``) in ``followup`` (or in
    the baseline itself, to check that the lesion is one) within ``config.search_mm`` of ``point_lps_mm`` ``(3,)`` LPS
    mm, strongest first (module docstring); ``scale``: the affine's linear scale, baseline → that scan."""
    from scipy.ndimage import maximum_filter

    g = _spacing(radius_mm)
    widest = 2.0 * max(config.scales) * radius_mm * scale
    half = int(np.ceil((config.search_mm + widest) / g)) + 2
    patch, inside = _patch(followup, point_lps_mm, half, g, config.clip_hu)
    outside = (~inside).astype(np.float64)
    sign = 1.0 if contrast_hu >= 0 else -1.0
    best = np.full(patch.shape, -np.inf)
    shell = np.zeros(patch.shape)
    rho = np.zeros(patch.shape)
    for k in config.scales:
        contrast, shell_std = contrast_maps(patch, radius_mm * scale * k, g)
        if outside.any():  # a ball or shell that reaches beyond the scan's coverage measures nothing
            contrast[_reaches(outside, radius_mm * scale * k, g)] = -sign * np.inf
        better = sign * contrast > best
        best[better] = sign * contrast[better]
        shell[better], rho[better] = shell_std[better], radius_mm * scale * k
    far = _distance_mm(half, g) > config.search_mm
    best[far] = -np.inf
    size = max(3, int(2 * radius_mm / g) | 1)
    peaks = np.argwhere((best == maximum_filter(np.where(far, -1e9, best), size=size)) & ~far)
    low, high = config.contrast_ratio[0] * abs(contrast_hu), config.contrast_ratio[1] * abs(contrast_hu)
    shell_limit = max(config.shell_factor * shell_std_hu, shell_std_hu + config.shell_margin_hu)
    finite = np.isfinite(best)
    smooth = np.where(finite, best, best[finite].min() if finite.any() else 0.0)  # for the sub-voxel parabola
    out = []
    for index in peaks:
        at = tuple(index)
        if low <= best[at] <= high and shell[at] <= shell_limit:
            offset_kji = subvoxel_at(smooth, index) - half
            out.append(LookAlike(np.asarray(point_lps_mm, float) + offset_kji[::-1] * g, float(best[at]),
                                 float(shell[at]), float(rho[at])))
    return sorted(out, key=lambda a: -a.contrast_hu)


def visible_snap(baseline: Volume, followup: Volume, center_lps_mm: np.ndarray, radius_mm: float,
                 point_lps_mm: np.ndarray, confidence: float, scale: float = 1.0, edge_mm: float = np.inf,
                 config: VisibleSnapConfig = VisibleSnapConfig(),
                 template_match: Callable[[np.ndarray], float] | None = None) -> np.ndarray | None:
    """The strongest look-alike ``(3,)`` LPS mm where the snap applies to this result (module docstring), else
    None. ``center_lps_mm``, ``radius_mm``: the baseline lesion; ``point_lps_mm``, ``confidence``: the result;
    ``edge_mm``: its distance (mm) from the edge of the follow-up's coverage; ``template_match(q)``: the lesion
    template's NCC at a follow-up point ``q`` (3,) LPS mm (None: a confident result never moves)."""
    confident = confidence >= config.below_confidence
    if confident and (template_match is None or config.confident_max_own <= 0):
        return None
    if not (radius_mm > config.min_radius_mm and edge_mm >= config.min_edge_mm):
        return None
    contrast, shell_std = contrast_at(baseline, center_lps_mm, radius_mm, config)
    if abs(contrast) < config.min_contrast_hu:
        return None
    if confident and (np.sign(contrast) * contrast_at(followup, point_lps_mm, radius_mm * scale, config)[0]
                      >= config.confident_max_own * abs(contrast)):
        return None  # the lesion is (partly) there: a confident result stays
    own = look_alikes(baseline, center_lps_mm, radius_mm, contrast, shell_std, 1.0, config)
    if len(own) > config.max_look_alikes or not _on_one(own, center_lps_mm, config):
        return None  # the lesion is no look-alike of itself, or one among many
    found = look_alikes(followup, point_lps_mm, radius_mm, contrast, shell_std, scale, config)
    if _on_one(found, point_lps_mm, config):
        return None
    inner = [a for a in found if np.linalg.norm(a.point_lps_mm - point_lps_mm) <= config.search_mm - config.rim_mm]
    if not inner:
        return None
    if confident and template_match(inner[0].point_lps_mm) <= template_match(np.asarray(point_lps_mm, float)):
        return None  # the lesion's surroundings say the result, not the look-alike (a twin)
    return inner[0].point_lps_mm


def _on_one(found: list[LookAlike], point_lps_mm: np.ndarray, config: VisibleSnapConfig) -> bool:
    """Whether ``point_lps_mm`` lies on one of the look-alikes: within ``max(near_mm, near_fraction · ρ)``."""
    return any(np.linalg.norm(a.point_lps_mm - point_lps_mm) <= max(config.near_mm, config.near_fraction
                                                                     * a.ball_radius_mm) for a in found)

"""A visible lesion's own centre: a result that lies on the lesion's blob moves to the blob's centre.

The region registration (:mod:`.refine`) places a lesion by the motion of the tissue around it. A soft-tissue lesion
of 25–60 HU contrast is a faint part of the ±40 mm region it matches (demons follows the region's strong edges: air,
fat, bone), and a lesion larger than the finest level's ±12 mm region has no edge inside it. Under large motion,
where the lesion grows or shrinks, such results land 3–10 mm from the centre while still on the lesion: the largest
part of ``large-motion``'s and ``extreme``'s mean error (docs/benchmarks.md §27). The lesion itself gives its centre,
as a radiologist would take it: the middle of what is seen.

Both images are sampled along the LPS axes around the point at ``g = clip(r / 4, 0.5, 1)`` mm, clipped to ``clip_hu``
and Gaussian-smoothed (σ = ``max(min_smoothing_mm, smoothing · r)``):

    baseline   C = mean over the ball |x − c| ≤ 0.7 r − median over the shell 1.3 r ≤ |x − c| ≤ 2 r   (HU)
               the blob = the connected part at ``c`` of {s · (I − (shell + C / 2)) > 0} (s the sign of C),
               opened by a ball of ``open_fraction · r`` (cuts the thin bridges to neighbouring tissue)
               kept when |C| ≥ ``min_contrast_hu``, r > ``min_radius_mm``, its equivalent radius r_b lies in
               ``radius_range`` × r, it does not reach the edge of its ±2.5 r box, and its centroid lies within
               ``max_offset_fraction · r`` of ``c`` (o = centroid − c)
    follow-up  the same at the result ``p`` (threshold: the baseline's, then once more from the follow-up's own
               ball and shell around the blob found, whose contrast must reach ``min_contrast_kept`` · |C|),
               opened by ``followup_open_fraction · r_b``; the blob is the part at ``p`` or within ``near_mm`` of
               it, kept when it does not reach the edge of its box (±``box_factor · r_b · scale``) and its
               equivalent radius over ``r_b · scale`` lies in ``growth_range``; where that opening leaves no blob
               there, the smaller ``retry_open_fractions · r_b`` in turn, within ``retry_near_mm``, the blob then
               kept only if it has not grown (≤ ``retry_max_growth``)
    the point  centroid − A o (A the registration's linear part: the baseline's own offset of the centre from the
               blob's centroid carried over; zero for a round lesion)

A point off every blob, a lesion that is no compact blob in its baseline (a nodule on vessels, an organ's interior),
a follow-up blob that runs into neighbouring tissue of its intensity, or one that does not stand out from its own
surroundings is left where it is. That last is a shrunken lesion merged with a piece of darker tissue beside it,
whose centroid lies between them: a report ``extreme`` lesion went 1.3 → 6.9 mm at confidence 0.77 without the
rule, its blob at 0.39 of the contrast; the 107 moves on the tuning seeds kept ≥ 0.59 (docs/benchmarks.md §28).

The retries are for a lesion that shrank or faded: thresholded at the baseline's level its blob is smaller than the
first opening, which erases it, and the result, placed by the tissue around, often lies just beside it. A blob that
grew would have survived the first opening, so a retried one that is larger is tissue joined to it by a bridge the
smaller opening no longer cuts (§27: a first opening of 0.3 r_b moved points up to 14 mm further off).

Along an axis where either scan is coarser than ``lock_above_mm`` (5–8 mm slices: a blob cut into a few slices has
no centre along them) the point keeps its coordinate, as the lesion template's snap does (:mod:`.lesion_template`).
A report ``thick-slice`` painted lesion moved 0.8 → 13.4 mm when that axis moved too (§27), which then left such
pairs alone: every 5 mm follow-up of the chest scenarios, whose pairs draw the follow-up's slices from 1, 1.25, 2.5
and 5 mm. The lock lies between those and the 2.7–3.4 mm voxels of the TotalSegmentator case's follow-ups (a 3 mm
scan resampled), which are centred along every axis (§29; a lock at 3 mm kept their in-plane coordinates).

Tuning (``large-motion`` seeds 0–7, ``extreme`` 0–6; 182 lesions of r > 3 mm, the points of ``auto`` without this
step as input): 112 moved, 95 closer and 9 further (by at most 0.65 mm), the sum of errors 452 → 258 mm, three
misses rescued, none lost; a smoothing of 0.7 mm or a follow-up opening of 0.3 r_b moved points up to 3.6 and 14 mm
further off (docs/benchmarks.md §27). The axis lock on the tuning pairs with 5–8 mm slices (``large-motion`` and
``extreme`` seeds 0–9, ``thick-slice`` 0–9): 146 moved, 59 closer and 11 further (by at most 0.47 mm), the sum of
errors −51 mm, two misses rescued, none lost (§28). The retries and the 4 mm lock on the tuning rows of ``standard``
(seeds 0–8), ``large-motion``, ``extreme``, ``thick-slice`` and ``fov-edge`` (0–9), 538 lesions: the sum of errors
−73 mm (``extreme`` −40), two misses rescued, none lost, the worst +2.9 mm (a lesion whose baseline blob takes in
tissue beside it, its offset carried over; still a hit) (§29).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import Volume
from .matching import axis_resolution_mm, patch_offsets_mm, sample_patch_smooth
from .transforms import linear_scale


@dataclass(frozen=True)
class LesionCentreConfig:
    """The settings of :func:`lesion_centre` (module docstring; fractions are of the lesion's radius r unless
    named); chosen on the ``large-motion`` and ``extreme`` tuning seeds (docs/benchmarks.md §27), the contrast veto
    ``min_contrast_kept`` and the axis lock ``lock_above_mm`` checked on them and on ``thick-slice``'s (§28)."""

    min_contrast_hu: float = 20.0
    min_contrast_kept: float = 0.5
    min_radius_mm: float = 3.0
    smoothing: float = 0.2
    min_smoothing_mm: float = 0.7
    open_fraction: float = 0.5
    followup_open_fraction: float = 0.45
    radius_range: tuple[float, float] = (0.5, 1.6)
    max_offset_fraction: float = 0.5
    growth_range: tuple[float, float] = (0.5, 2.2)
    near_mm: float = 2.0
    retry_open_fractions: tuple[float, ...] = (0.3, 0.15)
    retry_near_mm: float = 4.0
    retry_max_growth: float = 1.0
    box_factor: float = 4.25
    lock_above_mm: float = 4.0
    clip_hu: tuple[float, float] = (-1000.0, 400.0)


@dataclass(frozen=True)
class Blob:
    """A thresholded blob: ``centroid_lps_mm`` ``(3,)``, ``radius_mm`` (equivalent sphere), ``cut`` (whether it
    reaches the edge of the box it was found in: its centroid is then no centre)."""

    centroid_lps_mm: np.ndarray
    radius_mm: float
    cut: bool


def lesion_centre(baseline: Volume, followup: Volume, center_lps_mm: np.ndarray, radius_mm: float,
                  point_lps_mm: np.ndarray, linear: np.ndarray,
                  config: LesionCentreConfig = LesionCentreConfig()) -> np.ndarray | None:
    """The centre ``(3,)`` LPS mm of the follow-up blob the result ``point_lps_mm`` lies on (module docstring), or
    None where it does not apply. ``center_lps_mm``, ``radius_mm``: the baseline lesion; ``linear``: the
    registration's ``(3, 3)`` linear part, baseline → follow-up (``scale`` above: its linear scale,
    :func:`~.transforms.linear_scale`)."""
    locked = np.maximum(axis_resolution_mm(baseline), axis_resolution_mm(followup)) > config.lock_above_mm  # x y z
    if radius_mm <= config.min_radius_mm or locked.all():
        return None
    c, p = np.asarray(center_lps_mm, float), np.asarray(point_lps_mm, float)
    scale = linear_scale(linear)
    g = float(np.clip(radius_mm / 4.0, 0.5, 1.0))
    sigma = max(config.min_smoothing_mm, config.smoothing * radius_mm)
    patch, inside = _patch(baseline, c, 2.5 * radius_mm, g, sigma, config.clip_hu)
    inner, shell = ball_and_shell(patch, g, radius_mm)
    contrast = inner - shell
    if abs(contrast) < config.min_contrast_hu:
        return None
    sign, threshold = float(np.sign(contrast)), shell + contrast / 2.0
    own = find_blob(sign * (patch - threshold) > 0, inside, c, g, config.open_fraction * radius_mm, 0.0)
    lo, hi = config.radius_range
    if own is None or own.cut or not lo * radius_mm <= own.radius_mm <= hi * radius_mm:
        return None
    offset = own.centroid_lps_mm - c
    if np.linalg.norm(offset) > config.max_offset_fraction * radius_mm:
        return None
    patch, inside = _patch(followup, p, config.box_factor * own.radius_mm * scale, g, sigma, config.clip_hu)
    lo, widest = config.growth_range
    retry_widest = min(widest, config.retry_max_growth)
    attempts = [(config.followup_open_fraction, config.near_mm, widest)] + [
        (fraction, config.retry_near_mm, retry_widest) for fraction in config.retry_open_fractions]
    for fraction, near_mm, hi in attempts:  # a shrunk lesion's blob may not survive the first opening
        open_mm = fraction * own.radius_mm
        found = find_blob(sign * (patch - threshold) > 0, inside, p, g, open_mm, near_mm)
        if found is not None:
            break
    if found is not None:
        # the threshold again from the follow-up's own ball and shell about that blob (a contrast change); a blob
        # that does not stand out from its own surroundings like the lesion is a piece of tissue of its intensity
        around, _ = _patch(followup, found.centroid_lps_mm, 2.0 * found.radius_mm + 2 * g, g, sigma, config.clip_hu)
        inner, shell = ball_and_shell(around, g, found.radius_mm)
        if sign * (inner - shell) < config.min_contrast_kept * abs(contrast):
            return None
        threshold = (inner + shell) / 2.0
        found = find_blob(sign * (patch - threshold) > 0, inside, p, g, open_mm, near_mm)
    if found is None or found.cut or not lo <= found.radius_mm / (own.radius_mm * scale) <= hi:
        return None
    return np.where(locked, p, found.centroid_lps_mm - np.asarray(linear, float) @ offset)


def _patch(volume: Volume, point_lps_mm: np.ndarray, half_mm: float, g: float, sigma_mm: float,
           clip_hu: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The cubic patch (z, y, x along LPS, spacing ``g`` mm, ``half_mm`` each side) about a point, clipped and
    smoothed, and its in-scan mask."""
    from scipy.ndimage import gaussian_filter

    half = int(np.ceil(half_mm / g))
    patch, inside = sample_patch_smooth(volume, np.asarray(point_lps_mm, float), half, g, None)
    return gaussian_filter(np.clip(patch, *clip_hu), sigma_mm / g), inside


def ball_and_shell(patch: np.ndarray, g: float, rho_mm: float) -> tuple[float, float]:
    """``(mean over the ball |x| ≤ 0.7 ρ, median over the shell 1.3 ρ ≤ |x| ≤ 2 ρ)`` HU about the centre node of a
    cubic patch of spacing ``g`` mm (the median: a shell may cross bone or air on one side)."""
    d = np.linalg.norm(patch_offsets_mm(tuple((n - 1) // 2 for n in patch.shape), g), axis=-1)
    ball, shell = patch[d <= 0.7 * rho_mm], patch[(d >= 1.3 * rho_mm) & (d <= 2.0 * rho_mm)]
    return float(ball.mean()), float(np.median(shell)) if shell.size else float("nan")


def find_blob(mask: np.ndarray, inside: np.ndarray, point_lps_mm: np.ndarray, g: float, open_mm: float,
              near_mm: float) -> Blob | None:
    """The connected part of ``mask & inside`` (cubic patches of spacing ``g`` mm, z y x along LPS; opened by a
    ball of ``open_mm``) at the centre node, which lies at ``point_lps_mm``, or the part nearest to it within
    ``near_mm``; None where there is none."""
    from scipy import ndimage

    mask = mask & inside
    if open_mm > g:
        core = ndimage.distance_transform_edt(mask, sampling=g) > open_mm
        mask = ndimage.distance_transform_edt(~core, sampling=g) <= open_mm
    labels, _ = ndimage.label(mask)
    centre = tuple((np.asarray(mask.shape) - 1) // 2)
    label = labels[centre]
    if label == 0:
        distance, nearest = ndimage.distance_transform_edt(labels == 0, sampling=g, return_indices=True)
        if distance[centre] > near_mm:
            return None
        label = labels[tuple(nearest[(slice(None),) + centre])]
    part = labels == label
    cut = any(np.take(part, side, axis=axis).any() for axis in range(3) for side in (0, -1))
    offset_kji = (np.array(ndimage.center_of_mass(part)) - centre) * g
    radius = float((3.0 * part.sum() * g**3 / (4.0 * np.pi)) ** (1.0 / 3.0))
    return Blob(np.asarray(point_lps_mm, float) + offset_kji[::-1], radius, bool(cut))

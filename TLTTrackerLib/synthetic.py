"""Synthetic longitudinal pairs with exact ground truth: a follow-up CT made from a baseline CT by a known
map. Real images, synthetic motion. The exact baseline -> follow-up map (LPS mm to LPS mm) is

    F = G ∘ N ∘ A        (A first, then N, then G)

- ``A``: random affine about the volume centre (rotation ±``max_rotation_deg`` per axis, scale
  1 ± ``max_scale`` per axis, translation ±``max_translation_mm`` per axis);
- ``N``: smooth organ-scale non-rigid motion, *defined by its inverse*: ``N⁻¹(z) = z + u(z)`` with ``u`` a
  smooth random field on a coarse node grid in the follow-up frame, interpolated trilinearly (damped in
  bone). Resampling needs only ``N⁻¹``, which is therefore exact; ``N`` itself (lesion centres, any baseline
  point) is solved by fixed-point iteration ``z ← x − u(z)`` to ``fixed_point_tol_mm``;
- ``G``: growth or shrinkage of each lesion by a factor ``s``: radial scaling about the lesion centre (which
  stays exactly fixed), uniform inside ``growth_inner_radii`` follow-up radii, fading to identity at
  ``growth_outer_ratio`` times that (smoothstep in log radius; monotone, so invertible). A zone never
  holds another lesion or zone (such a lesion keeps ``s = 1``), so all centres stay put.

The follow-up is then sampled on its own grid (another in-plane spacing, slice thickness ``T`` from
``slice_thickness_mm_choices`` with a box slice profile of width ``T``, a cropped field of view that keeps
every lesion inside) by pulling baseline values through ``F⁻¹ = A⁻¹ ∘ N⁻¹ ∘ G⁻¹``, with a slight gain/offset
change and fresh Gaussian noise, and stored as int16 HU. Follow-up lesion centres are ``F(baseline centre)``
and radii ``s · r · det(J_{N∘A})^{1/3}``.

Difficulty (calibrated on LIDC-IDRI-0001 with its nodules, 20 seeds): after removing the least-squares affine
fit of ``F`` over the body, about 6.5 mm of motion remains at the lesions on average (see
:func:`affine_residual_at_lesions`).

The pair generator follows the spirit of DLT's self-supervised pair synthesis (Cai et al., CVPR 2021) and of
synthetic-deformation benchmarks in registration; the code is our own.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from .contrast import check_monotone, draw_contrast, enhancement_change
from .geometry import Volume
from .lesions import Lesion
from .resample import AIR_HU, warp_volume
from .transforms import AffineTransform, CompositeTransform, PointTransform, local_linear
from .synthetic_field import _gradient_norm, _largest_eigenvalue_sym3, _random_field  # noqa: F401 (re-exported)
from .synthetic_grid import _box_in_frame, _followup_grid  # noqa: F401 (re-exported)
from .warps import (  # noqa: F401 (re-exported)
    GridDisplacementTransform,
    InverseOf,
    RadialGrowthTransform,
    SyntheticBackwardTransform,
    _smoothstep,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairConfig:
    """Knobs of :func:`make_pair`; ranges are sampled uniformly. Defaults give "realistic" difficulty: a plain
    affine map leaves ≈ 6–7 mm of motion at lesions (module docstring)."""

    max_rotation_deg: float = 8.0
    max_translation_mm: float = 20.0
    max_scale: float = 0.06
    # RMS displacement at the reference correlation length (before local damping); calibrated on LIDC-0001
    nonrigid_rms_mm: float = 10.5
    nonrigid_correlation_mm: tuple[float, float] = (40.0, 80.0)  # autocorrelation falls to 1/e here
    nonrigid_reference_correlation_mm: float = 60.0  # RMS scales with correlation / this: constant strain
    nonrigid_node_spacing_mm: float = 8.0
    nonrigid_bone_damping: float = 0.6  # fraction removed where the baseline is bone (> 200 HU)
    nonrigid_max_gradient: float = 0.8  # cap on the spectral norm of ∇u (< 1 keeps N invertible)
    growth_factor_range: tuple[float, float] = (0.6, 1.6)  # follow-up radius / baseline radius
    growth_inner_radii: float = 1.2
    growth_outer_ratio: float = 2.5
    slice_thickness_mm_choices: tuple[float, ...] = (1.0, 1.25, 2.5, 5.0)
    inplane_spacing_factor_range: tuple[float, float] = (0.9, 1.15)
    fov_inplane_fraction_range: tuple[float, float] = (0.8, 1.0)
    fov_z_fraction_range: tuple[float, float] = (0.6, 0.95)
    fov_shift_mm: float = 10.0  # in-plane jitter of the follow-up FOV centre
    fov_lesion_margin_mm: float = 15.0  # kept around every lesion (plus its radius) inside the follow-up FOV
    noise_hu_range: tuple[float, float] = (5.0, 20.0)
    gain_range: tuple[float, float] = (0.97, 1.03)
    offset_hu_range: tuple[float, float] = (-10.0, 10.0)
    fixed_point_tol_mm: float = 1e-4
    # Harder settings (TLTTrackerLib.scenarios). The defaults draw nothing extra: pairs stay bit-identical.
    nonrigid_rms_mm_range: tuple[float, float] | None = None  # per pair, log-uniform; replaces nonrigid_rms_mm
    contrast_change_hu_range: tuple[float, float] = (0.0, 0.0)  # soft-tissue enhancement change (contrast.py)
    contrast_spatial_variation: float = 0.0  # relative spatial modulation of that change (organ to organ)
    contrast_window_hu: tuple[float, float] = (0.0, 250.0)  # HU range the change acts on
    # one lesion at a z edge of the follow-up: signed distance (mm) of its centre inside the edge (< 0: outside)
    fov_edge_offset_mm_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        lo, hi = self.growth_factor_range
        if not 0 < lo <= hi:
            raise ValueError(f"growth_factor_range must be 0 < lo <= hi, got {self.growth_factor_range}")
        slope = max(abs(math.log(lo)), abs(math.log(hi))) * 1.5 / math.log(self.growth_outer_ratio)
        if self.growth_outer_ratio <= 1 or (
            lo < 1 and 1 - abs(math.log(lo)) * 1.5 / math.log(self.growth_outer_ratio) < 0.1
        ):
            raise ValueError(
                f"growth {lo} folds space with growth_outer_ratio {self.growth_outer_ratio} "
                f"(slope {slope:.2f}); raise growth_outer_ratio or the smallest factor"
            )
        if not self.slice_thickness_mm_choices or min(self.slice_thickness_mm_choices) <= 0:
            raise ValueError("slice_thickness_mm_choices must be positive thicknesses")
        if self.nonrigid_rms_mm_range is not None and not 0 < self.nonrigid_rms_mm_range[0] <= self.nonrigid_rms_mm_range[1]:
            raise ValueError(f"nonrigid_rms_mm_range must be 0 < lo <= hi, got {self.nonrigid_rms_mm_range}")
        if any(self.contrast_change_hu_range):
            check_monotone(max(map(abs, self.contrast_change_hu_range)), self.contrast_spatial_variation,
                           self.contrast_window_hu)


# ---------------------------------------------------------------------------------------------- the pair
@dataclass(frozen=True, eq=False)
class SyntheticPair:
    """A baseline, its synthetic follow-up and the exact ground truth.

    Attributes:
        baseline: the input volume, values below -1024 HU raised to -1024.
        followup: int16 HU volume on its own grid.
        baseline_lesions / followup_lesions: same ids and order; follow-up centre = ``F(baseline centre)``.
        baseline_to_followup: exact ``F`` for any baseline LPS point (``CompositeTransform``: A, N, growths).
        info: seed and every sampled parameter (JSON-friendly), timings.
        followup_to_baseline: exact ``F⁻¹`` (:class:`SyntheticBackwardTransform`).
    """

    baseline: Volume
    followup: Volume
    baseline_lesions: list[Lesion]
    followup_lesions: list[Lesion]
    baseline_to_followup: PointTransform
    info: dict = field(default_factory=dict)
    followup_to_baseline: PointTransform | None = None

    def outside_followup_ids(self) -> list[str]:
        """Ids of the lesions whose exact follow-up centre lies outside the follow-up's coverage (voxel
        centres ± half a voxel, the tracker's ``outside_followup`` test)."""
        return [les.id for les in self.followup_lesions if not self.followup.contains_lps(les.center_lps_mm)]


def _affine(rng: np.random.Generator, cfg: PairConfig, center: np.ndarray) -> tuple[AffineTransform, dict]:
    angles = rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg, 3)
    scale = 1.0 + rng.uniform(-cfg.max_scale, cfg.max_scale, 3)
    shift = rng.uniform(-cfg.max_translation_mm, cfg.max_translation_mm, 3)
    matrix = Rotation.from_euler("xyz", angles, degrees=True).as_matrix() @ np.diag(scale)
    info = {"rotation_xyz_deg": angles.tolist(), "scale_xyz": scale.tolist()}
    info["translation_mm"] = shift.tolist()
    return AffineTransform.about_center(matrix, center, shift), info


def _local_volume_ratio(forward: PointTransform, center: np.ndarray, h: float = 1.0) -> float:
    """``|det J|`` of ``forward`` at ``center`` by central differences (step ``h`` mm)."""
    return abs(float(np.linalg.det(local_linear(forward, center, h))))


def _growths(
    centers: np.ndarray, radii: np.ndarray, rng: np.random.Generator, cfg: PairConfig
) -> tuple[list[RadialGrowthTransform], np.ndarray]:
    """One growth per lesion, accepted greedily from the largest lesion down: a growth zone may touch neither
    another accepted zone nor another lesion (centre + radius); refused lesions keep factor 1. So every growth
    keeps all lesion centres fixed and every radius is exactly ``factor · radius``."""
    factors = rng.uniform(*cfg.growth_factor_range, len(centers))

    def inner(n: int) -> float:
        return cfg.growth_inner_radii * factors[n] * radii[n]

    accepted = np.zeros(len(centers), bool)
    for n in np.argsort(-radii, kind="stable"):
        reach = [cfg.growth_outer_ratio * inner(m) if accepted[m] else radii[m] for m in range(len(centers))]
        clear = all(
            np.linalg.norm(centers[n] - centers[m]) >= cfg.growth_outer_ratio * inner(n) + reach[m]
            for m in range(len(centers))
            if m != n
        )
        accepted[n] = clear and factors[n] != 1.0
    factors[~accepted] = 1.0
    growths = [
        RadialGrowthTransform(centers[n], float(factors[n]), inner(n), cfg.growth_outer_ratio * inner(n))
        for n in range(len(centers))
        if factors[n] != 1.0
    ]
    return growths, factors


@dataclass(frozen=True, eq=False)
class PairPlan:
    """Everything of a synthetic pair except the follow-up's voxels (cheap: no image is warped).

    Attributes:
        baseline: the input volume, values below -1024 HU raised to -1024.
        grid: the follow-up grid (geometry only; its int8 array is a placeholder of the right shape).
        baseline_lesions / followup_lesions, forward (``F``), backward (``F⁻¹``): as in :class:`SyntheticPair`.
        slice_thickness_mm: box slice profile of the follow-up; gain, offset_hu, noise_hu: its intensities.
        info: every sampled parameter (JSON-friendly).

    :func:`render_followup` fills any sub-grid of ``grid`` (the whole grid for :func:`make_pair`, a box around
    one search crop for fast training data), so a crop of a rendered box equals the crop of the full follow-up
    up to the noise draw.
    """

    baseline: Volume
    grid: Volume
    baseline_lesions: list[Lesion]
    followup_lesions: list[Lesion]
    forward: PointTransform
    backward: SyntheticBackwardTransform
    slice_thickness_mm: float
    gain: float
    offset_hu: float
    noise_hu: float
    info: dict = field(default_factory=dict)
    contrast: dict | None = None  # soft-tissue enhancement change (TLTTrackerLib.contrast), None for none


def plan_pair(
    baseline: Volume,
    lesions: Sequence[Lesion],
    rng: np.random.Generator | int,
    config: PairConfig = PairConfig(),
) -> PairPlan:
    """Draw every random part of a synthetic pair (module doc) without warping the follow-up.

    Consumes ``rng`` exactly as :func:`make_pair` does before its noise draw."""
    t0 = time.perf_counter()
    seed = int(rng) if isinstance(rng, (int, np.integer)) else None
    rng = np.random.default_rng(rng)
    arr = np.asarray(baseline.array)
    unsigned = np.issubdtype(arr.dtype, np.unsignedinteger)
    clamped = arr if unsigned else np.maximum(arr, np.asarray(AIR_HU, arr.dtype))
    base = baseline.with_array(clamped)
    affine, info = _affine(rng, config, base.center_lps_mm())
    nodes, field_info = _random_field(base, affine, rng, config, clamped)
    info.update(field_info)
    n_forward = InverseOf(nodes)
    forward_na = CompositeTransform([affine, n_forward])
    b_centers = np.array([les.center_lps_mm for les in lesions], dtype=float).reshape(-1, 3)
    b_radii = np.array([les.radius_mm for les in lesions], dtype=float)
    centers = forward_na.apply(b_centers)
    scale_na = [_local_volume_ratio(forward_na, c) ** (1 / 3) for c in b_centers]  # local size change of N∘A
    radii_na = b_radii * np.array(scale_na)
    growths, factors = _growths(centers, radii_na, rng, config)
    forward = CompositeTransform([affine, n_forward, *growths])
    backward = SyntheticBackwardTransform(affine, nodes, tuple(growths))
    f_radii = radii_na * factors
    grid, grid_info = _followup_grid(base, forward_na, centers, f_radii, rng, config)
    info.update(grid_info)
    gain, offset = rng.uniform(*config.gain_range), rng.uniform(*config.offset_hu_range)
    noise_hu = rng.uniform(*config.noise_hu_range)
    contrast = None
    if any(config.contrast_change_hu_range):  # drawn only then: default pairs keep their random stream
        contrast = draw_contrast(rng, config.contrast_change_hu_range, config.contrast_spatial_variation,
                                 config.contrast_window_hu)
        info["contrast"] = contrast
    if "fov_edge" in info:
        info["fov_edge"]["lesion_id"] = lesions[info["fov_edge"]["lesion_index"]].id
    f_lesions = [Lesion(les.id, c, float(r)) for les, c, r in zip(lesions, forward.apply(b_centers), f_radii)]
    info.update(seed=seed, affine=affine.to_dict(), gain=gain, offset_hu=offset, noise_hu=noise_hu)
    info["growth_factors"] = {les.id: float(f) for les, f in zip(lesions, factors)}
    info["seconds"] = {"setup": time.perf_counter() - t0}
    return PairPlan(base, grid, list(lesions), f_lesions, forward, backward, grid_info["slice_thickness_mm"],
                    float(gain), float(offset), float(noise_hu), info, contrast)


def render_followup(
    plan: PairPlan, grid: Volume, rng: np.random.Generator, source: Volume | None = None
) -> Volume:
    """Follow-up voxels on ``grid`` (the plan's grid or a sub-grid of it, same direction and spacing): pull
    ``source`` (default: the plan's baseline; another scan in the same frame, e.g. another contrast phase,
    gives real contrast change) through ``F⁻¹`` with the slice profile, then the plan's synthetic contrast
    change if any (:mod:`TLTTrackerLib.contrast`), gain, offset and fresh noise from ``rng``. Returns int16 HU
    on ``grid``."""
    src, clamp = (plan.baseline, None) if source is None else (source, AIR_HU)  # the baseline is clamped already
    warped = warp_volume(src, grid, plan.backward, 1, AIR_HU, np.float32, slice_thickness_mm=plan.slice_thickness_mm,
                         clamp_min=clamp)
    values = warped.array
    if plan.contrast is not None:
        enhancement_change(values, grid, plan.contrast)
    values *= plan.gain
    values += plan.offset_hu
    values += rng.standard_normal(values.shape, dtype=np.float32) * np.float32(plan.noise_hu)
    return grid.with_array(np.clip(np.rint(values), AIR_HU, 3071).astype(np.int16))


def make_pair(
    baseline: Volume,
    lesions: Sequence[Lesion],
    rng: np.random.Generator | int,
    config: PairConfig = PairConfig(),
) -> SyntheticPair:
    """Make a synthetic follow-up of ``baseline`` with exact lesion correspondences (see the module doc).

    Args:
        baseline: CT volume (HU); values below -1024 are raised to -1024.
        lesions: lesions on the baseline (LPS mm centres, radii in mm).
        rng: a Generator (consumed) or an int seed.
        config: :class:`PairConfig`.

    Returns:
        a :class:`SyntheticPair`; ``followup`` is int16 HU.
    """
    t0 = time.perf_counter()
    seed = int(rng) if isinstance(rng, (int, np.integer)) else None
    rng = np.random.default_rng(rng)
    plan = plan_pair(baseline, lesions, rng, config)
    t1 = time.perf_counter()
    followup = render_followup(plan, plan.grid, rng)
    info = {**plan.info, "seed": seed}
    info["seconds"] = {"setup": t1 - t0, "warp": time.perf_counter() - t1, "total": time.perf_counter() - t0}
    logger.debug("make_pair: %r -> %r in %.2f s", baseline, followup, info["seconds"]["total"])
    return SyntheticPair(plan.baseline, followup, plan.baseline_lesions, plan.followup_lesions, plan.forward, info,
                         plan.backward)


def affine_residual_at_lesions(pair: SyntheticPair, n_points: int = 20000, rng: Any = 0) -> dict[str, float]:
    """Non-affine motion at each lesion: ``|F(c) − Â(c)|`` mm, ``Â`` the least-squares affine fit of ``F``
    over baseline body points that land inside the follow-up (what an ideal affine registration could do)."""
    from .sampling import body_mask

    gen = np.random.default_rng(rng)
    base = pair.baseline
    stride = np.maximum(1, np.rint(3.0 / base.spacing_mm[::-1])).astype(int)  # ~3 mm is enough for a mask
    idx = np.argwhere(body_mask(Volume(base.array[:: stride[0], :: stride[1], :: stride[2]]))) * stride
    idx = idx[gen.choice(len(idx), min(n_points, len(idx)), replace=False)].astype(float)
    pts = base.index_kji_to_lps(idx)
    mapped = pair.baseline_to_followup.apply(pts)
    keep = pair.followup.contains_lps(mapped)
    design = np.c_[pts[keep], np.ones(keep.sum())]
    coef, *_ = np.linalg.lstsq(design, mapped[keep], rcond=None)
    out = {}
    for b, f in zip(pair.baseline_lesions, pair.followup_lesions):
        out[b.id] = float(np.linalg.norm(np.append(b.center_lps_mm, 1.0) @ coef - f.center_lps_mm))
    return out

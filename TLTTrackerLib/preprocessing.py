"""Network inputs from a scan pair: crops sampled straight from the original volumes, HU window, priors.

Shared by training (``data/dataset.py``) and inference (``inference.py``) with the parameters of a
:class:`~TLTTrackerLib.config.PreprocessConfig`, so a checkpoint's inputs are always made the same way.

Crops: an LPS-axis-aligned grid of ``(D, H, W)`` points spaced ``spacing_mm`` apart, centred on an LPS point;
crop voxel ``(k, j, i)`` lies at

    point_lps_mm = center_lps_mm + spacing_mm × ((i, j, k) - ((W, H, D) - 1) / 2)

(x along i, y along j, z along k: arrays stay ``(z, y, x)``). Values are interpolated from the original
volume through its index transform (one ``scipy.ndimage.affine_transform`` per crop: no full-volume
resampling), ``pad_hu`` outside the scan, values below -1024 HU clamped to -1024.

The template crop is centred on the baseline lesion, the search crop on the registration-propagated point
(plus an optional offset: crop jitter in training). Both crops share one frame for the positional encoding:
the template centre is placed at the propagated point of the search crop (``template_origin``), as the
official code's common crop window does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from .config import PreprocessConfig
from .geometry import Volume
from .heatmap import gaussian_grid, index_to_normalized, sigma_mm, token_grid_shape

AIR_HU = -1024.0


def crop_corner_lps(
    center_lps_mm: np.ndarray, shape_kji: tuple[int, int, int], spacing_mm: float
) -> np.ndarray:
    """LPS mm ``(3,)`` of crop voxel ``(0, 0, 0)``."""
    n_xyz = np.asarray(shape_kji, dtype=float)[::-1]
    return np.asarray(center_lps_mm, dtype=float) - spacing_mm * (n_xyz - 1) / 2.0


def crop_index_to_lps(
    index_kji: np.ndarray, center_lps_mm: np.ndarray, shape_kji: tuple[int, int, int], spacing_mm: float
) -> np.ndarray:
    """Crop voxel indices ``(..., 3)`` (k, j, i) -> LPS mm ``(..., 3)``."""
    idx_xyz = np.asarray(index_kji, dtype=float)[..., ::-1]
    return crop_corner_lps(center_lps_mm, shape_kji, spacing_mm) + spacing_mm * idx_xyz


def lps_to_crop_index(
    points_lps_mm: np.ndarray, center_lps_mm: np.ndarray, shape_kji: tuple[int, int, int], spacing_mm: float
) -> np.ndarray:
    """LPS mm ``(..., 3)`` -> continuous crop voxel indices ``(..., 3)`` (k, j, i)."""
    corner = crop_corner_lps(center_lps_mm, shape_kji, spacing_mm)
    return ((np.asarray(points_lps_mm, dtype=float) - corner) / spacing_mm)[..., ::-1]


def sample_crop(
    volume: Volume,
    center_lps_mm: np.ndarray,
    size_mm_zyx: tuple[float, float, float],
    spacing_mm: float = 1.0,
    order: int = 1,
    pad_hu: float = AIR_HU,
    antialias: bool = False,
) -> np.ndarray:
    """Sample ``volume`` on an LPS-aligned crop grid around ``center_lps_mm``.

    Args:
        volume: CT in HU, any direction and spacing.
        center_lps_mm: ``(3,)`` crop centre, LPS mm.
        size_mm_zyx: crop extent (z, y, x) in mm; ``round(size / spacing)`` voxels per axis.
        spacing_mm: isotropic step of the crop grid.
        order: spline order (1 = trilinear; 3 prefilters the whole volume, slow).
        pad_hu: value outside the volume.
        antialias: smooth axes finer than ``spacing_mm`` first (:class:`PreprocessConfig` ``antialias``).

    Returns:
        float32 ``(D, H, W)`` (z, y, x) in HU, values below -1024 raised to -1024.
    """
    shape = tuple(int(round(s / spacing_mm)) for s in size_mm_zyx)
    corner = crop_corner_lps(center_lps_mm, shape, spacing_mm)  # type: ignore[arg-type]
    to_ijk = volume.direction.T / volume.spacing_mm[:, None]  # LPS offset -> volume index ijk
    matrix_ijk = to_ijk * spacing_mm  # crop (i, j, k) step -> volume ijk (columns x, y, z = crop i, j, k)
    offset_ijk = to_ijk @ (corner - volume.origin_lps_mm)
    source = volume.array
    if antialias:
        source, offset_ijk = _smoothed_region(volume, offset_ijk, matrix_ijk, shape, spacing_mm)
    out = ndimage.affine_transform(
        source,
        matrix_ijk[::-1, ::-1],  # crop kji -> volume kji
        offset=offset_ijk[::-1],
        output_shape=shape,
        output=np.float32,
        order=order,
        mode="constant",
        cval=float(pad_hu),
        prefilter=order > 1,
    )
    np.maximum(out, AIR_HU, out=out)
    return out


def _smoothed_region(
    volume: Volume, offset_ijk: np.ndarray, matrix_ijk: np.ndarray, shape: tuple, spacing_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """The region of ``volume`` a crop reads, Gaussian-smoothed along axes finer than ``spacing_mm``
    (σ = ½ √(f² − 1) voxels, f = spacing_mm / voxel size), and the crop's offset into it (index ijk)."""
    n_xyz = np.asarray(shape, dtype=float)[::-1] - 1
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=float) * n_xyz
    idx = corners @ matrix_ijk.T + offset_ijk  # volume ijk of the crop's corners
    factor = spacing_mm / volume.spacing_mm
    sigma_ijk = np.where(factor > 1.2, 0.5 * np.sqrt(np.maximum(factor**2 - 1.0, 0.0)), 0.0)
    pad = np.ceil(3 * sigma_ijk).astype(int) + 2
    size_ijk = np.asarray(volume.shape_kji)[::-1]
    lo = np.clip(np.floor(idx.min(axis=0)).astype(int) - pad, 0, size_ijk)
    hi = np.clip(np.ceil(idx.max(axis=0)).astype(int) + pad + 1, 0, size_ijk)
    if np.any(hi <= lo) or not np.any(sigma_ijk > 0):
        return volume.array, offset_ijk
    region = np.asarray(volume.array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]], dtype=np.float32)
    np.maximum(region, AIR_HU, out=region)
    region = ndimage.gaussian_filter(region, sigma_ijk[::-1], mode="nearest")
    return region, offset_ijk - lo


def window_hu(array_hu: np.ndarray, hu_window: tuple[float, float], clip: bool = False) -> np.ndarray:
    """HU -> ``(hu - lo) / (hi - lo)`` float32 (``[lo, hi]`` -> [0, 1]); clipped to [0, 1] with ``clip``."""
    lo, hi = float(hu_window[0]), float(hu_window[1])
    out = (np.asarray(array_hu, dtype=np.float32) - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out) if clip else out


def build_sample(
    baseline: Volume,
    followup: Volume,
    baseline_center_lps_mm: np.ndarray,
    radius_mm: float,
    start_lps_mm: np.ndarray,
    config: PreprocessConfig,
    target_center_lps_mm: np.ndarray | None = None,
    target_radius_mm: float | None = None,
    search_offset_mm: np.ndarray | None = None,
    prior_scale: float = 1.0,
    flip_axes: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Crops, priors and (optionally) targets for one lesion, as numpy arrays (model input layout).

    Args:
        baseline, followup: the two CT volumes (HU).
        baseline_center_lps_mm: ``(3,)`` lesion centre on the baseline; radius_mm: its radius.
        start_lps_mm: ``(3,)`` the lesion centre propagated into the follow-up by registration.
        config: crop sizes, spacing, HU window, prior width.
        target_center_lps_mm, target_radius_mm: ground truth on the follow-up (training/validation).
        search_offset_mm: ``(3,)`` LPS shift of the search crop centre away from the start (crop jitter).
        prior_scale: size change of the propagated prior (e.g. the registration's ``|det A|^(1/3)``).
        flip_axes: crop axes (0 = z, 1 = y, 2 = x) mirrored in both crops (augmentation); priors and targets
            follow, and :func:`normalized_to_lps` undoes it through ``meta["flip"]``.

    Returns:
        dict with (stride s = ``config.token_stride``; D, H, W crop voxels; d = D/s ...):

        - ``template_image`` ``(1, Dt, Ht, Wt)`` float32, windowed intensities;
        - ``search_image`` ``(1, Ds, Hs, Ws)`` float32;
        - ``template_prior`` ``(dt, ht, wt)`` float32, lesion Gaussian on the template token grid (peak 1);
        - ``search_prior`` ``(ds, hs, ws)`` float32, propagated Gaussian on the search token grid;
        - ``search_start`` ``(3,)`` float32, the start point in normalised search coordinates (z, y, x);
        - ``template_origin`` ``(3,)`` float32, search-crop voxel index (z, y, x) where template voxel
          ``(0, 0, 0)`` falls when the lesion centre is put on the start point (shared frame);
        - ``search_size_mm`` ``(3,)`` float32;
        - with a target: ``target_heatmap`` ``(ds, hs, ws)`` float32, ``target_center`` ``(3,)`` float32
          normalised (may leave [0, 1] when the truth is outside the window), ``target_inside`` float32 0/1;
        - ``meta``: plain values to map predictions back to LPS (``search_center_lps_mm``, ``search_shape``,
          ``spacing_mm``, ``start_lps_mm``, ``flip`` axes, and target fields).
    """
    s = config.spacing_mm
    t_shape, s_shape = config.template_shape, config.search_shape
    stride = config.token_stride
    start = np.asarray(start_lps_mm, dtype=float).reshape(3)
    offset = np.zeros(3) if search_offset_mm is None else np.asarray(search_offset_mm, dtype=float).reshape(3)
    search_center = start + offset
    order = config.interpolation_order
    flips = tuple(sorted({int(a) for a in flip_axes}))
    aa = config.antialias
    t_img = sample_crop(baseline, baseline_center_lps_mm, config.template_size_mm, s, order, config.pad_hu, aa)
    s_img = sample_crop(followup, search_center, config.search_size_mm, s, order, config.pad_hu, aa)
    if flips:
        t_img, s_img = (
            np.ascontiguousarray(np.flip(t_img, flips)),
            np.ascontiguousarray(np.flip(s_img, flips)),
        )

    def mirrored(index_kji: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        out = np.array(index_kji, dtype=float)
        for a in flips:
            out[a] = shape[a] - 1 - out[a]
        return out

    sigma_vox = sigma_mm(radius_mm, config.sigma_min_mm, config.sigma_radius_scale) / s
    t_center_idx = (np.asarray(t_shape, dtype=float) - 1) / 2.0  # symmetric: unchanged by flips
    start_idx = mirrored(lps_to_crop_index(start, search_center, s_shape, s), s_shape)
    sample: dict[str, Any] = {
        "template_image": window_hu(t_img, config.hu_window, config.hu_clip)[None],
        "search_image": window_hu(s_img, config.hu_window, config.hu_clip)[None],
        "template_prior": gaussian_grid(t_center_idx, sigma_vox, token_grid_shape(t_shape, stride), stride),
        "search_prior": gaussian_grid(
            start_idx, sigma_vox * prior_scale, token_grid_shape(s_shape, stride), stride
        ),
        "search_start": index_to_normalized(start_idx, s_shape).astype(np.float32),
        "template_origin": (start_idx - t_center_idx).astype(np.float32),
        "search_size_mm": np.asarray(config.search_size_mm, dtype=np.float32),
    }
    meta: dict[str, Any] = {
        "search_center_lps_mm": search_center.tolist(),
        "search_shape": list(s_shape),
        "spacing_mm": float(s),
        "start_lps_mm": start.tolist(),
        "flip": list(flips),
    }
    if target_center_lps_mm is not None:
        target = np.asarray(target_center_lps_mm, dtype=float).reshape(3)
        t_radius = radius_mm if target_radius_mm is None else target_radius_mm
        target_idx = mirrored(lps_to_crop_index(target, search_center, s_shape, s), s_shape)
        t_sigma = sigma_mm(t_radius, config.sigma_min_mm, config.sigma_radius_scale) / s
        inside = bool(np.all((target_idx >= -0.5) & (target_idx <= np.asarray(s_shape) - 0.5)))
        sample["target_heatmap"] = gaussian_grid(
            target_idx, t_sigma, token_grid_shape(s_shape, stride), stride
        )
        sample["target_center"] = index_to_normalized(target_idx, s_shape).astype(np.float32)
        sample["target_inside"] = np.float32(inside)
        meta.update(target_lps_mm=target.tolist(), target_radius_mm=float(t_radius))
    sample["meta"] = meta
    return sample


def normalized_to_lps(u: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """A model's normalised search-crop centre ``(3,)`` (z, y, x) -> LPS mm, undoing flips in ``meta``."""
    u = np.asarray(u, dtype=float).reshape(3).copy()
    for axis in meta.get("flip", []):
        u[axis] = 1.0 - u[axis]
    shape = tuple(meta["search_shape"])
    index = u * np.asarray(shape, dtype=float) - 0.5
    return crop_index_to_lps(index, np.asarray(meta["search_center_lps_mm"]), shape, meta["spacing_mm"])

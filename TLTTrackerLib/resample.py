"""Resample a volume onto another grid through a point transform, optionally with a slice profile.

``warp_volume(source, reference, target_to_source)`` fills every voxel of ``reference``'s grid with the value
of ``source`` at ``target_to_source(voxel LPS point)``: the pull (backward) resampling that ITK's
``ResampleImageFilter`` does, with the transform given in this library's point convention (it maps *output*
points to *input* points, so pass the inverse of a baseline->follow-up map to make a follow-up image).

Grids: a reference voxel ``(k, j, i)`` sits at ``origin + direction @ (spacing * (i, j, k))`` (LPS mm, see
:mod:`TLTTrackerLib.geometry`). The work is done in slabs of reference slices so that memory stays bounded.

Speed paths:

- an :class:`~.transforms.AffineTransform` (or ``None`` = identity) is folded into one index->index
  affine and handed to ``scipy.ndimage``;
- any transform may offer ``map_grid(index_to_lps, k_values, n_j, n_i, post_matrix, post_offset)`` returning
  ``post_matrix @ T(y) + post_offset`` as ``(3, len(k_values), n_j, n_i)`` for the slab of grid points
  ``y = index_to_lps @ (i, j, k, 1)`` (``k`` in ``k_values``, possibly fractional); warp_volume passes the
  LPS -> source ``index_kji`` affine as ``post``. The synthetic follow-up map does (see
  :mod:`TLTTrackerLib.synthetic`); otherwise ``apply`` is called on every point.

Outside the source: ``default_value``, blended linearly over the one voxel beyond the border voxel centres
(scipy's ``grid-constant`` mode), so points exactly on the border keep their value despite rounding.

Slice profile: with ``slice_thickness_mm`` each output voxel is the mean of ``n`` samples spread evenly over a
box of that width along the reference k axis (a CT slice integrates over its thickness; point sampling would
keep detail a thick slice cannot show).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from scipy import ndimage

from .geometry import Volume
from .transforms import AffineTransform

logger = logging.getLogger(__name__)

AIR_HU = -1024.0


def kji_to_lps_affine(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """``(matrix (3, 3), offset (3,))`` with ``lps = matrix @ index_kji + offset``."""
    m = volume.index_to_lps_matrix()
    return m[:3, :3][:, ::-1].copy(), m[:3, 3].copy()


def _slab_source_index(
    reference: Volume, transform: Any, k_values: np.ndarray, post_m: np.ndarray, post_o: np.ndarray
) -> np.ndarray:
    """Source ``index_kji`` ``(3, len(k), J, I)`` of reference slab points at k = ``k_values`` (may be
    fractional)."""
    _, n_j, n_i = reference.shape_kji
    index_to_lps = reference.index_to_lps_matrix()
    if hasattr(transform, "map_grid"):
        return transform.map_grid(index_to_lps, k_values, n_j, n_i, post_m, post_o)
    a, o = index_to_lps[:3, :3], index_to_lps[:3, 3]
    pts = (
        o
        + np.asarray(k_values, float)[:, None, None, None] * a[:, 2]
        + np.arange(n_j, dtype=float)[None, :, None, None] * a[:, 1]
        + np.arange(n_i, dtype=float)[None, None, :, None] * a[:, 0]
    ).reshape(-1, 3)
    if transform is not None:
        pts = np.asarray(transform.apply(pts))
    return (pts @ post_m.T + post_o).T.reshape(3, len(k_values), n_j, n_i)


def _profile_samples(
    source: Volume, reference: Volume, slice_thickness_mm: float | None, n: int | None
) -> np.ndarray:
    """Offsets, in reference k-index units, of the samples averaged into one output slice."""
    if not slice_thickness_mm or slice_thickness_mm <= 0:
        return np.zeros(1)
    if n is None:
        k_dir = reference.direction[:, 2]
        along = np.abs(source.direction.T @ k_dir)  # how much each source axis lies along reference k
        step = max(0.5, float(source.spacing_mm[int(np.argmax(along))]))
        n = max(1, math.ceil(slice_thickness_mm / step - 1e-6))
    width_vox = slice_thickness_mm / reference.spacing_mm[2]
    return ((np.arange(n) + 0.5) / n - 0.5) * width_vox


def warp_volume(
    source: Volume,
    reference: Volume,
    target_to_source: Any = None,
    order: int = 1,
    default_value: float = AIR_HU,
    dtype: Any = np.float32,
    *,
    slice_thickness_mm: float | None = None,
    slice_samples: int | None = None,
    clamp_min: float | None = None,
    chunk_voxels: int = 2_000_000,
) -> Volume:
    """Resample ``source`` onto ``reference``'s grid (pull resampling).

    Args:
        source: image to read from (any numeric dtype).
        reference: gives the output grid (shape, origin, spacing, direction); its array is not read.
        target_to_source: maps reference LPS points ``(N, 3)`` to source LPS points; ``None`` = identity.
        order: interpolation order (0 nearest, 1 linear, 3 cubic).
        default_value: value for points that fall outside ``source``.
        dtype: output dtype; integer dtypes are rounded and clipped to their range.
        slice_thickness_mm: if set, average ``slice_samples`` samples over this width along reference k.
        slice_samples: samples per slice profile; default: one per source spacing along k (≥ 0.5 mm).
        clamp_min: if set, source values below it are raised to it first (e.g. -1024 for CT padding values).
        chunk_voxels: approximate number of samples interpolated at a time (memory bound).

    Returns:
        a :class:`Volume` with ``reference``'s geometry, ``(K, J, I)`` array of ``dtype``.
    """
    src = source.array
    if clamp_min is not None and src.min() < clamp_min:
        src = np.maximum(src, np.asarray(clamp_min).astype(src.dtype))
    if order > 1:  # prefilter once, not per slab
        src = ndimage.spline_filter(src.astype(np.float64), order=order, mode="nearest")
        prefilter = False
    else:
        prefilter = True
    offsets = _profile_samples(source, reference, slice_thickness_mm, slice_samples)
    n_k, n_j, n_i = reference.shape_kji
    out = np.empty((n_k, n_j, n_i), dtype=np.float32)
    src_m, src_o = kji_to_lps_affine(source)
    src_inv = np.linalg.inv(src_m)

    affine = target_to_source is None or isinstance(target_to_source, AffineTransform)
    if affine and len(offsets) == 1:
        t = AffineTransform.identity() if target_to_source is None else target_to_source
        ref_m, ref_o = kji_to_lps_affine(reference)
        m = src_inv @ t.matrix @ ref_m  # reference index_kji -> source index_kji
        off = src_inv @ (t.matrix @ ref_o + t.translation_mm - src_o)
        ndimage.affine_transform(
            src,
            m,
            off,
            output_shape=out.shape,
            output=out,
            order=order,
            mode="grid-constant",
            cval=default_value,
            prefilter=prefilter,
        )
    else:
        per_slice = n_j * n_i * len(offsets)
        step = max(1, int(chunk_voxels // max(per_slice, 1)))
        for k0 in range(0, n_k, step):
            ks = np.arange(k0, min(n_k, k0 + step), dtype=float)
            k_values = (ks[:, None] + offsets[None, :]).reshape(-1)
            idx = _slab_source_index(reference, target_to_source, k_values, src_inv, -src_inv @ src_o)
            vals = ndimage.map_coordinates(
                src,
                idx.reshape(3, -1),
                order=order,
                mode="grid-constant",
                cval=default_value,
                output=np.float32,
                prefilter=prefilter,
            )
            out[k0 : k0 + len(ks)] = vals.reshape(len(ks), len(offsets), n_j, n_i).mean(axis=1)
    return reference.with_array(_cast(out, dtype))


def _cast(values: np.ndarray, dtype: Any) -> np.ndarray:
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        return np.clip(np.rint(values), info.min, info.max).astype(dt)
    return values.astype(dt, copy=False)


def grid_with_spacing(volume: Volume, spacing_mm: Any) -> Volume:
    """An empty grid (zeros int8 array) covering the same physical box as ``volume`` at ``spacing_mm``.

    The new size along each axis is ``max(1, round(size * old_spacing / new_spacing))``; the grid is centred

    the old grid's centre with the same direction.
    """
    new = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,)).copy()
    size_ijk = np.maximum(1, np.rint(np.asarray(volume.size_ijk) * volume.spacing_mm / new)).astype(int)
    centre = volume.center_lps_mm()
    origin = centre - volume.direction @ (new * (size_ijk - 1) / 2.0)
    return Volume(np.zeros(size_ijk[::-1], np.int8), origin, new, volume.direction)


def resample_to_spacing(
    volume: Volume,
    spacing_mm: Any,
    order: int = 1,
    antialias: bool = True,
    default_value: float = AIR_HU,
    dtype: Any = None,
) -> Volume:
    """The same physical extent at another voxel spacing (see :func:`grid_with_spacing` for the grid).

    Args:
        volume: input volume.
        spacing_mm: new spacing, a number or ``(3,)`` along i, j, k (x, y, z), mm.
        order: interpolation order.
        antialias: when an axis gets coarser by a factor ``f``, blur it first with a Gaussian of
            ``sigma = sqrt((f^2 - 1) / 12)`` input voxels (the variance a box average over a new voxel adds).
        default_value: value outside the input (only reached at the rim).
        dtype: output dtype; default: the input's.

    Returns:
        the resampled :class:`Volume`.
    """
    grid = grid_with_spacing(volume, spacing_mm)
    source = volume
    if antialias:
        factor = grid.spacing_mm / volume.spacing_mm
        sigma_ijk = np.sqrt(np.maximum(factor**2 - 1.0, 0.0) / 12.0)
        if np.any(sigma_ijk > 0.05):
            blurred = ndimage.gaussian_filter(
                volume.array.astype(np.float32), sigma_ijk[::-1], mode="nearest"
            )
            source = volume.with_array(blurred)
    out = warp_volume(
        source,
        grid,
        None,
        order=order,
        default_value=default_value,
        dtype=volume.array.dtype if dtype is None else dtype,
    )
    logger.debug("resampled %r -> %r", volume, out)
    return out

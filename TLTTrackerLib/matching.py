"""Template matching primitives: patch sampling on oriented grids, FFT normalised cross-correlation, peaks.

All grids here are cubic-lattice patches in a *local* frame: node (a, b, c) of a patch with ``spacing_mm`` s and
half-size ``h`` voxels sits at ``center + linear @ (s * ([c, b, a] - h))`` (local offsets in x, y, z order, arrays in
z, y, x order). With ``linear`` = identity the patch axes are the LPS axes.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from .geometry import Volume

AIR_HU = -1024.0


def patch_offsets_mm(half_size: tuple[int, int, int], spacing_mm: float) -> np.ndarray:
    """Local offsets of a patch's nodes, ``(2hz+1, 2hy+1, 2hx+1, 3)`` in mm, last axis x, y, z.

    ``half_size`` is in voxels, order (z, y, x).
    """
    hz, hy, hx = half_size
    z, y, x = np.meshgrid(
        np.arange(-hz, hz + 1), np.arange(-hy, hy + 1), np.arange(-hx, hx + 1), indexing="ij"
    )
    return np.stack([x, y, z], axis=-1).astype(np.float64) * spacing_mm


def sample_patch(
    volume: Volume,
    center_lps_mm: np.ndarray,
    half_size: tuple[int, int, int],
    spacing_mm: float,
    linear: np.ndarray | None = None,
    order: int = 1,
    return_mask: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Sample ``volume`` on a patch grid around ``center_lps_mm``; returns float32 ``(2hz+1, 2hy+1, 2hx+1)``.

    Points outside the volume read as air (-1024 HU); input values below -1024 are clamped. With
    ``return_mask`` also returns a bool array of the same shape: True where the point lies inside the volume.
    """
    # index_kji of node (a, b, c) = centre index + R @ (c, b, a) * spacing, built by broadcasting (no (N, 3) matmul)
    lin = np.eye(3) if linear is None else np.asarray(linear, dtype=float)
    to_ijk = (volume.direction.T @ lin) / volume.spacing_mm[:, None] * spacing_mm  # local xyz step -> ijk
    centre_ijk = volume.lps_to_index_ijk(np.asarray(center_lps_mm, dtype=float))
    hz, hy, hx = half_size
    z = np.arange(-hz, hz + 1, dtype=float)[:, None, None]
    y = np.arange(-hy, hy + 1, dtype=float)[None, :, None]
    x = np.arange(-hx, hx + 1, dtype=float)[None, None, :]
    idx_kji = np.stack(
        [(centre_ijk[a] + to_ijk[a, 0] * x + to_ijk[a, 1] * y + to_ijk[a, 2] * z).reshape(-1) for a in (2, 1, 0)]
    )
    values = map_coordinates(volume.array, idx_kji, order=order, mode="constant", cval=AIR_HU, output=np.float32)
    np.maximum(values, AIR_HU, out=values)
    shape = tuple(2 * h + 1 for h in half_size)
    if not return_mask:
        return values.reshape(shape)
    upper = np.asarray(volume.shape_kji, dtype=float)[:, None] - 0.5
    inside = np.all((idx_kji >= -0.5) & (idx_kji <= upper), axis=0)
    return values.reshape(shape), inside.reshape(shape)


def sample_patch_smooth(
    volume: Volume, center: np.ndarray, h: int, spacing: float, linear: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Cubic patch ``(2h+1,)*3`` (z y x, as :func:`sample_patch`) and its inside mask, box-filtered to ``spacing``
    when the volume is finer: the mean of 8 sub-grids shifted by ±spacing/4 (anti-aliasing before decimation)."""
    fine = float(np.min(volume.spacing_mm)) <= 0.6 * spacing
    shifts = [np.zeros(3)] if not fine else [np.array([x, y, z]) for x in (-0.25, 0.25) for y in (-0.25, 0.25)
                                              for z in (-0.25, 0.25)]
    lin = np.eye(3) if linear is None else np.asarray(linear)
    acc, mask = None, None
    for sh in shifts:
        p, m = sample_patch(volume, center + lin @ (sh * spacing), (h, h, h), spacing, linear, return_mask=True)
        acc, mask = (p, m) if acc is None else (acc + p, mask & m)
    return acc / len(shifts), mask


def axis_resolution_mm(volume: Volume) -> np.ndarray:
    """Approximate resolution of ``volume`` along the LPS x, y, z axes, ``(3,)`` mm."""
    return np.abs(volume.direction) @ volume.spacing_mm


def match_resolution(patch: np.ndarray, own_mm: np.ndarray, target_mm: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Blur ``patch`` (z, y, x) so its resolution per axis goes from ``own_mm`` to ``target_mm`` (x, y, z order).

    Gaussian slice profile: sigma = sqrt(target² - own²) / 2.355 (FWHM to sigma), in patch voxels.
    """
    extra = np.sqrt(np.maximum(np.asarray(target_mm) ** 2 - np.asarray(own_mm) ** 2, 0.0)) / 2.355 / spacing_mm
    sigma_zyx = extra[::-1]
    if np.all(sigma_zyx < 0.2):
        return patch
    return gaussian_filter(patch, sigma=sigma_zyx, mode="nearest")


def _box_sum(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum of ``image`` over every window of ``shape`` ('valid' positions), via cumulative sums."""
    c = image.astype(np.float64)
    for axis, w in enumerate(shape):
        c = np.cumsum(c, axis=axis)
        pad = [(0, 0)] * c.ndim
        pad[axis] = (1, 0)
        c = np.pad(c, pad)
        hi = [slice(None)] * c.ndim
        lo = [slice(None)] * c.ndim
        hi[axis] = slice(w, None)
        lo[axis] = slice(None, -w)
        c = c[tuple(hi)] - c[tuple(lo)]
    return c


def _valid_correlation(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """``sum_t image[p + t] * template[t]`` at every 'valid' position ``p`` (``(I - T + 1)`` per axis): a convolution
    with the flipped template by real FFTs of a fast common size (scipy.fft: no scipy.signal import, ~1 s)."""
    from scipy import fft

    shape = [fft.next_fast_len(a + b - 1, real=True) for a, b in zip(image.shape, template.shape)]
    spec = fft.rfftn(image, shape, workers=-1) * fft.rfftn(template[::-1, ::-1, ::-1], shape, workers=-1)
    return fft.irfftn(spec, shape, workers=-1)[tuple(slice(b - 1, a) for a, b in zip(image.shape, template.shape))]


def ncc_map(template: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of ``template`` at every 'valid' position of ``image`` (both 3D).

    Returns ``(I - T + 1)`` per axis, values in [-1, 1]; entry (0, 0, 0) aligns the template's first voxel with
    the image's first voxel. Flat windows (no variance) score 0.
    """
    t = template.astype(np.float64)
    t = t - t.mean()
    t_norm = np.sqrt(np.sum(t * t))
    n = t.size
    numerator = _valid_correlation(image.astype(np.float64), t)
    s1 = _box_sum(image, t.shape)
    s2 = _box_sum(image.astype(np.float64) ** 2, t.shape)
    var = np.maximum(s2 - s1 * s1 / n, 0.0)
    denom = t_norm * np.sqrt(var)
    out = np.zeros_like(numerator)
    ok = denom > 1e-6 * max(t_norm, 1e-12) * np.sqrt(n)
    out[ok] = numerator[ok] / denom[ok]
    return np.clip(out, -1.0, 1.0)


def masked_ncc_map(
    template: np.ndarray,
    image: np.ndarray,
    template_weight: np.ndarray,
    image_mask: np.ndarray,
    min_overlap: float = 0.5,
) -> np.ndarray:
    """Weighted, masked NCC: like :func:`ncc_map`, but each template voxel counts with ``template_weight`` (≥ 0;
    a bool mask or soft weights, e.g. a Gaussian that favours the lesion over its surroundings) and only image
    voxels where ``image_mask`` is True count.

    Masked normalised cross-correlation in the Fourier domain (D. Padfield, IEEE TIP 2012), here with real
    template weights: every weighted sum over the overlap is a correlation. Positions whose overlapping weight is
    below ``min_overlap`` of the template's total weight score 0. Returns the 'valid' map, ``(I - T + 1)`` per axis.
    """
    from scipy import fft

    w = template_weight.astype(np.float64)
    t = template.astype(np.float64)
    full_image = bool(np.all(image_mask))
    mi = image_mask.astype(np.float64)
    im = image.astype(np.float64) * mi
    tw = t * w
    # Correlation = convolution with the flipped template, via real FFTs of one common (fast) size; each
    # spectrum is computed once and reused ('valid' part = the slice below).
    shape = [fft.next_fast_len(a + b - 1, real=True) for a, b in zip(image.shape, template.shape)]
    valid = tuple(slice(b - 1, a) for a, b in zip(image.shape, template.shape))

    def spectrum(a: np.ndarray) -> np.ndarray:
        return fft.rfftn(a, shape, workers=-1)

    def corr(image_spec: np.ndarray, template_spec: np.ndarray) -> np.ndarray:
        return fft.irfftn(image_spec * template_spec, shape, workers=-1)[valid]

    f_w = spectrum(w[::-1, ::-1, ::-1])
    f_tw = spectrum(tw[::-1, ::-1, ::-1])
    f_im = spectrum(im)
    s_i = corr(f_im, f_w)
    s_ii = corr(spectrum(im * im), f_w)
    s_ti = corr(f_im, f_tw)
    if full_image:  # overlap sums of the template alone are constants
        n = np.full_like(s_i, w.sum())
        s_t = np.full_like(s_i, tw.sum())
        s_tt = np.full_like(s_i, (tw * t).sum())
    else:
        f_mi = spectrum(mi)
        n = corr(f_mi, f_w)
        s_t = corr(f_mi, f_tw)
        s_tt = corr(f_mi, spectrum((tw * t)[::-1, ::-1, ::-1]))
    safe_n = np.maximum(n, 1e-12)
    num = s_ti - s_t * s_i / safe_n
    var_t = np.maximum(s_tt - s_t * s_t / safe_n, 0.0)
    var_i = np.maximum(s_ii - s_i * s_i / safe_n, 0.0)
    denom = np.sqrt(var_t * var_i)
    ok = (n >= min_overlap * max(w.sum(), 1e-12)) & (denom > 1e-9 * max(float(n.max()), 1.0))
    out = np.zeros_like(num)
    out[ok] = num[ok] / denom[ok]
    return np.clip(out, -1.0, 1.0)


def subvoxel_peak(score: np.ndarray) -> tuple[np.ndarray, float]:
    """Argmax of a 3D score with a per-axis parabolic refinement. Returns (index (z, y, x) float, peak value)."""
    idx = np.array(np.unravel_index(int(np.argmax(score)), score.shape))
    return subvoxel_at(score, idx), float(score[tuple(idx)])


def subvoxel_at(score: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Parabolic sub-voxel refinement (per axis, within ±0.5) of an integer peak ``index`` (z, y, x)."""
    idx = np.asarray(index, dtype=int)
    peak = float(score[tuple(idx)])
    refined = idx.astype(float)
    for axis in range(3):
        if 0 < idx[axis] < score.shape[axis] - 1:
            lo, hi = idx.copy(), idx.copy()
            lo[axis] -= 1
            hi[axis] += 1
            a, c = float(score[tuple(lo)]), float(score[tuple(hi)])
            denom = a - 2 * peak + c
            if denom < 0:
                refined[axis] += float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))
    return refined


def weighted_ncc(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> float:
    """NCC of two arrays of one shape at one position, each voxel counting with ``weight`` (≥ 0; normalised
    here). 0 when the weights sum to 0 or either array is flat under them."""
    total = float(weight.sum())
    if total <= 0:
        return 0.0
    w = weight / total
    a, b = a - (w * a).sum(), b - (w * b).sum()
    var = (w * a * a).sum() * (w * b * b).sum()
    return float((w * a * b).sum() / np.sqrt(var)) if var > 1e-12 else 0.0

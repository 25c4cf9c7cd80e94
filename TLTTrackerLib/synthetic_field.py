"""The smooth random non-rigid field ``u`` of the synthetic pair generator (:mod:`TLTTrackerLib.synthetic`):
filtered white noise on a node grid, damped in bone, with a cap on its gradient so ``N⁻¹ = I + u`` stays
invertible. LPS mm throughout; node arrays ``(K, J, I, 3)``."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from scipy import ndimage

from .geometry import Volume
from .resample import AIR_HU
from .synthetic_grid import _box_in_frame
from .transforms import AffineTransform
from .warps import GridDisplacementTransform

logger = logging.getLogger("TLTTrackerLib.synthetic")


def _gradient_norm(u: np.ndarray, spacing: float) -> np.ndarray:
    """Spectral norm of the Jacobian of ``u`` ``(K, J, I, 3)`` at every node, ``(K, J, I)``."""
    g = np.stack([np.stack(np.gradient(u[..., c], spacing), -1) for c in range(3)], -2)
    gtg = np.empty_like(g)  # Jᵀ J, symmetric: six products instead of a general einsum
    for r in range(3):
        for c in range(r, 3):
            gtg[..., r, c] = gtg[..., c, r] = (g[..., :, r] * g[..., :, c]).sum(axis=-1)
    return np.sqrt(_largest_eigenvalue_sym3(gtg))


def _largest_eigenvalue_sym3(m: np.ndarray) -> np.ndarray:
    """Largest eigenvalue of symmetric positive semi-definite 3×3 matrices ``(..., 3, 3)``, closed form
    (trigonometric solution of the characteristic cubic; ~10× faster than ``eigvalsh`` on many small
    matrices)."""
    a, b, c = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    d, e, f = m[..., 0, 1], m[..., 1, 2], m[..., 0, 2]
    q = (a + b + c) / 3.0
    p1 = d * d + e * e + f * f
    p2 = (a - q) ** 2 + (b - q) ** 2 + (c - q) ** 2 + 2.0 * p1
    p = np.sqrt(np.maximum(p2, 0.0) / 6.0)
    safe = np.where(p > 1e-300, p, 1.0)
    b00, b11, b22 = (a - q) / safe, (b - q) / safe, (c - q) / safe
    b01, b12, b02 = d / safe, e / safe, f / safe
    det = b00 * (b11 * b22 - b12 * b12) - b01 * (b01 * b22 - b12 * b02) + b02 * (b01 * b12 - b11 * b02)
    phi = np.arccos(np.clip(det / 2.0, -1.0, 1.0)) / 3.0
    return np.where(p > 1e-300, q + 2.0 * p * np.cos(phi), q)


def _random_field(
    baseline: Volume, affine: AffineTransform, rng: np.random.Generator, cfg: Any, clamped: np.ndarray
) -> tuple[GridDisplacementTransform, dict]:
    """Smooth random ``u`` on nodes covering ``A(baseline box)`` + margin, along the baseline's axes."""
    direction = baseline.direction
    lo, hi = _box_in_frame(baseline, affine, direction)
    spacing = cfg.nonrigid_node_spacing_mm
    corr = rng.uniform(*cfg.nonrigid_correlation_mm)
    ref_rms = cfg.nonrigid_rms_mm
    if cfg.nonrigid_rms_mm_range is not None:  # drawn only then: default pairs keep their random stream
        ref_rms = math.exp(rng.uniform(*np.log(cfg.nonrigid_rms_mm_range)))
    margin = max(corr, 30.0)
    lo, hi = lo - margin, hi + margin
    n_ijk = np.maximum(2, np.ceil((hi - lo) / spacing).astype(int) + 1)
    origin = direction @ lo
    noise = rng.standard_normal((3, *n_ijk[::-1]))
    sigma = corr / 2.0 / spacing  # filtered white noise: autocorrelation exp(-r²/(4σ²)), 1/e at r = 2σ
    u = np.stack([ndimage.gaussian_filter(noise[c], sigma, mode="reflect") for c in range(3)], axis=-1)
    rms = ref_rms * corr / cfg.nonrigid_reference_correlation_mm
    u *= rms / np.sqrt(np.mean(np.sum(u**2, axis=-1)))
    nodes = Volume(np.zeros(n_ijk[::-1], np.int8), origin, np.full(3, spacing), direction)
    if cfg.nonrigid_bone_damping > 0:  # less motion in bone: sample the baseline at A⁻¹(node)
        kk, jj, ii = np.meshgrid(*(np.arange(n) for n in n_ijk[::-1]), indexing="ij")
        pts = affine.inverse().apply(nodes.index_kji_to_lps(np.stack([kk, jj, ii], -1).reshape(-1, 3)))
        hu = ndimage.map_coordinates(
            clamped, baseline.lps_to_index_kji(pts).T, order=1, cval=AIR_HU, output=np.float32
        )
        bone = ndimage.gaussian_filter((hu > 200).astype(float).reshape(kk.shape), 10.0 / spacing)
        u *= (1.0 - cfg.nonrigid_bone_damping * np.clip(3.0 * bone, 0.0, 1.0))[..., None]
    cap = cfg.nonrigid_max_gradient
    for _ in range(8):  # damp the rare steep spots locally (smooth factor), so the map stays invertible
        steep = _gradient_norm(u, spacing)
        if steep.max() <= cap:
            break
        factor = ndimage.minimum_filter(np.minimum(1.0, 0.85 * cap / np.maximum(steep, 1e-9)), size=3)
        u *= ndimage.gaussian_filter(factor, 1.0)[..., None]
    max_grad = float(_gradient_norm(u, spacing).max())
    if max_grad > cap:
        logger.debug("non-rigid field too steep (|∇u| %.2f); scaled to %.2f", max_grad, cap)
        u *= cap / max_grad
    info = {
        "nonrigid_correlation_mm": corr,
        "nonrigid_max_gradient": min(max_grad, cap),
        "nonrigid_rms_mm": rms,
        "nonrigid_rms_at_nodes_mm": float(np.sqrt(np.mean(np.sum(u**2, axis=-1)))),
        "nonrigid_node_shape_kji": [int(v) for v in n_ijk[::-1]],
    }
    return GridDisplacementTransform(u, origin, np.full(3, spacing), direction, cfg.fixed_point_tol_mm), info

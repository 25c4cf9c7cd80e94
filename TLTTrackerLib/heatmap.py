"""Gaussian lesion heatmaps on crop and token grids, and their decoding (numpy only).

A lesion of radius ``r`` becomes an isotropic Gaussian of peak 1 at its (sub-voxel) centre,

    G(p) = exp(-|p - c|² / (2 σ²)),   σ = max(sigma_radius_scale × r, sigma_min_mm)

Our choice (the official code does not publish its Gaussians, method-notes §2.3): σ follows the radius, as the
paper's Eq. 1 ties the map to the lesion radius, with an 8 mm floor so that the Sparse Selection Strategy at
threshold 0.7 nearly always finds a token on the stride-8 grid (the worst lattice offset, √48 ≈ 6.9 voxels,
would need σ ≥ 8.2 voxels to make an empty selection impossible; the minimum-token fallback of the model
covers the rest).

Token grids: the feature map of a crop of ``(D, H, W)`` voxels at stride ``s`` has ``(D/s, H/s, W/s)`` tokens
and token ``(a, b, c)`` sits at crop voxel ``(s·a, s·b, s·c)`` (stride-2 convolutions with kernel 3 and
padding 1 map output ``i`` to input ``2i``). Priors are evaluated there analytically (no resizing of a voxel
map). All indices are ``(z, y, x)`` = ``(k, j, i)``.
"""

from __future__ import annotations

import numpy as np


def sigma_mm(radius_mm: float, sigma_min_mm: float = 8.0, sigma_radius_scale: float = 1.0) -> float:
    """Width of a lesion's Gaussian prior in mm: ``max(sigma_radius_scale × radius_mm, sigma_min_mm)``."""
    return float(max(sigma_radius_scale * float(radius_mm), sigma_min_mm))


def token_grid_shape(crop_shape: tuple[int, int, int], stride: int) -> tuple[int, int, int]:
    """Feature-grid shape of a crop (each crop size must be a multiple of ``stride``)."""
    if any(int(s) % stride for s in crop_shape):
        raise ValueError(f"crop shape {tuple(crop_shape)} is not a multiple of the stride {stride}")
    return tuple(int(s) // stride for s in crop_shape)  # type: ignore[return-value]


def gaussian_grid(
    center_index_kji: np.ndarray, sigma_voxels: float, grid_shape: tuple[int, int, int], stride: int = 1
) -> np.ndarray:
    """Gaussian ``exp(-d² / 2σ²)`` evaluated at grid points ``stride × (a, b, c)`` of a crop.

    Args:
        center_index_kji: ``(3,)`` centre in crop voxel indices (z, y, x), may be fractional or outside.
        sigma_voxels: σ in crop voxels.
        grid_shape: ``(d, h, w)`` points (a crop's own shape with ``stride=1``, its token grid with the
            model's stride).

    Returns:
        float32 ``(d, h, w)``, peak 1 at the centre itself (lattice values are ≤ 1).
    """
    c = np.asarray(center_index_kji, dtype=float).reshape(3)
    inv = 1.0 / (2.0 * float(sigma_voxels) ** 2)
    axes = [np.exp(-((np.arange(n) * stride - c[a]) ** 2) * inv) for a, n in enumerate(grid_shape)]
    return (axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]).astype(np.float32)


def peak_index(grid: np.ndarray) -> np.ndarray:
    """Index ``(3,)`` (z, y, x) of the first maximum of a 3D grid."""
    return np.array(np.unravel_index(int(np.argmax(grid)), grid.shape), dtype=int)


def soft_argmax(grid_logits: np.ndarray, stride: int = 1, temperature: float = 1.0) -> np.ndarray:
    """Softmax-weighted mean position ``(3,)`` of a grid of logits, in crop voxels (``stride × index``)."""
    flat = np.asarray(grid_logits, dtype=float).reshape(-1) / temperature
    w = np.exp(flat - flat.max())
    w /= w.sum()
    idx = np.stack(np.unravel_index(np.arange(flat.size), grid_logits.shape), axis=-1).astype(float)
    return (w[:, None] * idx).sum(axis=0) * stride


def normalized_to_index(u: np.ndarray, crop_shape: tuple[int, int, int]) -> np.ndarray:
    """Normalised crop coordinates ``u`` ``(..., 3)`` in [0, 1] (0 = outer edge of voxel 0, 1 = outer edge of
    the last voxel) -> crop voxel indices ``(..., 3)``: ``u × N - 0.5``."""
    return np.asarray(u, dtype=float) * np.asarray(crop_shape, dtype=float) - 0.5


def index_to_normalized(index_kji: np.ndarray, crop_shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of :func:`normalized_to_index`: ``(index + 0.5) / N``."""
    return (np.asarray(index_kji, dtype=float) + 0.5) / np.asarray(crop_shape, dtype=float)

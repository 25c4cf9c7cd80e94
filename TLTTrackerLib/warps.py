"""Non-affine point transforms of the synthetic pair generator (see :mod:`TLTTrackerLib.synthetic`).

- :class:`RadialGrowthTransform`: growth or shrinkage of one lesion about its fixed centre.
- :class:`GridDisplacementTransform`: ``z -> z + u(z)`` with ``u`` on a regular node grid; its exact inverse by
  fixed-point iteration.
- :class:`InverseOf`: wraps a transform's ``inverse_apply`` as ``apply``.
- :class:`SyntheticBackwardTransform`: the follow-up -> baseline map ``A⁻¹ ∘ N⁻¹ ∘ G⁻¹`` with a fast
  ``apply_grid`` for :func:`TLTTrackerLib.resample.warp_volume`.

All points are LPS mm, arrays ``(..., 3)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from .transforms import AffineTransform


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True, eq=False)
class RadialGrowthTransform:
    """Growth (``factor`` > 1) or shrinkage of the tissue around ``center_lps_mm``, which stays fixed.

    Backward (follow-up -> before growth) radial map of the distance ``d'`` to the centre:
    ``d = d' / factor`` for ``d' <= inner_radius_mm``, ``d = d'`` for ``d' >= outer_radius_mm``, and
    ``d = d' · factor^(-w)`` between, ``w`` = 1 − smoothstep of ``ln(d'/inner) / ln(outer/inner)``.
    Radii are follow-up distances. ``apply`` (forward) inverts the radial map by bisection (exact to 1e-9 mm).
    """

    center_lps_mm: np.ndarray
    factor: float
    inner_radius_mm: float
    outer_radius_mm: float

    def _backward_radius(self, d: np.ndarray) -> np.ndarray:
        a, b = self.inner_radius_mm, self.outer_radius_mm
        t = np.log(np.maximum(d, 1e-12) / a) / math.log(b / a)
        return d * np.exp(-math.log(self.factor) * (1.0 - _smoothstep(t)))

    def apply_inverse(self, points_lps_mm: np.ndarray) -> np.ndarray:
        p = np.asarray(points_lps_mm, dtype=float)
        v = p - self.center_lps_mm
        d = np.linalg.norm(v, axis=-1, keepdims=True)
        ratio = np.where(d > 0, self._backward_radius(d) / np.maximum(d, 1e-300), 1.0 / self.factor)
        return self.center_lps_mm + v * ratio

    def apply(self, points_lps_mm: np.ndarray) -> np.ndarray:
        p = np.asarray(points_lps_mm, dtype=float)
        v = p - self.center_lps_mm
        d = np.linalg.norm(v, axis=-1)
        a, b = self.inner_radius_mm, self.outer_radius_mm
        out_d = np.where(d <= a / self.factor, d * self.factor, d)
        mid = (d > a / self.factor) & (d < b)
        if np.any(mid):
            target, lo, hi = d[mid], np.full(mid.sum(), a), np.full(mid.sum(), b)
            for _ in range(60):
                m = 0.5 * (lo + hi)
                below = self._backward_radius(m) < target
                lo, hi = np.where(below, m, lo), np.where(below, hi, m)
            out_d[mid] = 0.5 * (lo + hi)
        ratio = np.where(d > 0, out_d / np.maximum(d, 1e-300), 1.0)
        return self.center_lps_mm + v * ratio[..., None]


@dataclass(frozen=True, eq=False)
class GridDisplacementTransform:
    """``y = x + u(x)``, ``u`` trilinear on an oriented node grid (nodes like a Volume's voxel centres).

    Attributes:
        displacement_mm: ``(K, J, I, 3)`` LPS displacement at the nodes, array order z, y, x.
        origin_lps_mm, spacing_mm, direction: node grid geometry as in :class:`~.geometry.Volume`.
    Outside the grid ``u`` is that of the nearest border node. ``apply_inverse`` solves ``x + u(x) = y`` by
    fixed-point iteration (converges while the Jacobian norm of ``u`` is below 1).
    """

    displacement_mm: np.ndarray
    origin_lps_mm: np.ndarray
    spacing_mm: np.ndarray
    direction: np.ndarray
    tol_mm: float = 1e-4

    def node_index_kji(self, points_lps_mm: np.ndarray) -> np.ndarray:
        p = np.asarray(points_lps_mm, dtype=float) - self.origin_lps_mm
        return ((p @ self.direction) / self.spacing_mm)[..., ::-1]

    def displacement_at(self, points_lps_mm: np.ndarray) -> np.ndarray:
        p = np.asarray(points_lps_mm, dtype=float)
        coords = self.node_index_kji(p.reshape(-1, 3)).T
        u = [
            ndimage.map_coordinates(self.displacement_mm[..., c], coords, order=1, mode="nearest")
            for c in range(3)
        ]
        return np.stack(u, axis=-1).reshape(p.shape)

    def apply(self, points_lps_mm: np.ndarray) -> np.ndarray:
        p = np.asarray(points_lps_mm, dtype=float)
        return p + self.displacement_at(p)

    def apply_inverse(self, points_lps_mm: np.ndarray) -> np.ndarray:
        y = np.asarray(points_lps_mm, dtype=float)
        x = y - self.displacement_at(y)
        for _ in range(200):
            x_new = y - self.displacement_at(x)
            step = np.max(np.abs(x_new - x)) if x.size else 0.0
            x = x_new
            if step < self.tol_mm * 0.1:
                break
        return x

    def grid_displacement(
        self, q_k: np.ndarray, q_j: np.ndarray, q_i: np.ndarray, matrix: np.ndarray | None = None
    ) -> np.ndarray:
        """``matrix @ u`` on the tensor grid of node coordinates ``q_k × q_j × q_i``, as float32
        ``(3, len(q_k), len(q_j), len(q_i))`` (component first). Separable trilinear interpolation as three
        small dense matrix products; equal to :meth:`displacement_at` there (same border clamping)."""
        u = self.displacement_mm if matrix is None else self.displacement_mm @ np.asarray(matrix).T
        u = np.moveaxis(u, -1, 0).astype(np.float32)  # (3, K, J, I)
        for axis, q in enumerate((q_k, q_j, q_i)):
            n = u.shape[axis + 1]
            q = np.asarray(q, dtype=float)
            i0 = np.clip(np.floor(q), 0, max(n - 2, 0)).astype(int)
            w = np.clip(q - i0, 0.0, 1.0) if n > 1 else np.zeros_like(q)
            weights = np.zeros((len(q), n), np.float32)
            np.add.at(weights, (np.arange(len(q)), i0), 1.0 - w)
            np.add.at(weights, (np.arange(len(q)), np.minimum(i0 + 1, n - 1)), w)
            u = np.moveaxis(np.tensordot(u, weights, axes=([axis + 1], [1])), -1, axis + 1)
        return np.ascontiguousarray(u)


@dataclass(frozen=True, eq=False)
class InverseOf:
    """The inverse of a transform that has ``apply_inverse`` (used for ``N`` = inverse of the node field)."""

    transform: Any

    def apply(self, points_lps_mm: np.ndarray) -> np.ndarray:
        return self.transform.apply_inverse(points_lps_mm)


@dataclass(frozen=True, eq=False)
class SyntheticBackwardTransform:
    """``F⁻¹ = A⁻¹ ∘ (I + u) ∘ G₁⁻¹ ∘ … ∘ Gₙ⁻¹``: follow-up LPS points -> baseline LPS points (exact).

    ``map_grid`` evaluates it on a slab of a grid aligned with the field's node grid (fast separable path).
    """

    affine: AffineTransform  # A (baseline -> after affine)
    field: GridDisplacementTransform  # N⁻¹ = I + u
    growths: tuple[RadialGrowthTransform, ...] = ()

    def apply(self, points_lps_mm: np.ndarray) -> np.ndarray:
        p = np.asarray(points_lps_mm, dtype=float)
        for g in reversed(self.growths):
            p = g.apply_inverse(p)
        return self.affine.inverse().apply(self.field.apply(p))

    def map_grid(
        self,
        index_to_lps: np.ndarray,
        k_values: np.ndarray,
        n_j: int,
        n_i: int,
        post_matrix: np.ndarray,
        post_offset: np.ndarray,
    ) -> np.ndarray:
        """``post_matrix @ F⁻¹(y) + post_offset`` for the grid points ``y = index_to_lps @ (i, j, k, 1)``,
        ``k`` in ``k_values``: float32 ``(3, len(k), n_j, n_i)`` (protocol of :func:`~.resample.warp_volume`).

        Separable fast path when the grid is aligned with the field's nodes; general path in growth zones.
        """
        a, o = index_to_lps[:3, :3], index_to_lps[:3, 3]
        k = np.asarray(k_values, dtype=float)
        inv = self.affine.inverse()
        p = np.asarray(post_matrix, dtype=float) @ inv.matrix  # LPS after N⁻¹ -> output
        c = np.asarray(post_matrix, dtype=float) @ inv.translation_mm + np.asarray(post_offset, dtype=float)
        t = (self.field.direction.T @ a) / self.field.spacing_mm[:, None]  # grid ijk -> node ijk
        axes = (k, np.arange(n_j, dtype=float), np.arange(n_i, dtype=float))
        if np.max(np.abs(t - np.diag(np.diag(t)))) > 1e-9:
            y = (
                o
                + axes[0][:, None, None, None] * a[:, 2]
                + axes[1][None, :, None, None] * a[:, 1]
                + axes[2][None, None, :, None] * a[:, 0]
            )
            x = self.apply(y.reshape(-1, 3)) @ np.asarray(post_matrix).T + post_offset
            return np.ascontiguousarray(x.T.reshape(3, len(k), n_j, n_i), dtype=np.float32)
        q0 = self.field.direction.T @ (o - self.field.origin_lps_mm) / self.field.spacing_mm
        out = self.field.grid_displacement(
            q0[2] + t[2, 2] * axes[0], q0[1] + t[1, 1] * axes[1], q0[0] + t[0, 0] * axes[2], matrix=p
        )
        pa, base = p @ a, p @ o + c  # the affine part: out += base + pa @ (i, j, k)
        for comp in range(3):
            plane = base[comp] + axes[1][:, None] * pa[comp, 1] + axes[2][None, :] * pa[comp, 0]
            out[comp] += plane.astype(np.float32)[None]
            out[comp] += (axes[0] * pa[comp, 2]).astype(np.float32)[:, None, None]
        a_inv = np.linalg.inv(a)
        for g in self.growths:  # overwrite the points inside growth zones with the exact general path
            ci = a_inv @ (g.center_lps_mm - o)
            half = g.outer_radius_mm / np.linalg.norm(a, axis=0)
            sel_k = np.nonzero(np.abs(k - ci[2]) <= half[2] + 1)[0]
            j0, j1 = max(0, int(ci[1] - half[1]) - 1), min(n_j, int(ci[1] + half[1]) + 2)
            i0, i1 = max(0, int(ci[0] - half[0]) - 1), min(n_i, int(ci[0] + half[0]) + 2)
            if sel_k.size == 0 or j0 >= j1 or i0 >= i1:
                continue
            y = (
                o
                + k[sel_k, None, None, None] * a[:, 2]
                + np.arange(j0, j1)[None, :, None, None] * a[:, 1]
                + np.arange(i0, i1)[None, None, :, None] * a[:, 0]
            )
            inside = np.linalg.norm(y - g.center_lps_mm, axis=-1) < g.outer_radius_mm
            if np.any(inside):
                exact = self.apply(y[inside]) @ np.asarray(post_matrix).T + post_offset
                block = out[:, sel_k, j0:j1, i0:i1]
                block[:, inside] = exact.T
                out[:, sel_k, j0:j1, i0:i1] = block
        return out

"""Point transforms between two scans, all in LPS millimetres.

A transform here maps a point of one scan's patient frame to the other's: ``apply(points_lps_mm)``
takes ``(3,)`` or ``(N, 3)`` and returns the same shape. Registration returns an
:class:`AffineTransform` from baseline to follow-up; the synthetic pair generator returns a
:class:`CompositeTransform` (affine + smooth displacement field) whose ``apply`` gives the exact
ground-truth position of any baseline point in the follow-up scan.

Note the direction: unlike ITK's resampling transforms (which map *output* points to *input* points),
every transform in this module maps *source* points forward to *target* points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np


class PointTransform(Protocol):
    """Anything that maps LPS points ``(..., 3)`` to LPS points ``(..., 3)``."""

    def apply(self, points_lps_mm: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class AffineTransform:
    """``y = matrix @ x + translation_mm`` in LPS mm.

    Attributes:
        matrix: ``(3, 3)`` linear part (rotation, scale, shear).
        translation_mm: ``(3,)`` offset in mm.
    """

    matrix: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "matrix", np.asarray(self.matrix, dtype=float).reshape(3, 3))
        object.__setattr__(self, "translation_mm", np.asarray(self.translation_mm, dtype=float).reshape(3))

    @classmethod
    def identity(cls) -> "AffineTransform":
        return cls()

    @classmethod
    def from_homogeneous(cls, m: np.ndarray) -> "AffineTransform":
        """From a ``(4, 4)`` homogeneous matrix."""
        m = np.asarray(m, dtype=float)
        return cls(m[:3, :3], m[:3, 3])

    @classmethod
    def about_center(
        cls, matrix: np.ndarray, center_lps_mm: np.ndarray, translation_mm: np.ndarray | None = None
    ) -> "AffineTransform":
        """``y = matrix @ (x - c) + c + t``: a linear map about a centre ``c``, then a shift ``t``."""
        c = np.asarray(center_lps_mm, dtype=float)
        t = np.zeros(3) if translation_mm is None else np.asarray(translation_mm, dtype=float)
        a = np.asarray(matrix, dtype=float)
        return cls(a, c + t - a @ c)

    def homogeneous(self) -> np.ndarray:
        """``(4, 4)`` homogeneous matrix."""
        m = np.eye(4)
        m[:3, :3] = self.matrix
        m[:3, 3] = self.translation_mm
        return m

    def apply(self, points_lps_mm: np.ndarray) -> np.ndarray:
        p = np.asarray(points_lps_mm, dtype=float)
        return p @ self.matrix.T + self.translation_mm

    def inverse(self) -> "AffineTransform":
        inv = np.linalg.inv(self.matrix)
        return AffineTransform(inv, -inv @ self.translation_mm)

    def then(self, other: "AffineTransform") -> "AffineTransform":
        """The affine that applies ``self`` first, then ``other``."""
        return AffineTransform(other.matrix @ self.matrix, other.matrix @ self.translation_mm + other.translation_mm)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "affine", "matrix": self.matrix.tolist(), "translation_mm": self.translation_mm.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AffineTransform":
        return cls(np.asarray(d["matrix"]), np.asarray(d["translation_mm"]))


def local_linear(transform: PointTransform, point_lps_mm: np.ndarray, h_mm: float = 1.0) -> np.ndarray:
    """The ``(3, 3)`` derivative of ``transform.apply`` at a point ``(3,)`` LPS mm, by central differences of step
    ``h_mm`` (column j: the image of a unit step along LPS axis j)."""
    c = np.asarray(point_lps_mm, float)
    steps = h_mm * np.eye(3)
    y = transform.apply(np.concatenate([c + steps, c - steps]))
    return (y[:3] - y[3:]).T / (2.0 * h_mm)


def linear_scale(matrix: np.ndarray) -> float:
    """The isotropic scale of a linear map ``(3, 3)``: the cube root of |det| (1 for a rigid motion)."""
    return float(abs(np.linalg.det(matrix)) ** (1.0 / 3.0))


@dataclass(frozen=True, eq=False)
class DisplacementFieldTransform:
    """``y = x + u(x)``, with ``u`` sampled on a regular LPS-aligned grid and interpolated trilinearly.

    Attributes:
        displacement_mm: ``(Z, Y, X, 3)`` displacement vectors (LPS mm) at grid nodes, array order z, y, x.
        grid_origin_lps_mm: ``(3,)`` LPS position of node (0, 0, 0).
        grid_spacing_mm: ``(3,)`` node spacing along x, y, z in mm (grid axes are the LPS axes).

    Points outside the grid get the displacement of the nearest border node.
    """

    displacement_mm: np.ndarray
    grid_origin_lps_mm: np.ndarray
    grid_spacing_mm: np.ndarray

    def __post_init__(self) -> None:
        d = np.asarray(self.displacement_mm, dtype=float)
        if d.ndim != 4 or d.shape[-1] != 3:
            raise ValueError(f"displacement_mm must have shape (Z, Y, X, 3), got {d.shape}")
        object.__setattr__(self, "displacement_mm", d)
        object.__setattr__(self, "grid_origin_lps_mm", np.asarray(self.grid_origin_lps_mm, dtype=float))
        object.__setattr__(self, "grid_spacing_mm", np.asarray(self.grid_spacing_mm, dtype=float))

    def displacement_at(self, points_lps_mm: np.ndarray) -> np.ndarray:
        """Interpolated displacement ``(..., 3)`` at LPS points ``(..., 3)``."""
        from scipy.ndimage import map_coordinates

        p = np.asarray(points_lps_mm, dtype=float)
        flat = p.reshape(-1, 3)
        idx_xyz = (flat - self.grid_origin_lps_mm) / self.grid_spacing_mm
        coords = idx_xyz[:, ::-1].T  # (3, N) in z, y, x order
        out = np.stack(
            [map_coordinates(self.displacement_mm[..., c], coords, order=1, mode="nearest") for c in range(3)],
            axis=-1,
        )
        return out.reshape(p.shape)

    def apply(self, points_lps_mm: np.ndarray) -> np.ndarray:
        p = np.asarray(points_lps_mm, dtype=float)
        return p + self.displacement_at(p)


@dataclass(frozen=True, eq=False)
class CompositeTransform:
    """Applies ``transforms[0]``, then ``transforms[1]``, and so on."""

    transforms: Sequence[PointTransform]

    def apply(self, points_lps_mm: np.ndarray) -> np.ndarray:
        p = np.asarray(points_lps_mm, dtype=float)
        for t in self.transforms:
            p = t.apply(p)
        return p

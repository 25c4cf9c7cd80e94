"""Volumes with physical geometry, and conversions between voxel indices and patient coordinates.

Conventions (used everywhere in TLTTrackerLib):

- Physical points are in **LPS millimetres** (ITK/DICOM patient frame: +x left, +y posterior, +z superior),
  as SimpleITK, DICOM and Slicer's ``.mrk.json`` files use. RAS (Slicer's world frame) differs by the sign of
  x and y; :func:`ras_to_lps` and :func:`lps_to_ras` are the only places that flip them.
- ``Volume.array`` is indexed ``array[k, j, i]`` = ``array[z, y, x]`` (NumPy / SimpleITK ``GetArrayFromImage``
  order). Continuous indices named ``index_kji`` follow that order; ``index_ijk`` is the ITK order.
- ``spacing_mm`` is in ITK order (along i, j, k); ``direction`` is the ITK 3x3 direction matrix whose
  *columns* are the LPS unit vectors of the i, j, k axes; ``origin_lps_mm`` is the centre of voxel (0, 0, 0).

    point_lps_mm = origin_lps_mm + direction @ (spacing_mm * index_ijk)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError

_LPS_FROM_RAS = np.array([-1.0, -1.0, 1.0])


def ras_to_lps(points_ras_mm: np.ndarray) -> np.ndarray:
    """RAS mm -> LPS mm for one point ``(3,)`` or points ``(N, 3)`` (flips x and y)."""
    return np.asarray(points_ras_mm, dtype=float) * _LPS_FROM_RAS


def lps_to_ras(points_lps_mm: np.ndarray) -> np.ndarray:
    """LPS mm -> RAS mm for one point ``(3,)`` or points ``(N, 3)`` (flips x and y)."""
    return np.asarray(points_lps_mm, dtype=float) * _LPS_FROM_RAS


def _plain(value: object) -> str:
    """``value`` for a message: arrays as plain lists (no ``array(...)`` repr)."""
    try:
        return str(np.asarray(value, dtype=float).round(4).tolist())
    except (TypeError, ValueError):
        return repr(value)


def _as_vec3(value: object, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be 3 finite numbers, got {_plain(value)}")
    return arr


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D scalar image with its geometry.

    Attributes:
        array: voxel values, shape ``(K, J, I)`` = ``(z, y, x)``; any numeric dtype (CT: int16 HU or float32).
        origin_lps_mm: ``(3,)`` LPS position of the centre of voxel index (0, 0, 0).
        spacing_mm: ``(3,)`` voxel size along i, j, k (x, y, z) in mm, all > 0.
        direction: ``(3, 3)`` orthonormal matrix; column c is the LPS direction of index axis c (i, j, k).
    """

    array: np.ndarray
    origin_lps_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))
    spacing_mm: np.ndarray = field(default_factory=lambda: np.ones(3))
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.ndim != 3:
            raise ValueError(f"a Volume needs a 3D array, got shape {array.shape}")
        origin = _as_vec3(self.origin_lps_mm, "origin_lps_mm")
        spacing = _as_vec3(self.spacing_mm, "spacing_mm")
        if np.any(spacing <= 0):
            raise InputError(f"spacing_mm must be positive, got {spacing.tolist()}")
        direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
            raise InputError(
                f"direction must be an orthonormal 3x3 matrix (orthogonal voxel axes), got {_plain(direction)}; "
                "resample a sheared image onto an orthogonal grid first"
            )
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "origin_lps_mm", origin)
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "direction", direction)

    # ------------------------------------------------------------------ basic properties
    @property
    def shape_kji(self) -> tuple[int, int, int]:
        """Array shape ``(K, J, I)`` = (slices, rows, columns)."""
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def size_ijk(self) -> tuple[int, int, int]:
        """Number of voxels along i, j, k (ITK ``GetSize()`` order)."""
        k, j, i = self.shape_kji
        return (i, j, k)

    def with_array(self, array: np.ndarray) -> "Volume":
        """Same geometry, another array of the same shape."""
        if np.shape(array) != self.array.shape:
            raise ValueError(f"array shape {np.shape(array)} differs from volume shape {self.array.shape}")
        return Volume(array, self.origin_lps_mm, self.spacing_mm, self.direction)

    # ------------------------------------------------------------------ index <-> physical
    def index_to_lps_matrix(self) -> np.ndarray:
        """``(4, 4)`` homogeneous matrix mapping ``index_ijk`` to LPS mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction * self.spacing_mm[None, :]
        m[:3, 3] = self.origin_lps_mm
        return m

    def index_ijk_to_lps(self, index_ijk: np.ndarray) -> np.ndarray:
        """Continuous ITK-order indices ``(..., 3)`` -> LPS mm ``(..., 3)``."""
        idx = np.asarray(index_ijk, dtype=float)
        return idx @ (self.direction * self.spacing_mm[None, :]).T + self.origin_lps_mm

    def lps_to_index_ijk(self, points_lps_mm: np.ndarray) -> np.ndarray:
        """LPS mm ``(..., 3)`` -> continuous ITK-order indices ``(..., 3)``."""
        p = np.asarray(points_lps_mm, dtype=float) - self.origin_lps_mm
        return (p @ self.direction) / self.spacing_mm

    def index_kji_to_lps(self, index_kji: np.ndarray) -> np.ndarray:
        """Continuous NumPy-order indices ``(..., 3)`` as (k, j, i) -> LPS mm ``(..., 3)``."""
        return self.index_ijk_to_lps(np.asarray(index_kji, dtype=float)[..., ::-1])

    def lps_to_index_kji(self, points_lps_mm: np.ndarray) -> np.ndarray:
        """LPS mm ``(..., 3)`` -> continuous NumPy-order indices ``(..., 3)`` as (k, j, i)."""
        return self.lps_to_index_ijk(points_lps_mm)[..., ::-1]

    def contains_lps(self, points_lps_mm: np.ndarray, margin_voxels: float = 0.5) -> np.ndarray:
        """Whether each LPS point lies inside the volume (voxel centres ± ``margin_voxels``).

        Returns a bool scalar for ``(3,)`` input or ``(N,)`` bools for ``(N, 3)``.
        """
        idx = self.lps_to_index_kji(points_lps_mm)
        upper = np.asarray(self.shape_kji, dtype=float) - 1 + margin_voxels
        return np.all((idx >= -margin_voxels) & (idx <= upper), axis=-1)

    def center_lps_mm(self) -> np.ndarray:
        """LPS position of the geometric centre of the voxel grid, ``(3,)``."""
        return self.index_kji_to_lps((np.asarray(self.shape_kji, dtype=float) - 1) / 2)

    def corners_lps_mm(self) -> np.ndarray:
        """LPS positions of the 8 corner voxel centres, ``(8, 3)``."""
        k, j, i = (s - 1 for s in self.shape_kji)
        corners = np.array([[a, b, c] for a in (0, k) for b in (0, j) for c in (0, i)], dtype=float)
        return self.index_kji_to_lps(corners)

    def extent_mm(self) -> np.ndarray:
        """Physical size along i, j, k (x, y, z) in mm: ``size_ijk * spacing_mm``, ``(3,)``."""
        return np.asarray(self.size_ijk, dtype=float) * self.spacing_mm

    def same_geometry(self, other: "Volume", atol: float = 1e-5) -> bool:
        """True when ``other`` has the same shape, origin, spacing and direction."""
        return (
            self.shape_kji == other.shape_kji
            and np.allclose(self.origin_lps_mm, other.origin_lps_mm, atol=atol)
            and np.allclose(self.spacing_mm, other.spacing_mm, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )

    def __repr__(self) -> str:
        return (
            f"Volume(shape_kji={self.shape_kji}, dtype={self.array.dtype}, "
            f"spacing_mm={np.round(self.spacing_mm, 4).tolist()}, "
            f"origin_lps_mm={np.round(self.origin_lps_mm, 3).tolist()})"
        )

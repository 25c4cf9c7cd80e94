"""Working images of the affine registration (:mod:`TLTTrackerLib.registration`): SimpleITK images averaged
down once, body masks, the fixed-grid region that both scans cover, and z extents.

All images keep the volume's LPS geometry; masks are bool arrays in (K, J, I) = (z, y, x) order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .geometry import Volume
from .io import volume_to_sitk
from .transforms import AffineTransform

AIR_HU = -1024.0
MAX_HU = 1500.0
BODY_HU = -500.0
_MIN_LEVEL_VOXELS = 8  # per axis kept by the downsampling where the input allows it


def shrink(image: Any, spacing_mm: float) -> Any:
    """Box-average ``image`` by integer factors to about ``spacing_mm`` per axis (at least 8 voxels kept)."""
    import SimpleITK as sitk

    factors = [
        max(1, min(int(round(spacing_mm / s)), n // _MIN_LEVEL_VOXELS))
        for s, n in zip(image.GetSpacing(), image.GetSize(), strict=True)
    ]
    return sitk.BinShrink(image, factors) if max(factors) > 1 else image


def working_image(volume: Volume, spacing_mm: float) -> Any:
    """Float32 SimpleITK image of ``volume`` (same LPS geometry), HU clamped to [-1024, 1500], averaged down
    to about ``spacing_mm``. Only the clamp touches the full-resolution array (int16 stays int16)."""
    import SimpleITK as sitk

    array = volume.array
    if array.dtype in (np.int16, np.int8):
        # int16 bounds keep the clip in int16 (float bounds would make a float64 copy: 4x the memory, and
        # a first-touch page-fault cost that took 0.7-1.1 s of a 1.5 s registration of a 512x512x133 pair)
        array = np.clip(array.astype(np.int16, copy=False), np.int16(AIR_HU), np.int16(MAX_HU))
    else:
        array = np.clip(np.nan_to_num(array.astype(np.float32), nan=AIR_HU), AIR_HU, MAX_HU)
    image = volume_to_sitk(volume.with_array(array))
    return sitk.Cast(shrink(image, spacing_mm), sitk.sitkFloat32)


def body_voxels(image: Any) -> np.ndarray:
    """Bool ``(K, J, I)``: voxels above -500 HU, dilated by one voxel (so that the skin edge counts)."""
    import SimpleITK as sitk

    mask = sitk.BinaryDilate(sitk.BinaryThreshold(image, BODY_HU, 1.0e9, 1, 0), [1, 1, 1])
    return sitk.GetArrayFromImage(mask) > 0


def index_to_lps(image: Any) -> np.ndarray:
    """``(4, 4)`` homogeneous map from an image's ITK index (i, j, k) to LPS mm."""
    m = np.eye(4)
    m[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())[None, :]
    m[:3, 3] = image.GetOrigin()
    return m


def inside_both(fixed: Any, moving: Any, fixed_to_moving: AffineTransform, margin_mm: float) -> np.ndarray:
    """Bool ``(K, J, I)`` over the fixed grid: voxels at least ``margin_mm`` inside the fixed grid whose image
    under ``fixed_to_moving`` lies at least ``margin_mm`` inside the moving grid."""
    size = np.array(fixed.GetSize())
    axes = [np.arange(n, dtype=float) for n in size]  # i, j, k
    shapes = [(1, 1, -1), (1, -1, 1), (-1, 1, 1)]  # how i, j, k broadcast over (K, J, I)
    inside = np.ones(tuple(size[::-1]), bool)
    for c, n in enumerate(size):
        edge = min(margin_mm / fixed.GetSpacing()[c], (n - 1) / 4)
        inside &= ((axes[c] >= edge) & (axes[c] <= n - 1 - edge)).reshape(shapes[c])
    m = np.linalg.inv(index_to_lps(moving)) @ fixed_to_moving.homogeneous() @ index_to_lps(fixed)
    for c, n in enumerate(moving.GetSize()):
        edge = min(margin_mm / moving.GetSpacing()[c], (n - 1) / 4)
        index = sum(m[c, a] * axes[a].reshape(shapes[a]) for a in range(3)) + m[c, 3]
        inside &= (index >= edge) & (index <= n - 1 - edge)
    return inside


def mask_image(mask: np.ndarray, like: Any) -> Any:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(like)
    return image


def z_range_mm(image: Any) -> tuple[float, float]:
    """LPS z interval covered by the image's voxels (any direction matrix)."""
    size = image.GetSize()
    corners = [image.TransformIndexToPhysicalPoint((a, b, c)) for a in (0, size[0] - 1)
               for b in (0, size[1] - 1) for c in (0, size[2] - 1)]
    z = np.array([p[2] for p in corners])
    half = 0.5 * float(np.max(np.abs(np.array(image.GetDirection()).reshape(3, 3)[2] * image.GetSpacing())))
    return float(z.min() - half), float(z.max() + half)

"""A synthetic CT for the tracking tests: smooth random texture with a soft-tissue nodule at its centre (imported by
the test modules, as ``bad_input`` is)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from TLTTrackerLib.geometry import Volume


def textured_ct(seed: int, shape_kji: tuple[int, int, int], smoothing_vox: tuple[float, float, float],
                nodule_radius_mm: float) -> Volume:
    """Texture of −700 ± 900 HU (normal noise Gaussian-smoothed by ``smoothing_vox``, z y x voxels; clipped to
    −1024..1500) on a 1 × 1 × 2 mm grid (x y z), with a 60 HU ball of ``nodule_radius_mm`` at the centre node
    ``shape_kji // 2``, which lies at the LPS origin (0, 0, 0)."""
    rng = np.random.default_rng(seed)
    texture = gaussian_filter(rng.normal(size=shape_kji), smoothing_vox)
    hu = (-700 + 900 * texture / texture.std()).clip(-1024, 1500)
    spacing = np.array([1.0, 1.0, 2.0])  # x y z
    ck, cj, ci = (np.asarray(shape_kji) // 2).tolist()
    kk, jj, ii = np.indices(hu.shape)
    hu[(ii - ci) ** 2 + (jj - cj) ** 2 + ((kk - ck) * spacing[2]) ** 2 < nodule_radius_mm**2] = 60
    return Volume(hu.astype(np.int16), origin_lps_mm=-np.array([ci, cj, ck]) * spacing, spacing_mm=spacing)

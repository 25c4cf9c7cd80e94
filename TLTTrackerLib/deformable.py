"""A coarse deformable registration of the whole pair after the affine: where each lesion starts in the follow-up.

The global affine leaves organ-scale motion (breathing, posture: 15–40 mm at lesions in the ``extreme`` scenario),
more than the per-lesion region registration of :mod:`.refine` converges from (≈ 15 mm). One demons registration
of the whole pair at 16 → 8 → 4 mm (≈ 1 s on 2 cores) takes most of it up once for every lesion:

    fixed(y)  = followup(y)                  y on the follow-up's working grid (≈ 4 mm), LPS mm
    moving(y) = baseline(T⁻¹(y))             the baseline mapped into the follow-up frame by the affine T
    demons:     fixed(y) ≈ moving(y + u(y))  (ITK convention, symmetric forces, Gaussian-smoothed u)

so follow-up point ``y`` shows baseline point ``T⁻¹(y + u(y))`` (:meth:`PairField.to_baseline`), and baseline
point ``c`` sits at the ``y`` that solves ``y + u(y) = T(c)`` (:meth:`PairField.to_followup`, fixed-point
iteration). Both images are clipped to −1000..0 HU: the field sees air, lung, fat and the outlines of soft
tissue, not the inside of organs, whose contrast enhancement changes between scans; clipped at 200 HU, as
:mod:`.refine` does, demons chased that change through homogeneous liver and put organ-interior points 20–40 mm
off on the ``abdomen`` tuning pairs. The demons step is capped at ``max_step_voxels`` voxels per iteration: the
default half a voxel left the 16 mm level short of 30–40 mm motion.

Start error (distance of the start point to the exact follow-up centre) on the tuning pairs, seeds 0–3
(``docs/benchmarks.md`` §9): ``extreme`` (28 lesions) affine median 17.4 / p90 25.8 mm → field 2.9 / 8.0 mm;
``abdomen`` (68) 7.3 / 11.8 → 3.6 / 7.3 mm.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .geometry import Volume
from .transforms import AffineTransform, local_linear


@dataclass(frozen=True)
class FieldConfig:
    """``levels``: (spacing mm, demons iterations, field smoothing in voxels) coarse to fine; ``max_step_voxels``:
    demons' largest update per iteration; ``clip_hu``: the intensity window of both images; ``threads``: SimpleITK
    threads of each demons filter (0: SimpleITK's default, all cores)."""

    levels: tuple[tuple[float, int, float], ...] = ((16.0, 80, 1.25), (8.0, 60, 1.25), (4.0, 30, 1.25))
    max_step_voxels: float = 2.0
    clip_hu: tuple[float, float] = (-1000.0, 0.0)
    threads: int = 0


@dataclass(frozen=True, eq=False)
class PairField:
    """The affine plus a displacement field on the follow-up's working grid.

    Attributes:
        affine: baseline → follow-up (:class:`~.transforms.AffineTransform`, LPS mm).
        displacement_kji: ``(K, J, I, 3)`` float32, u(y) in LPS mm at every grid node (z, y, x order of nodes).
        grid: a :class:`~.geometry.Volume` holding the grid's geometry (its array is the fixed image).
        seconds: wall time of :func:`register_field`.
    """

    affine: AffineTransform
    displacement_kji: np.ndarray
    grid: Volume
    seconds: float = 0.0

    def displacement_at(self, points_lps_mm: np.ndarray) -> np.ndarray:
        """u at follow-up points ``(N, 3)`` LPS mm (trilinear; nearest node values continue outside the grid)."""
        from scipy.ndimage import map_coordinates

        idx = self.grid.lps_to_index_kji(np.atleast_2d(points_lps_mm)).T
        return np.stack([map_coordinates(self.displacement_kji[..., a], idx, order=1, mode="nearest")
                         for a in range(3)], axis=-1)

    def to_baseline(self, points_lps_mm: np.ndarray) -> np.ndarray:
        """Follow-up points ``(3,)`` or ``(N, 3)`` LPS mm → the baseline points they show."""
        p = np.asarray(points_lps_mm, float)
        out = self.affine.inverse().apply(np.atleast_2d(p) + self.displacement_at(p))
        return out.reshape(p.shape)

    @property
    def matrix(self) -> np.ndarray:
        """The affine's linear part ``(3, 3)``: with :meth:`apply`, a field stands in for the affine as a
        baseline → follow-up point map (the TLT network's start, :class:`~.inference.TLTPredictor`)."""
        return self.affine.matrix

    def apply(self, points_lps_mm: np.ndarray) -> np.ndarray:
        """Baseline points → follow-up points (:meth:`to_followup`), the affine's ``apply`` with the field."""
        return self.to_followup(points_lps_mm)

    def local_linear(self, center_lps_mm: np.ndarray, h_mm: float = 4.0) -> np.ndarray:
        """The ``(3, 3)`` derivative of :meth:`to_followup` at a baseline point ``(3,)`` LPS mm (central differences
        ±``h_mm``, the finest level's spacing): the linear part of the affine and the field together there, a
        lesion's local shear and stretch that a global affine misses (the ``extreme`` scenario's motion has
        gradients up to 0.85)."""
        return local_linear(self, center_lps_mm, h_mm)

    def to_followup(self, points_lps_mm: np.ndarray, iterations: int = 30, tol_mm: float = 0.01) -> np.ndarray:
        """Baseline points ``(3,)`` or ``(N, 3)`` LPS mm → follow-up points: solves ``y + u(y) = T(c)``."""
        c = np.asarray(points_lps_mm, float)
        target = self.affine.apply(np.atleast_2d(c))
        y = target.copy()
        for _ in range(iterations):
            new = target - self.displacement_at(y)
            step = float(np.max(np.linalg.norm(new - y, axis=-1)))
            y = new
            if step < tol_mm:
                break
        return y.reshape(c.shape)


def register_field(
    baseline: Volume,
    followup: Volume,
    baseline_to_followup: AffineTransform,
    config: FieldConfig = FieldConfig(),
    images: tuple[Any, Any] | None = None,
) -> PairField:
    """Demons registration of the whole pair on top of the affine (module docstring).

    Args:
        images: the SimpleITK working images ``(baseline, followup)`` already made by the affine registration
            (:func:`~.registration_images.working_image`), to save making them again; None: made here.
    """
    import SimpleITK as sitk

    from .io import volume_from_sitk
    from .registration_images import shrink, working_image

    t0 = time.perf_counter()
    fine = config.levels[-1][0]
    if images is None:
        images = (working_image(baseline, fine), working_image(followup, fine))
    b_img, f_img = (shrink(image, fine) for image in images)
    inverse = baseline_to_followup.inverse()
    resampler = sitk.AffineTransform(3)
    resampler.SetMatrix(inverse.matrix.ravel().tolist())
    resampler.SetTranslation(inverse.translation_mm.tolist())
    moved = sitk.Resample(b_img, f_img, resampler, sitk.sitkLinear, config.clip_hu[0], sitk.sitkFloat32)
    fixed = sitk.Clamp(f_img, sitk.sitkFloat32, *config.clip_hu)
    moving = sitk.Clamp(moved, sitk.sitkFloat32, *config.clip_hu)
    field = None
    for spacing, iterations, smoothing in config.levels:
        f, m = shrink(fixed, spacing), shrink(moving, spacing)
        demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
        if config.threads:
            demons.SetNumberOfThreads(config.threads)
        demons.SetNumberOfIterations(int(iterations))
        demons.SetStandardDeviations(float(smoothing))
        demons.SetMaximumUpdateStepLength(float(config.max_step_voxels))
        if field is None:
            field = demons.Execute(f, m)
        else:
            start = sitk.Resample(field, f, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
            field = demons.Execute(f, m, start)
    field = sitk.Resample(field, fixed, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
    displacement = sitk.GetArrayFromImage(field).astype(np.float32)  # (K, J, I, 3), vector in x, y, z = LPS
    grid = volume_from_sitk(fixed)
    return PairField(baseline_to_followup, displacement, grid, time.perf_counter() - t0)

"""Random training points on a CT for self-supervised tracking: lesion-like blobs, anatomical edges, body.

Self-supervised lesion tracking trains on points that need not be annotated lesions (DLT-Mix, Cai et al.,
CVPR 2021, mixes lesion and non-lesion anatomy). :class:`TrainingPointSampler` looks at a volume once, at a
working resolution of about ``working_spacing_mm``, and then draws points of three kinds:

- ``blob``: scale-space extrema of a difference-of-Gaussians (blobs of radius 3–15 mm; the 3D DoG peaks at
  ``sigma = r / sqrt(3)``): bright blobs whose centre looks like tissue (-600..300 HU: nodules, lymph nodes,
  vessels seen end-on) and dark blobs in soft tissue (-200..300 HU: hypodense liver lesions, cysts);
- ``anatomical``: voxels with a high gradient magnitude (organ borders, vessels, bone), drawn ∝ gradient;
- ``uniform``: any voxel of the body.

``kind`` sets the proportions (:data:`KIND_FRACTIONS`). Every point lies inside the body mask (threshold
-500 HU, holes filled slice by slice so that lungs count as body, largest connected component).
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage

from .errors import InputError
from .geometry import Volume
from .resample import AIR_HU, resample_to_spacing

logger = logging.getLogger(__name__)

#: fractions (blob, anatomical, uniform) per kind
KIND_FRACTIONS: dict[str, tuple[float, float, float]] = {
    "blob": (0.7, 0.2, 0.1),
    "anatomical": (0.0, 0.8, 0.2),
    "mixed": (0.4, 0.4, 0.2),
    "uniform": (0.0, 0.0, 1.0),
}


def body_mask(volume: Volume, threshold_hu: float = -500.0) -> np.ndarray:
    """Boolean ``(K, J, I)`` mask of the patient's body (lungs and airways included; table, air excluded)."""
    dense = np.asarray(volume.array) > threshold_hu
    dense = ndimage.binary_opening(dense, iterations=1)  # cut thin table/blanket bridges
    labels, n = ndimage.label(dense)
    if n == 0:
        return dense
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    mask = labels == int(np.argmax(sizes))
    for k in range(mask.shape[0]):  # fill lungs and airways, which touch the outside in 3D but not per slice
        mask[k] = ndimage.binary_fill_holes(mask[k])
    return mask


class TissueMaps(NamedTuple):
    """Local tissue statistics of a working CT, ``(K, J, I)`` arrays on its grid (HU, mm): 4 and 6 mm Gaussian
    means, the 6 mm standard deviation, the body mask (:func:`body_mask`), the depth inside the body, the distance
    from bone (> 250 HU), and ``z_ok``: at least the margin from either z end. Where soft-tissue targets may sit
    (``scenarios.abdomen_lesions``, :mod:`.painted_lesions`)."""

    mean4: np.ndarray
    mean6: np.ndarray
    std6: np.ndarray
    body: np.ndarray
    depth: np.ndarray
    from_bone: np.ndarray
    z_ok: np.ndarray


def tissue_maps(work: Volume, z_margin_mm: float) -> TissueMaps:
    """:class:`TissueMaps` of ``work`` (float32 HU; a few mm grid is enough)."""
    arr = work.array
    sp = work.spacing_mm[::-1]
    mean6 = ndimage.gaussian_filter(arr, 6.0 / sp)
    mean4 = ndimage.gaussian_filter(arr, 4.0 / sp)
    std6 = np.sqrt(np.maximum(ndimage.gaussian_filter(arr**2, 6.0 / sp) - mean6**2, 0))
    body = body_mask(work)
    depth = ndimage.distance_transform_edt(body, sampling=sp)
    from_bone = ndimage.distance_transform_edt(arr <= 250, sampling=sp)
    z_ok = np.zeros(arr.shape, bool)
    margin = int(np.ceil(z_margin_mm / sp[0]))
    z_ok[margin:-margin] = True
    return TissueMaps(mean4, mean6, std6, body, depth, from_bone, z_ok)


def _blobness(
    smoothed: np.ndarray, scale: np.ndarray, idx: np.ndarray, spacing_kji: np.ndarray, sign: float
) -> np.ndarray:
    """Roundness in [0, 1] of each candidate: weakest / strongest curvature (Hessian eigenvalue) of the
    ``smoothed[scale]`` image at voxel ``idx`` (central differences); 0 unless all three curve the blob's
    way."""
    shape = np.array(smoothed.shape[1:])
    out = np.zeros(len(idx))
    inner = np.all((idx >= 1) & (idx <= shape - 2), axis=1)
    s, (k, j, i) = scale[inner], idx[inner].T
    if not len(s):
        return out

    def f(dk: int, dj: int, di: int) -> np.ndarray:
        return smoothed[s, k + dk, j + dj, i + di]

    h = np.empty((len(s), 3, 3))
    steps = np.eye(3, dtype=int)
    for a in range(3):
        for b in range(a, 3):
            if a == b:
                h[:, a, a] = (f(*steps[a]) - 2 * f(0, 0, 0) + f(*-steps[a])) / spacing_kji[a] ** 2
            else:
                p, q = steps[a], steps[b]
                h[:, a, b] = h[:, b, a] = (f(*(p + q)) - f(*(p - q)) - f(*(q - p)) + f(*(-p - q))) / (
                    4 * spacing_kji[a] * spacing_kji[b]
                )
    ev = -sign * np.linalg.eigvalsh(h)  # bright blob: all eigenvalues negative -> positive here
    out[inner] = np.where(ev.min(axis=1) > 0, ev.min(axis=1) / np.maximum(ev.max(axis=1), 1e-12), 0.0)
    return out


class TrainingPointSampler:
    """Analyses ``volume`` once; :meth:`sample` then draws points fast.

    Args:
        volume: CT in HU (values below -1024 are clamped).
        working_spacing_mm: analysis resolution; axes finer than this are resampled to it.
        blob_radii_mm: blob radii whose DoG scales are searched.
        blob_min_response_hu: minimum DoG contrast for a blob candidate.
        edge_quantile: anatomical candidates are body voxels above this quantile of the gradient magnitude.
        min_blobness: smallest/largest Hessian eigenvalue ratio a blob needs (1 = round; tubes score ≈ 0).
    """

    def __init__(
        self,
        volume: Volume,
        working_spacing_mm: float = 2.0,
        blob_radii_mm: tuple[float, ...] = (3.0, 5.0, 8.0, 12.0, 15.0),
        blob_min_response_hu: float = 10.0,
        edge_quantile: float = 0.85,
        min_blobness: float = 0.3,
    ) -> None:
        arr = np.maximum(np.asarray(volume.array, dtype=np.float32), AIR_HU)
        vol = volume.with_array(arr)
        spacing = np.maximum(volume.spacing_mm, working_spacing_mm)
        if np.any(spacing > volume.spacing_mm * 1.01):
            vol = resample_to_spacing(vol, spacing, dtype=np.float32)
        self.work = vol
        work = vol.array
        body = body_mask(vol)
        if not body.any():
            raise InputError(
                "no body found in the volume (nothing above -500 HU); is it a CT in Hounsfield units?"
            )
        self.body = body
        sp_kji = vol.spacing_mm[::-1]

        # blobs: DoG between consecutive scales, maximum over scales, local maxima in space
        sigmas = [r / np.sqrt(3.0) for r in blob_radii_mm]
        sigmas.append(sigmas[-1] * 1.6)
        smoothed = [ndimage.gaussian_filter(work, s / sp_kji, mode="nearest") for s in sigmas]
        dog = np.stack([a - b for a, b in itertools.pairwise(smoothed)])
        idx, weight = [], []
        for sign, lo, hi in ((1.0, -600, 300), (-1.0, -200, 300)):  # bright blobs, dark blobs
            response = (sign * dog).max(axis=0)
            peaks = response == ndimage.maximum_filter(response, size=3, mode="nearest")
            found = np.argwhere(peaks & body & (work > lo) & (work < hi) & (response > blob_min_response_hu))
            scale = (sign * dog)[:, found[:, 0], found[:, 1], found[:, 2]].argmax(axis=0)
            shape = _blobness(np.stack(smoothed[:-1]), scale, found, sp_kji, sign)
            keep = shape >= min_blobness  # tubes (vessels) and sheets have one or two flat Hessian directions
            idx.append(found[keep])
            weight.append(response[tuple(found[keep].T)] * shape[keep])
        self.blob_idx = np.concatenate(idx)
        self.blob_weight = np.concatenate(weight).astype(float)

        grad = ndimage.gaussian_gradient_magnitude(work, 1.5 / sp_kji, mode="nearest")
        in_body = grad[body]
        edge = body & (grad >= np.quantile(in_body, edge_quantile))
        self.edge_idx = np.argwhere(edge)
        self.edge_weight = grad[edge].astype(float)
        self.body_idx = np.argwhere(body)
        logger.debug(
            "sampler: %d blob, %d edge, %d body candidates",
            len(self.blob_idx),
            len(self.edge_idx),
            len(self.body_idx),
        )

    def _draw(
        self, idx: np.ndarray, weight: np.ndarray | None, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        if n == 0 or len(idx) == 0:
            return np.empty((0, 3))
        p = None if weight is None else weight / weight.sum()
        replace = n > len(idx)
        pick = rng.choice(len(idx), size=n, replace=replace, p=p)
        return idx[pick] + rng.uniform(-0.45, 0.45, (n, 3))  # stays in the candidate's voxel

    def sample(self, n: int, rng: Any = None, kind: str = "mixed") -> np.ndarray:
        """``n`` random points ``(n, 3)`` in LPS mm. ``kind``: one of :data:`KIND_FRACTIONS`."""
        if kind not in KIND_FRACTIONS:
            raise InputError(f"unknown point kind {kind!r}; use one of {', '.join(KIND_FRACTIONS)}")
        rng = np.random.default_rng(rng)
        fractions = np.array(KIND_FRACTIONS[kind], dtype=float)
        if len(self.blob_idx) == 0:  # nothing blob-like: edges take the blob share
            fractions[1] += fractions[0]
            fractions[0] = 0.0
        n_blob, n_edge, n_body = rng.multinomial(int(n), fractions / fractions.sum())
        idx = np.concatenate(
            [
                self._draw(self.blob_idx, self.blob_weight, n_blob, rng),
                self._draw(self.edge_idx, self.edge_weight, n_edge, rng),
                self._draw(self.body_idx, None, n_body, rng),
            ]
        )
        idx = idx[rng.permutation(len(idx))]
        return self.work.index_kji_to_lps(idx).reshape(-1, 3)


def sample_training_points(
    volume: Volume, n: int, rng: Any = None, kind: str = "mixed", **kwargs: Any
) -> np.ndarray:
    """``n`` training points ``(n, 3)`` LPS mm on ``volume`` (see :class:`TrainingPointSampler` for kinds and
    keyword arguments). For many draws on one volume build the sampler once instead."""
    return TrainingPointSampler(volume, **kwargs).sample(n, rng, kind)

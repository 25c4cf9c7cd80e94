"""Fast self-supervised training items: synthetic pairs rendered only where the network looks.

:class:`CropPairDataset` is the fast form of :class:`~.dataset.SyntheticPairDataset`. Per item it draws one
synthetic pair with :func:`TLTTrackerLib.synthetic.plan_pair` (affine, smooth non-rigid motion, lesion growth,
follow-up grid, intensities: every random part, no image warped), then for each training point renders only
the box of the follow-up grid under that point's search crop (:func:`TLTTrackerLib.synthetic.render_followup`,
slice profile, gain, offset and noise included) and crops it as inference crops a real follow-up
(:func:`TLTTrackerLib.preprocessing.build_sample`). A crop of the rendered box is the crop of the full
follow-up (same grid, same values) up to the noise draw, at a few per cent of the cost
(``benchmarks/train_throughput.py``).

Sources: each entry of ``sources`` is a tuple of volume paths (or :class:`Volume` objects) in one frame of
reference. A one-volume source gives pairs of a scan with itself under synthetic motion; a several-volume
source (the contrast phases of one session, e.g. HCC-011 acq1/acq2/acq3) gives pairs whose baseline is one
phase and whose follow-up is made from another: real contrast change and real breathing between the
phases. Their correspondence is taken as the identity of the shared frame, so such labels carry the
phases' own motion (a few mm at the liver) as label noise.

Motion: ``nonrigid_rms_mm`` is drawn per pair log-uniformly from a range, which gives the heavy-tailed
start errors of DLS (median ≈ 8.7 mm, p90 ≈ 21 mm with DLT's affine start) rather than one scale;
``motion_stats`` measures the start-error distribution a setting gives.

Volumes and their point samplers are loaded once per worker process and kept (no eviction).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import PreprocessConfig
from ..errors import InputError
from ..geometry import Volume
from .dataset import Augment, Sample, _EpochDataset, _item_rng


def crop_box_grid(grid: Volume, center_lps_mm: np.ndarray, size_mm_zyx: Sequence[float],
                  margin_vox: int = 2) -> Volume | None:
    """The sub-grid of ``grid`` (same spacing and direction) covering an LPS-aligned box of ``size_mm_zyx``
    (z, y, x) around ``center_lps_mm`` plus ``margin_vox`` voxels, clipped to ``grid``; ``None`` when the box
    misses the grid. Its array is an int8 placeholder (geometry only)."""
    half = np.asarray(size_mm_zyx, dtype=float)[::-1] / 2.0
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
    corners = np.asarray(center_lps_mm, dtype=float) + signs * half
    idx = grid.lps_to_index_kji(corners)
    lo = np.maximum(np.floor(idx.min(axis=0)).astype(int) - margin_vox, 0)
    hi = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + margin_vox + 1, np.asarray(grid.shape_kji))
    if np.any(hi <= lo):
        return None
    origin = grid.index_kji_to_lps(lo[None].astype(float))[0]
    return Volume(np.zeros(tuple(hi - lo), np.int8), origin, grid.spacing_mm, grid.direction)


class CropPairDataset(_EpochDataset):
    """``n_items`` synthetic pairs per epoch, ``lesions_per_pair`` samples each (see the module doc).

    Args:
        sources: tuples of volumes sharing a frame (one volume: self-pairs; several: phase pairs).
        n_items: pairs per epoch.
        preprocess: crop sizes and spacing (as the model's checkpoint will use them).
        pair_config: base :class:`~TLTTrackerLib.synthetic.PairConfig`.
        nonrigid_rms_mm: ``(lo, hi)`` range, log-uniform per pair, replacing ``pair_config.nonrigid_rms_mm``.
        lesions_per_pair, radius_mm, point_kind: training points (as :class:`SyntheticPairDataset`).
        start_jitter_mm: the search starts at the pair's affine image of the point plus N(0, σ²) per axis.
        phase_pair_fraction: probability that a several-volume source gives a cross-phase pair.
        appearance: also change the follow-up's look per sample (:func:`change_appearance`: kernel, contrast).
        fixed: the same pairs every epoch (validation).
    """

    def __init__(
        self,
        sources: Sequence[Sequence[Any]],
        n_items: int,
        preprocess: PreprocessConfig,
        pair_config: Any = None,
        nonrigid_rms_mm: tuple[float, float] | None = None,
        lesions_per_pair: int = 4,
        radius_mm: tuple[float, float] = (3.0, 15.0),
        point_kind: str = "mixed",
        start_jitter_mm: float = 2.0,
        phase_pair_fraction: float = 0.75,
        appearance: bool = True,
        augment: Augment | None = None,
        seed: int = 0,
        fixed: bool = False,
    ) -> None:
        from ..synthetic import PairConfig

        self.sources = [tuple(s) for s in sources]
        if not self.sources or any(not s for s in self.sources):
            raise InputError("no volumes for synthetic training pairs")
        self.n_items = int(n_items)
        self.preprocess = preprocess
        self.pair_config = pair_config or PairConfig()
        self.nonrigid_rms_mm = nonrigid_rms_mm
        self.lesions_per_pair = int(lesions_per_pair)
        self.radius_mm = radius_mm
        self.point_kind = point_kind
        self.start_jitter_mm = float(start_jitter_mm)
        self.phase_pair_fraction = float(phase_pair_fraction)
        self.appearance = bool(appearance)
        self.augment = augment
        self.seed = seed
        self.fixed = fixed
        self._volumes: dict[tuple[int, int], Volume] = {}
        self._samplers: dict[tuple[int, int], Any] = {}

    def __len__(self) -> int:
        return self.n_items

    def _volume(self, s: int, v: int) -> Volume:
        if (s, v) not in self._volumes:
            from ..io import read_volume

            entry = self.sources[s][v]
            vol = entry if isinstance(entry, Volume) else read_volume(entry)
            self._volumes[(s, v)] = vol.with_array(np.maximum(vol.array, np.asarray(-1024, vol.array.dtype)))
        return self._volumes[(s, v)]

    def _sampler(self, s: int, v: int) -> Any:
        if (s, v) not in self._samplers:
            from ..sampling import TrainingPointSampler

            self._samplers[(s, v)] = TrainingPointSampler(self._volume(s, v))
        return self._samplers[(s, v)]

    def _config(self, rng: np.random.Generator) -> Any:
        if self.nonrigid_rms_mm is None:
            return self.pair_config
        lo, hi = self.nonrigid_rms_mm
        rms = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else float(lo)
        return dataclasses.replace(self.pair_config, nonrigid_rms_mm=rms)

    def draw_pair(self, index: int) -> tuple[Any, Volume, np.random.Generator, dict[str, Any]]:
        """(plan, follow-up source volume, the item's rng, meta) of item ``index`` (no voxels rendered)."""
        from ..lesions import Lesion
        from ..synthetic import plan_pair

        rng = _item_rng(self.seed, 0 if self.fixed else self.epoch, index, stream=3)
        s = int(rng.integers(len(self.sources)))
        n_vol = len(self.sources[s])
        b = int(rng.integers(n_vol))
        f = b
        if n_vol > 1 and rng.random() < self.phase_pair_fraction:
            f = int((b + rng.integers(1, n_vol)) % n_vol)
        points = self._sampler(s, b).sample(self.lesions_per_pair, rng, self.point_kind)
        radii = rng.uniform(*self.radius_mm, len(points))
        lesions = [Lesion(f"P{j}", p, float(r)) for j, (p, r) in enumerate(zip(points, radii))]
        plan = plan_pair(self._volume(s, b), lesions, rng, self._config(rng))
        meta = {"source_index": s, "baseline_volume": b, "followup_volume": f}
        return plan, self._volume(s, f), rng, meta

    def start_point(self, affine: Any, center_lps_mm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Where the search starts: the pair's affine image of a baseline centre plus N(0, σ²) per axis (mm)."""
        start = affine.apply(center_lps_mm)
        return start + rng.normal(0.0, self.start_jitter_mm, 3) if self.start_jitter_mm > 0 else start

    def __getitem__(self, index: int) -> list[Sample]:
        from ..synthetic import render_followup
        from ..transforms import AffineTransform

        plan, source, rng, meta = self.draw_pair(index)
        affine = AffineTransform.from_dict(plan.info["affine"])
        scale = float(abs(np.linalg.det(affine.matrix)) ** (1 / 3))
        samples = []
        for j, (b_les, f_les) in enumerate(zip(plan.baseline_lesions, plan.followup_lesions)):
            start = self.start_point(affine, b_les.center_lps_mm, rng)
            drawn = self.augment.draw(rng) if self.augment else (None, ())
            center = start if drawn[0] is None else start + drawn[0]
            box = crop_box_grid(plan.grid, center, self.preprocess.search_size_mm)
            followup = render_followup(plan, box, rng, source) if box is not None else _empty_like(plan.grid)
            if box is not None and self.appearance:
                followup = change_appearance(followup, rng)
            truth = (b_les.center_lps_mm, b_les.radius_mm), (f_les.center_lps_mm, f_les.radius_mm)
            samples.append(self._sample(rng, plan.baseline, followup, *truth, start, scale, drawn, item=int(index),
                                        sample=j, key=f"crop{index}:{j}", source="synthetic", **meta))
        return samples


def change_appearance(volume: Volume, rng: np.random.Generator) -> Volume:
    """Another reconstruction kernel and contrast timing, drawn per call: in-plane Gaussian blur (soft kernel,
    σ 0.5–1.2 mm) or unsharp masking (sharp kernel, amount 0.3–0.8) or neither, each 1/3; then soft tissue
    (0–300 HU) stretched about 40 HU by a gain of 0.8–1.25 faded in and out by ``sin(π h / 300)`` (continuous:
    enhancement stronger or weaker, air, fat and bone unchanged), with probability 1/2. Returns int16 HU on the
    same grid."""
    from scipy import ndimage

    arr = volume.array.astype(np.float32)
    kind = int(rng.integers(3))
    if kind < 2:
        sigma_mm = rng.uniform(0.5, 1.2)
        sigma = (0.0, sigma_mm / volume.spacing_mm[1], sigma_mm / volume.spacing_mm[0])  # (k, j, i)
        blurred = ndimage.gaussian_filter(arr, sigma, mode="nearest")
        arr = blurred if kind == 0 else arr + rng.uniform(0.3, 0.8) * (arr - blurred)
    if rng.random() < 0.5:
        gain = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
        soft = (arr > 0.0) & (arr < 300.0)
        h = arr[soft]
        arr[soft] = h + (gain - 1.0) * (h - 40.0) * np.sin(np.pi * h / 300.0)
    return volume.with_array(np.clip(np.rint(arr), -1024, 3071).astype(np.int16))


def _empty_like(grid: Volume) -> Volume:
    """A one-voxel air volume far outside ``grid``: every crop of it is padding."""
    far = grid.origin_lps_mm - 1e6
    return Volume(np.full((1, 1, 1), -1024, np.int16), far, grid.spacing_mm, grid.direction)


def motion_stats(dataset: CropPairDataset, n_items: int) -> dict[str, float]:
    """Distribution of the search start error ``|truth − start|`` (mm) over ``n_items`` pairs of
    ``dataset`` (no voxels rendered): median, p90, p99, max, and the fraction of truths inside the search
    window with an 8 mm margin."""
    from ..transforms import AffineTransform

    errors, inside = [], []
    half = np.asarray(dataset.preprocess.search_size_mm, dtype=float)[::-1] / 2.0 - 8.0
    for index in range(n_items):
        plan, _, rng, _ = dataset.draw_pair(index)
        affine = AffineTransform.from_dict(plan.info["affine"])
        for b_les, f_les in zip(plan.baseline_lesions, plan.followup_lesions):
            start = dataset.start_point(affine, b_les.center_lps_mm, rng)
            d = f_les.center_lps_mm - start
            errors.append(float(np.linalg.norm(d)))
            inside.append(bool(np.all(np.abs(d) <= half)))
    e = np.asarray(errors)
    return {"n": int(e.size), "median_mm": float(np.median(e)), "p90_mm": float(np.percentile(e, 90)),
            "p99_mm": float(np.percentile(e, 99)), "max_mm": float(e.max()),
            "inside_window_margin8": float(np.mean(inside))}

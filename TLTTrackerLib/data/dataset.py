"""Training data: supervised DLS pairs, self-supervised synthetic pairs, or a mix (torch ``Dataset``s).

Every item is a *list* of samples (one for a DLS pair, ``lesions_per_pair`` for a synthetic pair, whose
follow-up is expensive to make), each the dict of :func:`TLTTrackerLib.preprocessing.build_sample`;
:func:`collate_samples` flattens and stacks them into a named batch of tensors plus ``meta`` (a list of
dicts).

Randomness is a pure function of ``(seed, epoch, index)`` (``np.random.default_rng``), never of worker or
global state, so an interrupted run resumes exactly and every rank of a distributed run sees the same item
for the same index. Call ``set_epoch`` before each epoch (the training loop does).

- :class:`DLSPairDataset`: DeepLesion volumes written by ``tlt-tracker prepare-deeplesion`` + DLS records;
  start point from the json's ``predict target center`` (DLT's affine; ``prior_source="json_affine"``) or our
  own registration (``"affine"``, cached per volume pair).
- :class:`SyntheticPairDataset`: any CT volumes; random training points (blob/anatomical/uniform,
  :mod:`TLTTrackerLib.sampling`) play the lesions, :func:`TLTTrackerLib.synthetic.make_pair` makes the
  follow-up with exact ground truth (DLT-Mix style self-supervision); the start point is the pair's affine
  part (``start="affine"``, leaving the non-rigid motion to find) or the exact point, plus Gaussian jitter.
- :class:`MixedDataset`: draws from both with a ratio.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import PreprocessConfig
from ..errors import InputError
from ..geometry import Volume
from ..preprocessing import build_sample

logger = logging.getLogger(__name__)

Sample = dict[str, Any]


@dataclass(frozen=True)
class Augment:
    """Training augmentation: search-crop jitter (uniform ± mm per axis), intensity gain/offset per crop
    (uniform ±), random flips of both crops (each axis with probability 1/2)."""

    crop_jitter_mm: float = 8.0
    intensity_scale: float = 0.1
    intensity_shift: float = 0.05
    flip: bool = True

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, ...]]:
        offset = (
            rng.uniform(-self.crop_jitter_mm, self.crop_jitter_mm, 3) if self.crop_jitter_mm > 0 else None
        )
        flips = tuple(int(a) for a in np.nonzero(rng.random(3) < 0.5)[0]) if self.flip else ()
        return offset, flips  # type: ignore[return-value]

    def intensities(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for key in ("template_image", "search_image"):
            gain = 1.0 + rng.uniform(-self.intensity_scale, self.intensity_scale)
            shift = rng.uniform(-self.intensity_shift, self.intensity_shift)
            sample[key] = (sample[key] * np.float32(gain) + np.float32(shift)).astype(np.float32)
        return sample


class _Cache:
    """A tiny per-process LRU cache (volumes, samplers) keyed by path."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = make()
        self.items[key] = value
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


def _item_rng(seed: int, epoch: int, index: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(epoch), int(index), int(stream)])


class _EpochDataset(Dataset):
    epoch = 0
    preprocess: PreprocessConfig
    augment: Augment | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _sample(
        self,
        rng: np.random.Generator,
        baseline: Volume,
        followup: Volume,
        baseline_lesion: tuple[np.ndarray, float],
        followup_lesion: tuple[np.ndarray, float],
        start_lps_mm: np.ndarray,
        prior_scale: float,
        drawn: tuple[Any, tuple[int, ...]] | None = None,
        **meta: Any,
    ) -> Sample:
        """One training sample: ``baseline_lesion`` -> ``followup_lesion``, each ``(centre (3,) LPS mm,
        radius mm)``, searched around ``start_lps_mm``; augmented (search jitter, flips, intensities) when
        ``self.augment`` is set (``drawn``: its ``(offset, flips)`` already drawn); ``meta`` goes into
        ``sample["meta"]``."""
        offset, flips = drawn if drawn is not None else (self.augment.draw(rng) if self.augment else (None, ()))
        sample = build_sample(
            baseline,
            followup,
            baseline_lesion[0],
            baseline_lesion[1],
            start_lps_mm,
            self.preprocess,
            target_center_lps_mm=followup_lesion[0],
            target_radius_mm=followup_lesion[1],
            search_offset_mm=offset,
            prior_scale=prior_scale,
            flip_axes=flips,
        )
        if self.augment:
            self.augment.intensities(sample, rng)
        sample["meta"].update(meta)
        return sample


# ------------------------------------------------------------------------------------------- DLS
class DLSPairDataset(_EpochDataset):
    """One sample per DLS directed pair (``records`` from :func:`TLTTrackerLib.dls.load_dls`)."""

    def __init__(
        self,
        records: Sequence[Any],
        volume_dir: str | os.PathLike[str],
        preprocess: PreprocessConfig,
        prior_source: str = "json_affine",
        augment: Augment | None = None,
        seed: int = 0,
        registration_cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.records = list(records)
        self.volume_dir = Path(volume_dir)
        self.preprocess = preprocess
        self.prior_source = prior_source
        self.augment = augment
        self.seed = seed
        self.cache_dir = Path(registration_cache_dir) if registration_cache_dir else None
        self._volumes = _Cache(4)
        missing = sorted(
            {n for r in self.records for n in (r.source, r.target) if not (self.volume_dir / n).exists()}
        )
        if missing:
            raise InputError(
                f"{len(missing)} DLS volumes are missing from {self.volume_dir} (e.g. {missing[0]}); "
                "run tlt-tracker prepare-deeplesion first"
            )

    def __len__(self) -> int:
        return len(self.records)

    def _volume(self, name: str) -> Volume:
        from ..deeplesion import DL_DIRECTION
        from ..io import read_volume

        vol = self._volumes.get(name, lambda: read_volume(self.volume_dir / name))
        if not (np.allclose(vol.origin_lps_mm, 0) and np.allclose(vol.direction, DL_DIRECTION)):
            raise InputError(
                f"{name} does not have the DL_save_nifti geometry; write it with prepare-deeplesion"
            )
        return vol

    def _start(self, rec: Any, base: Volume, follow: Volume) -> tuple[np.ndarray, float]:
        from ..deeplesion import dls_center_to_lps

        src = dls_center_to_lps(rec.source_center_xyz, rec.source_spacing_mm)
        if self.prior_source == "json_affine":
            return dls_center_to_lps(rec.prediction("predict target center"), rec.target_spacing_mm), 1.0
        from ..registration import RegistrationResult, register_affine

        cached = self.cache_dir / f"{rec.source}__{rec.target}.json" if self.cache_dir else None
        if cached is not None and cached.exists():
            reg = RegistrationResult.from_dict(json.loads(cached.read_text(encoding="utf-8")))
        else:
            reg = register_affine(base, follow)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text(json.dumps(reg.to_dict()), encoding="utf-8")
        a = reg.baseline_to_followup
        return a.apply(src), float(abs(np.linalg.det(a.matrix)) ** (1 / 3))

    def __getitem__(self, index: int) -> list[Sample]:
        from ..deeplesion import dls_center_to_lps

        rec = self.records[index]
        base, follow = self._volume(rec.source), self._volume(rec.target)
        start, scale = self._start(rec, base, follow)
        rng = _item_rng(self.seed, self.epoch, index)
        source = (dls_center_to_lps(rec.source_center_xyz, rec.source_spacing_mm), rec.source_radius_mm)
        target = (dls_center_to_lps(rec.target_center_xyz, rec.target_spacing_mm), rec.target_radius_mm)
        return [self._sample(rng, base, follow, source, target, start, scale,
                             item=int(index), sample=0, key=rec.key, source="dls")]


# ------------------------------------------------------------------------------------------- synthetic
def find_volumes(entries: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files and folders (searched for NIfTI/NRRD/MHA volumes, not recursively) -> sorted volume paths."""
    from ..io import VOLUME_SUFFIXES

    out: list[Path] = []
    for entry in entries:
        p = Path(entry)
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.name.lower().endswith(VOLUME_SUFFIXES))
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"training volume or folder not found: {p}")
    if not out:
        raise InputError(f"no CT volumes (.nii.gz, .nrrd, .mha) found in {[str(e) for e in entries]}")
    return out


class SyntheticPairDataset(_EpochDataset):
    """``n_items`` synthetic pairs per epoch, each giving ``lesions_per_pair`` samples.

    Args:
        volumes: CT volumes (paths, or :class:`Volume` objects for tests).
        n_items: items (pairs) per epoch.
        lesions_per_pair: training points per pair.
        radius_mm: range of radii drawn for the points (sets the prior width).
        point_kind: :data:`TLTTrackerLib.sampling.KIND_FRACTIONS` key.
        start: "affine" (affine part of the synthetic map) or "exact"; plus N(0, ``start_jitter_mm``²) per
            axis.
        fixed: the same pairs every epoch (validation).
    """

    def __init__(
        self,
        volumes: Sequence[str | os.PathLike[str] | Volume],
        n_items: int,
        preprocess: PreprocessConfig,
        lesions_per_pair: int = 4,
        radius_mm: tuple[float, float] = (3.0, 15.0),
        point_kind: str = "mixed",
        start: str = "affine",
        start_jitter_mm: float = 2.0,
        augment: Augment | None = None,
        seed: int = 0,
        fixed: bool = False,
        pair_config: Any = None,
    ) -> None:
        if not volumes:
            raise InputError("no volumes for synthetic pairs")
        self.volumes = list(volumes)
        self.n_items = int(n_items)
        self.preprocess = preprocess
        self.lesions_per_pair = int(lesions_per_pair)
        self.radius_mm = radius_mm
        self.point_kind = point_kind
        self.start = start
        self.start_jitter_mm = start_jitter_mm
        self.augment = augment
        self.seed = seed
        self.fixed = fixed
        self.pair_config = pair_config
        self._cache = _Cache(4)

    def __len__(self) -> int:
        return self.n_items

    def _sampler(self, n: int) -> tuple[Volume, Any]:
        from ..io import read_volume
        from ..sampling import TrainingPointSampler

        entry = self.volumes[n]

        def make() -> tuple[Volume, Any]:
            vol = entry if isinstance(entry, Volume) else read_volume(entry)
            return vol, TrainingPointSampler(vol)

        return self._cache.get(f"{n}", make)

    def __getitem__(self, index: int) -> list[Sample]:
        from ..lesions import Lesion
        from ..synthetic import PairConfig, make_pair
        from ..transforms import AffineTransform

        rng = _item_rng(self.seed, 0 if self.fixed else self.epoch, index, stream=1)
        volume, sampler = self._sampler(int(rng.integers(len(self.volumes))))
        points = sampler.sample(self.lesions_per_pair, rng, self.point_kind)
        radii = rng.uniform(*self.radius_mm, len(points))
        lesions = [Lesion(f"P{j}", p, float(r)) for j, (p, r) in enumerate(zip(points, radii))]
        pair = make_pair(volume, lesions, rng, self.pair_config or PairConfig())
        affine = AffineTransform.from_dict(pair.info["affine"])
        scale = float(abs(np.linalg.det(affine.matrix)) ** (1 / 3))
        samples = []
        for j, (b_les, f_les) in enumerate(zip(pair.baseline_lesions, pair.followup_lesions)):
            start = affine.apply(b_les.center_lps_mm) if self.start == "affine" else f_les.center_lps_mm
            start = start + rng.normal(0.0, self.start_jitter_mm, 3) if self.start_jitter_mm > 0 else start
            truth = (b_les.center_lps_mm, b_les.radius_mm), (f_les.center_lps_mm, f_les.radius_mm)
            samples.append(self._sample(rng, pair.baseline, pair.followup, *truth, start, scale,
                                        item=int(index), sample=j, key=f"syn{index}:{j}", source="synthetic"))
        return samples


# ------------------------------------------------------------------------------------------- mix, batches
class MixedDataset(_EpochDataset):
    """``length`` items; item ``i`` comes from ``second`` with probability ``ratio`` (else ``first``), the
    member index drawn from ``(seed, epoch, i)``."""

    def __init__(self, first: _EpochDataset, second: _EpochDataset, ratio: float, length: int, seed: int = 0):
        self.first, self.second, self.ratio, self.length, self.seed = (
            first,
            second,
            float(ratio),
            int(length),
            seed,
        )

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.first.set_epoch(epoch)
        self.second.set_epoch(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> list[Sample]:
        rng = _item_rng(self.seed, self.epoch, index, stream=2)
        ds = self.second if rng.random() < self.ratio else self.first
        items = ds[int(rng.integers(len(ds)))]
        for s in items:
            s["meta"]["item"] = int(index)
        return items


def collate_samples(items: Sequence[Sequence[Sample]]) -> dict[str, Any]:
    """Dataset items (lists of samples) -> one batch: every array key stacked into a tensor ``(B, ...)``
    (B = total samples), ``meta`` a list of B dicts."""
    samples = [s for item in items for s in item]
    if not samples:
        raise ValueError("empty batch")
    batch: dict[str, Any] = {"meta": [s["meta"] for s in samples]}
    for key in samples[0]:
        if key != "meta":
            batch[key] = torch.from_numpy(np.stack([np.asarray(s[key], dtype=np.float32) for s in samples]))
    return batch


def to_device(
    batch: dict[str, Any], device: torch.device | str, non_blocking: bool = False
) -> dict[str, Any]:
    """Move every tensor of a batch to ``device`` (``meta`` untouched)."""
    return {k: v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v for k, v in batch.items()}

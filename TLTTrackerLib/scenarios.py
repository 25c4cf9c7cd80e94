"""Named, seeded hard-case scenarios for tracking benchmarks: real CTs, synthetic motion, exact truth.

Each scenario is a :class:`~TLTTrackerLib.synthetic.PairConfig` plus the real volumes (``../shared/data/ct``)
and the lesions placed on them; :func:`scenario_pairs` yields the synthetic pairs of any seeds.

| name | what changes (vs the default ``PairConfig``) | cases |
|---|---|---|
| ``standard`` | nothing (``benchmarks/accuracy.py`` before the suite) | LIDC-0001 nodules; POPI, TotalSeg (+painted) |
| ``large-motion`` | non-rigid RMS log-uniform per pair (start error ≈ DLS) | as standard |
| ``extreme`` | larger non-rigid RMS, longer correlation | as standard |
| ``abdomen`` | soft-tissue enhancement change ±45 HU (spatially modulated) | TotalSeg, HCC-011 soft-tissue targets |
| ``thick-slice`` | follow-up slices 5–8 mm | as standard |
| ``fov-edge`` | one lesion per pair 15 mm outside .. 5 mm inside a z edge of the follow-up | as standard |

Seeds: :data:`TUNING_SEEDS` (0–9) are for choosing methods and parameters, :data:`REPORT_SEEDS` (100–109) for
the figures in ``docs/benchmarks.md``; do not tune on the report seeds.

Lesions (all radii mm): LIDC's four nodules (reader consensus, r ≥ 1.5); on POPI and TotalSeg six anatomical
points, the blob points of :func:`~TLTTrackerLib.sampling.sample_training_points` (r = 5, ``P1..P6``), as
``benchmarks/accuracy.py`` always did (most are not lesions: homogeneous tissue, an organ's edge, a vertebra), and
in a painted copy of each volume six visible lesions (:mod:`~TLTTrackerLib.painted_lesions`: nodules ``L..``,
soft-tissue lesions ``S..``; case name ``<volume>+painted``, 30 % of the seeds);
for ``abdomen`` :func:`abdomen_lesions`: soft-tissue blobs (lymph-node sized, r = 5) and organ-interior points
(liver, spleen, kidney: homogeneous 40–200 HU tissue far from the body surface and from bone, r = 6) picked by
HU and blobness (no segmentation exists), plus on HCC-011 the hepatocellular carcinoma seen by eye on the
arterial phase (LPS (−96, −36, −159) mm, r ≈ 10 mm, not an annotation). The HCC-011 phases' own motion is
unknown, so abdomen pairs are made from one phase (acq1) with synthetic contrast change, not across phases.

Calibration of ``large-motion`` and ``extreme`` (start error = distance from the real
:func:`~TLTTrackerLib.registration.register_affine` estimate to the exact follow-up centre, over LIDC nodules
and 30 body points per pair on lidc_0001; ``benchmarks/_calibrate_motion.py``): see :data:`CALIBRATION`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from .errors import InputError
from .geometry import Volume
from .lesions import Lesion
from .synthetic import PairConfig, SyntheticPair, make_pair

TUNING_SEEDS: tuple[int, ...] = tuple(range(0, 10))
REPORT_SEEDS: tuple[int, ...] = tuple(range(100, 110))

#: the ``large-motion`` setting; import it for training data whose motion should look like DLS's
LARGE_MOTION_PAIR_CONFIG = PairConfig(nonrigid_rms_mm_range=(4.0, 55.0), nonrigid_correlation_mm=(50.0, 110.0))
EXTREME_PAIR_CONFIG = PairConfig(nonrigid_rms_mm_range=(28.0, 60.0), nonrigid_correlation_mm=(60.0, 110.0),
                                 nonrigid_max_gradient=0.85)
ABDOMEN_PAIR_CONFIG = PairConfig(contrast_change_hu_range=(-45.0, 45.0), contrast_spatial_variation=0.2)
THICK_SLICE_PAIR_CONFIG = PairConfig(slice_thickness_mm_choices=(5.0, 6.0, 7.0, 8.0))
FOV_EDGE_PAIR_CONFIG = PairConfig(fov_edge_offset_mm_range=(-15.0, 5.0))

#: measured start-error distributions (mm), filled from benchmarks/_calibrate_motion.py runs
CALIBRATION: dict[str, str] = {
    "target (DLS, DLT's affine start)": "median 8.7, p90 21, max ~40",
    "standard, lidc_0001_2mm, seeds 0-3 (108 points)": "median 7.3, p90 11.4, max 27.3",
    "rms (4, 45) mm, correlation (50, 100) mm, lidc_0001_2mm, seeds 0-9 (278 points)": "median 9.0, p90 19.8, max 32.7",
    "large-motion = rms (4, 55), correlation (50, 110), same": "median 9.6, p90 20.5, max 40.5",
    "rms (22, 50), correlation (60, 110), cap 0.85, lidc_0001_2mm, seeds 0-5 (152)": "median 14.7, p90 28.4, max 41.7",
}


@dataclass(frozen=True)
class CaseSpec:
    """One real volume of a scenario: ``volume`` (file stem under ``ct/``), ``lesions`` (``"lidc_nodules"``,
    ``"blobs"``, ``"painted"`` or ``"abdomen"``), ``seed_share`` (fraction of the seeds used for this case, at
    least one)."""

    volume: str
    lesions: str
    seed_share: float = 1.0

    @property
    def name(self) -> str:
        """The case's name in benchmark rows: the volume, with ``+painted`` for its painted-lesion copy."""
        return f"{self.volume}+painted" if self.lesions == "painted" else self.volume


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    config: PairConfig
    cases: tuple[CaseSpec, ...]


_CHEST = (CaseSpec("lidc_0001", "lidc_nodules"), CaseSpec("popi_ct00_2mm", "blobs", 0.25),
          CaseSpec("totalseg_example_ct_3mm", "blobs", 0.25), CaseSpec("popi_ct00_2mm", "painted", 0.3),
          CaseSpec("totalseg_example_ct_3mm", "painted", 0.3))
SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("standard", "today's setting (default PairConfig)", PairConfig(), _CHEST),
    Scenario("large-motion", "non-rigid motion calibrated to DLS start errors", LARGE_MOTION_PAIR_CONFIG, _CHEST),
    Scenario("extreme", "start error median >= 15 mm", EXTREME_PAIR_CONFIG, _CHEST),
    Scenario("abdomen", "soft-tissue targets, contrast change", ABDOMEN_PAIR_CONFIG,
             (CaseSpec("totalseg_example_ct_3mm", "abdomen"), CaseSpec("hcc011_acq1", "abdomen"))),
    Scenario("thick-slice", "5-8 mm follow-up slices", THICK_SLICE_PAIR_CONFIG, _CHEST),
    Scenario("fov-edge", "follow-up coverage cuts through or misses one lesion", FOV_EDGE_PAIR_CONFIG, _CHEST),
)}

HCC011_TUMOUR = Lesion("HCC", np.array([-96.0, -36.0, -159.0]), 10.0)


def pair_config(name: str) -> PairConfig:
    """The :class:`PairConfig` of scenario ``name``."""
    return scenario(name).config


def scenario(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise InputError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    return SCENARIOS[name]


def default_shared_dir() -> Path:
    """``$TLT_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    import os

    return Path(os.environ.get("TLT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@functools.lru_cache(maxsize=8)
def _case(shared_dir: str, volume: str, lesions: str) -> tuple[Volume, tuple[Lesion, ...]]:
    from .io import read_volume

    if lesions == "painted":  # the "blobs" case's volume and points P1..P6 (cached): painted away from them
        from .painted_lesions import paint_lesions

        plain, points = _case(shared_dir, volume, "blobs")
        painted, found = paint_lesions(plain, np.random.default_rng(0), avoid=[p.center_lps_mm for p in points])
        return painted, tuple(found)
    ct = Path(shared_dir) / "ct"
    path = ct / f"{volume}.nii.gz"
    if not path.exists():
        raise InputError(f"scenario volume not found: {path}; put ../shared/data beside the checkout or set "
                         "TLT_SHARED_DATA")
    vol = read_volume(path)
    if lesions == "lidc_nodules":
        stem = "_".join(volume.split("_")[:2])  # lidc_0001_2mm shares lidc_0001's nodules (same frame)
        nodules = json.loads((ct / f"{stem}_nodules.json").read_text(encoding="utf-8"))["nodules"]
        found = [Lesion(f"N{n + 1}", np.array(d["centre_mm"]), max(float(d["equiv_radius_mm"]), 1.5))
                 for n, d in enumerate(nodules)]
    elif lesions == "blobs":
        from .sampling import sample_training_points

        points = sample_training_points(vol, 6, np.random.default_rng(0), kind="blob")
        found = [Lesion(f"P{i + 1}", p, 5.0) for i, p in enumerate(points)]
    elif lesions == "abdomen":
        found = abdomen_lesions(vol, np.random.default_rng(0))
        if volume.startswith("hcc011"):
            found.append(HCC011_TUMOUR)
    else:
        raise InputError(f"unknown lesion kind {lesions!r}")
    return vol, tuple(found)


def case_lesions(volume: str, lesions: str, shared_dir: str | Path | None = None) -> tuple[Volume, list[Lesion]]:
    """The volume and lesions of one :class:`CaseSpec` (cached per process)."""
    vol, found = _case(str(shared_dir or default_shared_dir()), volume, lesions)
    return vol, list(found)


def scenario_pairs(
    name: str,
    seeds: Sequence[int] = REPORT_SEEDS,
    shared_dir: str | Path | None = None,
    skip: Callable[[str, int], bool] | None = None,
) -> Iterator[tuple[str, SyntheticPair]]:
    """``(case name, pair)`` for every case of scenario ``name`` and its share of ``seeds`` (``pair.info["seed"]``
    holds the seed); ``skip(case, seed)`` True skips a pair before it is made. The same (case, seed) gives the
    same pair in every scenario that shares the config."""
    sc = scenario(name)
    for case in sc.cases:
        n = max(1, int(round(len(seeds) * case.seed_share)))
        for seed in list(seeds)[:n]:
            if skip is not None and skip(case.name, int(seed)):
                continue
            vol, lesions = case_lesions(case.volume, case.lesions, shared_dir)
            yield case.name, make_pair(vol, lesions, int(seed), sc.config)


def abdomen_lesions(volume: Volume, rng: np.random.Generator, n_organ: int = 4, n_blob: int = 4,
                    min_separation_mm: float = 40.0) -> list[Lesion]:
    """Soft-tissue targets on an abdominal CT, by HU and blobness (no segmentation).

    - ``B1..``: soft-tissue blobs (r = 5 mm): DoG blob candidates of :class:`~.sampling.TrainingPointSampler`
      at −100..250 HU whose 6 mm neighbourhood averages −50..200 HU (lymph nodes, small lesions; not lung
      nodules);
    - ``O1..``: organ interiors (r = 6 mm): 4 mm-smoothed 40–200 HU, local standard deviation < 20 HU,
      ≥ 25 mm inside the body and ≥ 10 mm from bone (> 250 HU) (liver, spleen, kidney).

    Picked greedily at random, at least ``min_separation_mm`` apart and ≥ 20 mm from the z ends. Returns LPS mm.
    """
    from .sampling import TrainingPointSampler, tissue_maps

    sampler = TrainingPointSampler(volume, working_spacing_mm=3.0)
    work = sampler.work.with_array(sampler.work.array.astype(np.float32))
    arr = work.array
    mean4, mean6, std6, _, depth, bone_dist, z_ok = tissue_maps(work, 20.0)
    organ = z_ok & (mean4 > 40) & (mean4 < 200) & (std6 < 20) & (depth >= 25) & (bone_dist >= 10)
    blob_idx = sampler.blob_idx
    keep = [z_ok[tuple(i)] and -50 < mean6[tuple(i)] < 200 and -100 < arr[tuple(i)] < 250 and depth[tuple(i)] >= 10
            for i in blob_idx]
    blob_idx = blob_idx[np.asarray(keep, bool)] if len(blob_idx) else blob_idx
    picked: list[np.ndarray] = []
    out: list[Lesion] = []

    def pick(candidates: np.ndarray, n: int, prefix: str, radius: float) -> None:
        count = 0
        for c in candidates[rng.permutation(len(candidates))]:
            p = work.index_kji_to_lps(c.astype(float))
            if all(np.linalg.norm(p - q) >= min_separation_mm for q in picked):
                picked.append(p)
                count += 1
                out.append(Lesion(f"{prefix}{count}", p, radius))
                if count == n:
                    return

    pick(np.argwhere(organ), n_organ, "O", 6.0)
    pick(blob_idx, n_blob, "B", 5.0)
    return out


def with_config(name: str, **changes: object) -> Scenario:
    """Scenario ``name`` with some :class:`PairConfig` fields changed (for calibration and ablations)."""
    sc = scenario(name)
    return dataclasses.replace(sc, config=dataclasses.replace(sc.config, **changes))

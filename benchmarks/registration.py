"""Affine registration accuracy and speed on real CT resampled through known random affines.

For each CT in ``../shared/data/ct`` and each seed, a follow-up is made with the pair generator restricted to
a pure affine (rotation ±8° per axis, translation ±20 mm, scale ±6 %; no non-rigid motion, no lesion growth)
plus what real follow-ups also differ in: another slice thickness (1–5 mm) and in-plane spacing, a cropped
field of view and fresh noise. ``register_affine`` then runs on the pair; the error is the distance between the
registered and the exact image of each point: the LIDC nodule centres for LIDC-IDRI-0001 (full resolution and
2 mm), 200 random body points for the other volumes. Time = the whole ``register_affine`` call.

    python benchmarks/registration.py [--pairs 5] [--quick] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("TLT_SHARED_DATA", ROOT.parent / "shared" / "data"))

from TLTTrackerLib.io import read_volume  # noqa: E402
from TLTTrackerLib.lesions import Lesion  # noqa: E402
from TLTTrackerLib.registration import register_affine  # noqa: E402
from TLTTrackerLib.sampling import body_mask  # noqa: E402
from TLTTrackerLib.synthetic import PairConfig, make_pair  # noqa: E402

AFFINE_ONLY = PairConfig(nonrigid_rms_mm=0.0, growth_factor_range=(1.0, 1.0))
VOLUMES = ("lidc_0001.nii.gz", "lidc_0001_2mm.nii.gz", "popi_ct00_2mm.nii.gz", "totalseg_example_ct_3mm.nii.gz")


def points_for(name: str, volume) -> np.ndarray:
    if name.startswith("lidc"):
        nodules = json.loads((SHARED / "ct" / "lidc_0001_nodules.json").read_text(encoding="utf-8"))["nodules"]
        return np.array([d["centre_mm"] for d in nodules])
    idx = np.argwhere(body_mask(volume))
    pick = idx[np.random.default_rng(0).choice(len(idx), 200, replace=False)]
    return volume.index_kji_to_lps(pick.astype(float))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="one pair per volume")
    ap.add_argument("--json", help="write per-pair rows here")
    args = ap.parse_args()
    pairs = 1 if args.quick else args.pairs
    if not (SHARED / "ct").exists():
        print(f"shared data not found under {SHARED}; nothing to measure")
        return 0
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    rows = []
    print(f"{'volume':<32} {'n pairs':>7} {'median mm':>10} {'mean mm':>8} {'max mm':>7} {'s/pair':>7} {'max s':>6}")
    for name in VOLUMES:
        path = SHARED / "ct" / name
        if not path.exists():
            continue
        volume = read_volume(path)
        points = points_for(name, volume)
        lesions = [Lesion(f"P{i}", p, 3.0) for i, p in enumerate(points[:8])]  # keeps them inside the FOV
        errors, seconds = [], []
        for seed in range(pairs):
            pair = make_pair(volume, lesions, np.random.default_rng(1000 + seed), AFFINE_ONLY)
            t0 = time.perf_counter()
            result = register_affine(pair.baseline, pair.followup)
            seconds.append(time.perf_counter() - t0)
            inside = pair.followup.contains_lps(pair.baseline_to_followup.apply(points))
            err = np.linalg.norm(result.baseline_to_followup.apply(points[inside])
                                 - pair.baseline_to_followup.apply(points[inside]), axis=1)
            errors.extend(err.tolist())
            rows.append({"volume": name, "seed": 1000 + seed, "errors_mm": err.tolist(), "seconds": seconds[-1],
                         "metric": result.metric_value})
        e = np.array(errors)
        print(f"{name:<32} {pairs:>7} {np.median(e):>10.2f} {e.mean():>8.2f} {e.max():>7.2f} "
              f"{np.mean(seconds):>7.2f} {np.max(seconds):>6.2f}", flush=True)
    lidc = [x for r in rows if r["volume"] == "lidc_0001.nii.gz" for x in r["errors_mm"]]
    lidc_s = [r["seconds"] for r in rows if r["volume"] == "lidc_0001.nii.gz"]
    if lidc:
        print(f"\nLIDC-0001 full resolution: median nodule error {np.median(lidc):.2f} mm (target ≤ 1.5), "
              f"{np.mean(lidc_s):.2f} s per pair (target ≤ 5 s on 2 cores)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

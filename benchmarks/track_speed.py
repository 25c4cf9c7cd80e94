"""Speed of a whole ``tlt-tracker track`` call on a full-resolution pair (reading files and registration included).

The pair: ``../shared/data/ct/lidc_0001.nii.gz`` (512×512×133) and a synthetic follow-up made from it by
``make_pair`` on a 512×512 grid with more slices, both written as NIfTI. Lesions: the 4 LIDC nodules plus
blob-like points from ``sample_training_points`` to reach 3, 7 and 11 lesions. Each configuration runs
``--repeats`` times in-process through ``TLTTrackerLib.cli.main`` and reports the median wall time and the
CLI's own timing split; the per-extra-lesion cost is the slope between 3 and 11 lesions.

    python benchmarks/track_speed.py [--method auto] [--repeats 3] [--no-deformable] [--keep DIR]

``--keep DIR`` leaves the pair and the last lesion file in DIR (for timing ``tlt-tracker track`` as a fresh
command: ``/usr/bin/time -f "%e s %M KB" tlt-tracker -q track DIR/baseline.nii.gz DIR/followup.nii.gz
--lesions DIR/lesions.json --out DIR/r.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("TLT_SHARED_DATA", ROOT.parent / "shared" / "data"))

from TLTTrackerLib.cli import main as cli_main  # noqa: E402
from TLTTrackerLib.io import read_volume, write_volume  # noqa: E402
from TLTTrackerLib.lesions import Lesion, write_lesions  # noqa: E402
from TLTTrackerLib.sampling import sample_training_points  # noqa: E402
from TLTTrackerLib.synthetic import make_pair  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--counts", default="3,7,11")
    ap.add_argument("--no-deformable", action="store_true", help="track with --no-deformable (the method before §9)")
    ap.add_argument("--keep", default=None, help="write the pair here and leave it (default: a temporary folder)")
    args = ap.parse_args()
    src = SHARED / "ct" / "lidc_0001.nii.gz"
    if not src.exists():
        print(f"shared data not found under {SHARED}; nothing to measure")
        return 0
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    volume = read_volume(src)
    nodules = json.loads((SHARED / "ct" / "lidc_0001_nodules.json").read_text(encoding="utf-8"))["nodules"]
    lesions = [Lesion(f"N{i + 1}", np.array(d["centre_mm"]), max(float(d["equiv_radius_mm"]), 1.5))
               for i, d in enumerate(nodules)]
    extra = sample_training_points(volume, 12, np.random.default_rng(1), kind="blob")
    lesions += [Lesion(f"P{i + 1}", p, 5.0) for i, p in enumerate(extra)]
    pair = make_pair(volume, lesions, np.random.default_rng(0))
    with contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        write_volume(pair.baseline, d / "baseline.nii.gz")
        write_volume(pair.followup, d / "followup.nii.gz")
        print(f"baseline {pair.baseline.shape_kji[::-1]} voxels, follow-up {pair.followup.shape_kji[::-1]} voxels (x, y, z)")
        rows = []
        for count in (int(c) for c in args.counts.split(",")):
            write_lesions(pair.baseline_lesions[:count], d / "lesions.json")
            walls, timings = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                rc = cli_main(["-q", "track", str(d / "baseline.nii.gz"), str(d / "followup.nii.gz"), "--lesions",
                               str(d / "lesions.json"), "--out", str(d / "r.json"), "--method", args.method,
                               "--progress-json", *(["--no-deformable"] if args.no_deformable else [])])
                walls.append(time.perf_counter() - t0)
                assert rc == 0
                timings.append(json.loads((d / "r.json").read_text(encoding="utf-8"))["timing_s"])
            med = float(np.median(walls))
            split = {k: float(np.median([t[k] for t in timings])) for k in timings[0]}
            rows.append((count, med, split))
    print(f"\n{'lesions':>7} {'wall s':>7}  split (median)")
    for count, med, split in rows:
        print(f"{count:>7} {med:>7.2f}  " + ", ".join(f"{k} {v:.2f}" for k, v in split.items()))
    if len(rows) >= 2:
        slope = (rows[-1][1] - rows[0][1]) / (rows[-1][0] - rows[0][0])
        print(f"per extra lesion: {slope:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

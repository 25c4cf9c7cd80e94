"""Affine registration accuracy and speed on real CT resampled through known random affines.

For each CT in ``../shared/data/ct`` and each seed, the pair generator (``TLTTrackerLib.synthetic``),
restricted to a pure affine (rotation ±8° about each axis, translation ±20 mm, scale ±6 %; no non-rigid
motion, no lesion growth) makes a follow-up on a grid of its own: another in-plane spacing and slice thickness
(1-5 mm, box slice profile), a cropped field of view, a slight gain/offset change and fresh noise (5-20 HU).
Two variants:

- ``standard``: follow-up z field of view 60-95 % of the baseline's, header geometry kept;
- ``deeplesion``: follow-up z field of view 30-55 % of the baseline's, and both origins set to 0 as in
  DeepLesion's NIfTI files, so the headers say nothing about where the scans overlap (shifts up to ~200 mm).

``register_affine`` runs on each pair; the error is the distance between the registered and the exact image
of each point (points whose exact image lies inside the follow-up): the LIDC-IDRI-0001 nodule centres
(``lidc_0001_nodules.json``) for the LIDC volumes, a 25 mm grid of body points for the others. Time = the
whole ``register_affine`` call (wall and CPU), SimpleITK limited to ``--threads`` threads (2 by default, the
target machine). Real images, synthetic motion.

    python benchmarks/registration.py [--pairs 4] [--quick] [--json OUT] [--metric meansquares]
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

from TLTTrackerLib.geometry import Volume  # noqa: E402
from TLTTrackerLib.io import read_volume  # noqa: E402
from TLTTrackerLib.lesions import Lesion  # noqa: E402
from TLTTrackerLib.registration import METRICS, register_affine  # noqa: E402
from TLTTrackerLib.sampling import body_mask  # noqa: E402
from TLTTrackerLib.synthetic import PairConfig, make_pair  # noqa: E402

VOLUMES = (
    "lidc_0001.nii.gz",
    "lidc_0001_2mm.nii.gz",
    "popi_ct00_2mm.nii.gz",
    "totalseg_example_ct_3mm.nii.gz",
)
VARIANTS = {
    "standard": PairConfig(nonrigid_rms_mm=0.0, growth_factor_range=(1.0, 1.0)),
    "deeplesion": PairConfig(
        nonrigid_rms_mm=0.0, growth_factor_range=(1.0, 1.0), fov_z_fraction_range=(0.3, 0.55)
    ),
}
GRID_MM = 25.0


def points_for(name: str, volume: Volume) -> np.ndarray:
    """``(N, 3)`` LPS mm: the nodule centres (LIDC) or a regular grid of body points."""
    if name.startswith("lidc"):
        nodules = json.loads((SHARED / "ct" / "lidc_0001_nodules.json").read_text(encoding="utf-8"))[
            "nodules"
        ]
        return np.array([d["centre_mm"] for d in nodules])
    mask = body_mask(volume)
    step = np.maximum(1, np.round(GRID_MM / volume.spacing_mm[::-1]).astype(int))  # (k, j, i)
    grid = np.stack(
        np.meshgrid(*(np.arange(s // 2, n, s) for s, n in zip(step, mask.shape, strict=True)), indexing="ij"),
        -1,
    )
    grid = grid.reshape(-1, 3)
    return volume.index_kji_to_lps(grid[mask[tuple(grid.T)]].astype(float))


def one_pair(volume: Volume, points: np.ndarray, variant: str, seed: int, args: argparse.Namespace) -> dict:
    """Make one pair, register it, return the errors at ``points`` and the timings."""
    rng = np.random.default_rng(seed)
    n_keep = (
        2 if variant == "deeplesion" else 8
    )  # kept inside the follow-up; two only, so that its z range is short
    keep = points[rng.choice(len(points), min(n_keep, len(points)), replace=False)]
    pair = make_pair(volume, [Lesion(f"P{i}", p, 3.0) for i, p in enumerate(keep)], rng, VARIANTS[variant])
    baseline, followup = pair.baseline, pair.followup
    truth = pair.baseline_to_followup.apply(points)
    inside = followup.contains_lps(truth)
    pts, truth = points[inside], truth[inside]
    if variant == "deeplesion":
        pts, truth = pts - baseline.origin_lps_mm, truth - followup.origin_lps_mm
        baseline = Volume(baseline.array, np.zeros(3), baseline.spacing_mm, baseline.direction)
        followup = Volume(followup.array, np.zeros(3), followup.spacing_mm, followup.direction)
    t0, c0 = time.perf_counter(), time.process_time()
    result = register_affine(baseline, followup, metric=args.metric)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    err = np.linalg.norm(result.baseline_to_followup.apply(pts) - truth, axis=1)
    return {
        "seed": seed,
        "errors_mm": err.tolist(),
        "seconds": wall,
        "cpu_seconds": cpu,
        "metric_value": result.metric_value,
        "correlation": result.info["correlation"],
        "followup_shape_kji": list(followup.shape_kji),
        "followup_spacing_mm": followup.spacing_mm.tolist(),
    }


def _line(variant: str, name: str, rows: list[dict]) -> str:
    e = np.concatenate([r["errors_mm"] for r in rows])
    s = np.array([r["seconds"] for r in rows])
    c = np.array([r["cpu_seconds"] for r in rows])
    return (
        f"{variant:<11} {name:<31} {len(rows):>5} {len(e):>6} {np.median(e):>9.2f} {e.mean():>8.2f} "
        f"{e.max():>7.2f} {s.mean():>7.2f} {s.max():>6.2f} {c.mean():>6.2f}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=4, help="pairs per volume and variant (default 4)")
    ap.add_argument("--quick", action="store_true", help="one pair per volume and variant")
    ap.add_argument("--variants", default="standard,deeplesion", help="comma-separated: standard, deeplesion")
    ap.add_argument("--metric", default="meansquares", choices=METRICS)
    ap.add_argument(
        "--threads", type=int, default=2, help="SimpleITK threads (default 2, the target machine)"
    )
    ap.add_argument("--json", help="write per-pair rows here")
    args = ap.parse_args()
    pairs = 1 if args.quick else args.pairs
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := set(variants) - set(VARIANTS):
        ap.error(f"unknown variants {sorted(unknown)}; use {', '.join(VARIANTS)}")
    if not (SHARED / "ct").exists():
        print(f"shared data not found under {SHARED}; nothing to measure")
        return 0
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores ({usable} usable), "
        f"python {platform.python_version()}, SimpleITK {sitk.Version.VersionString()}, "
        f"{args.threads} threads, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    print(
        f"metric {args.metric}; {pairs} pair(s) per volume and variant; "
        "s = wall seconds per register_affine call\n"
    )
    print(
        f"{'variant':<11} {'volume':<31} {'pairs':>5} {'points':>6} {'median mm':>9} {'mean mm':>8} "
        f"{'max mm':>7} {'s/pair':>7} {'max s':>6} {'cpu s':>6}"
    )
    rows: list[dict] = []
    volumes = {name: read_volume(SHARED / "ct" / name) for name in VOLUMES if (SHARED / "ct" / name).exists()}
    points = {name: points_for(name, volume) for name, volume in volumes.items()}
    for variant in variants:
        for name, volume in volumes.items():
            mine = [one_pair(volume, points[name], variant, 1000 + s, args) for s in range(pairs)]
            for row in mine:
                row.update(variant=variant, volume=name)
            rows.extend(mine)
            print(_line(variant, name, mine), flush=True)
        print(_line(variant, "all", [r for r in rows if r["variant"] == variant]), flush=True)
    full = [r for r in rows if r["volume"] == "lidc_0001.nii.gz" and r["variant"] == "standard"]
    if full:
        e = np.concatenate([r["errors_mm"] for r in full])
        s = [r["seconds"] for r in full]
        print(
            "\nLIDC-0001 full resolution (standard): "
            f"median nodule error {np.median(e):.2f} mm (target <= 1.5), "
            f"{np.mean(s):.2f} s per pair, max {np.max(s):.2f} s (target <= 5 s on 2 cores)"
        )
    print(
        f"load average {os.getloadavg()[0]:.1f} at the end (other processes on these cores slow the timings)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

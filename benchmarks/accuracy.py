"""Tracking accuracy on real CT with known synthetic motion (issue: LesionTracker accuracy).

Pairs: ``../shared/data/ct/lidc_0001.nii.gz`` (full resolution) with its LIDC nodules as lesions, each pair made
by ``TLTTrackerLib.synthetic.make_pair`` (affine, organ-scale non-rigid motion, lesion growth/shrinkage, another
slice thickness and field of view, noise), seeds 0..N-1. Real images, synthetic motion. Optionally
``--other-cts`` adds pairs from the other CTs in ``../shared/data/ct`` with blob-like points from
``sample_training_points`` as lesions (no annotations there; reported separately).

Scored as DLT scores: error = distance to the exact follow-up centre (mm), CPM@10mm counts error ≤ min(r, 10),
CPM@Radius counts error < r, with r the follow-up lesion radius; MED = mean ± std.

    python benchmarks/accuracy.py [--pairs 20] [--methods affine,refine,auto] [--png docs/accuracy.png] [--json F]
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
from TLTTrackerLib.metrics import summarise  # noqa: E402
from TLTTrackerLib.synthetic import make_pair  # noqa: E402
from TLTTrackerLib.tracker import LesionTracker  # noqa: E402


def lidc_case():
    volume = read_volume(SHARED / "ct" / "lidc_0001.nii.gz")
    nodules = json.loads((SHARED / "ct" / "lidc_0001_nodules.json").read_text(encoding="utf-8"))["nodules"]
    lesions = [Lesion(f"N{n + 1}", np.array(d["centre_mm"]), max(float(d["equiv_radius_mm"]), 1.5))
               for n, d in enumerate(nodules)]
    return "lidc_0001", volume, lesions


def other_cases(n_points: int, seed: int):
    from TLTTrackerLib.sampling import sample_training_points

    for name in ("popi_ct00_2mm", "totalseg_example_ct_3mm"):
        path = SHARED / "ct" / f"{name}.nii.gz"
        if not path.exists():
            continue
        volume = read_volume(path)
        points = sample_training_points(volume, n_points, np.random.default_rng(seed), kind="blob")
        yield name, volume, [Lesion(f"P{i + 1}", p, 5.0) for i, p in enumerate(points)]


def run_case(name, volume, lesions, seeds, methods, rows):
    for seed in seeds:
        pair = make_pair(volume, lesions, np.random.default_rng(seed))
        truth = {les.id: les for les in pair.followup_lesions}
        tracker = LesionTracker(method="affine")
        t0 = time.perf_counter()
        tracker.set_pair(pair.baseline, pair.followup)
        reg_s = time.perf_counter() - t0
        for method in methods:
            tracker.method = method
            t1 = time.perf_counter()
            results = tracker.track(pair.baseline_lesions)
            seconds = reg_s + time.perf_counter() - t1
            for r in results:
                err = r.followup_center_lps_mm - truth[r.id].center_lps_mm
                rows.append({"case": name, "seed": seed, "method": method, "id": r.id,
                             "radius_mm": truth[r.id].radius_mm, "error_mm": float(np.linalg.norm(err)),
                             "error_xyz_mm": err.tolist(), "confidence": r.confidence, "flags": list(r.flags),
                             "extra": {k: v for k, v in r.extra.items() if isinstance(v, (int, float, list))},
                             "seconds_pair": seconds})
        print(f"  {name} seed {seed}: " + "  ".join(
            f"{m} {np.mean([x['error_mm'] for x in rows if x['seed'] == seed and x['method'] == m and x['case'] == name]):.2f}"
            for m in methods) + " mm (mean)", flush=True)


def table(rows, methods, case_filter):
    lines = [f"{'method':<8} {'n':>4} {'CPM@10mm':>9} {'CPM@Radius':>11} {'MED mm':>14} {'median mm':>10} {'s/pair':>7}"]
    for m in methods:
        sel = [r for r in rows if r["method"] == m and case_filter(r["case"])]
        if not sel:
            continue
        s = summarise(np.array([r["error_mm"] for r in sel]), np.array([r["radius_mm"] for r in sel]))
        sec = np.mean(list({(r["case"], r["seed"]): r["seconds_pair"] for r in sel}.values()))
        lines.append(f"{m:<8} {s['n']:>4} {s['cpm_10mm']:>9.3f} {s['cpm_radius']:>11.3f} "
                     f"{s['med_mm']:>6.2f} ± {s['med_std_mm']:<5.2f} {s['median_mm']:>10.2f} {sec:>7.2f}")
    return "\n".join(lines)


def confidence_report(rows, methods, case_filter):
    """How well the confidence separates hits (error ≤ min(r, 10 mm)) from misses: ROC AUC (probability that a
    random hit scores higher than a random miss), and how many misses and hits carry a flag."""
    lines = []
    for m in methods:
        sel = [r for r in rows if r["method"] == m and case_filter(r["case"])]
        hit = np.array([r["error_mm"] <= min(r["radius_mm"], 10.0) for r in sel], bool)
        conf = np.array([r["confidence"] for r in sel])
        flagged = np.array([bool(r["flags"]) for r in sel], bool)
        if m == "affine" or hit.all() or not hit.any():
            continue
        greater = (conf[hit][:, None] > conf[~hit][None, :]).mean()
        ties = (conf[hit][:, None] == conf[~hit][None, :]).mean()
        lines.append(f"{m:<8} confidence AUC hit/miss {greater + 0.5 * ties:.2f}; flagged: {flagged[~hit].sum()} of "
                     f"{(~hit).sum()} misses, {flagged[hit].sum()} of {hit.sum()} hits; median confidence hits "
                     f"{np.median(conf[hit]):.2f}, misses {np.median(conf[~hit]):.2f}")
    return "\n".join(lines)


def plot(rows, methods, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.logspace(-1.5, 1.7, 40)
    for m in methods:
        e = [r["error_mm"] for r in rows if r["method"] == m]
        ax.hist(np.clip(e, bins[0], bins[-1]), bins=bins, histtype="step", linewidth=2, label=f"{m} (n={len(e)})")
    ax.set_xscale("log")
    ax.set_xlabel("centre error (mm)")
    ax.set_ylabel("lesions")
    ax.set_title("Tracking error on real CT with synthetic motion")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--methods", default="affine,refine,auto")
    ap.add_argument("--other-cts", action="store_true", help="also pairs from POPI and TotalSegmentator CTs")
    ap.add_argument("--png", default=None, help="error-distribution plot")
    ap.add_argument("--json", default=None, help="per-lesion rows")
    args = ap.parse_args()
    if not (SHARED / "ct" / "lidc_0001.nii.gz").exists():
        print(f"shared data not found under {SHARED}; nothing to measure")
        return 0
    methods = args.methods.split(",")
    seeds = list(range(args.first_seed, args.first_seed + args.pairs))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    rows: list[dict] = []
    run_case(*lidc_case(), seeds, methods, rows)
    print("\nLIDC-IDRI-0001 nodules, synthetic follow-ups")
    print(table(rows, methods, lambda c: c == "lidc_0001"))
    print(confidence_report(rows, methods, lambda c: c == "lidc_0001"))
    if args.other_cts:
        for case in other_cases(6, 0):
            run_case(*case, seeds[: max(1, len(seeds) // 4)], methods, rows)
        print("\nOther CTs (POPI, TotalSegmentator), sampled blob points, r = 5 mm")
        print(table(rows, methods, lambda c: c != "lidc_0001"))
        print(confidence_report(rows, methods, lambda c: c != "lidc_0001"))
    if args.png:
        plot(rows, methods, args.png)
        print(f"wrote {args.png}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

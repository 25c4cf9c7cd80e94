"""Run the whole pipeline on built-in data: a procedural CT-like phantom and a synthetic follow-up with exact
ground truth (affine + organ-scale non-rigid motion, lesion growth, another slice thickness and field of view,
noise). Registers, tracks every lesion with the affine-only method and with --method (default auto), prints a
table of errors against the truth, and writes the scans, the lesion list, the results and a PNG to --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

NAME = "demo"
HELP = "track lesions on a built-in phantom pair and compare methods against ground truth"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..tracker import METHODS

    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--seed", type=int, default=7, help="random seed for the phantom and the follow-up")
    p.add_argument("--method", default="auto", choices=[*METHODS, "auto"], help="method compared with affine")


def run(args: argparse.Namespace) -> int:
    from ..io import write_volume
    from ..lesions import write_lesions
    from ..metrics import summarise
    from ..phantom import make_phantom
    from ..render import render_tracking_png
    from ..results import results_to_dict, write_results
    from ..synthetic import make_pair
    from ..tracker import LesionTracker

    from ._outputs import Target, check_outputs

    out = Path(args.out)
    check_outputs({}, [Target("--out", out, "folder")])
    rng = np.random.default_rng(args.seed)
    print(f"making a phantom and a synthetic follow-up (seed {args.seed}) ...")
    volume, lesions = make_phantom(rng)
    pair = make_pair(volume, lesions, rng)
    write_volume(pair.baseline, out / "baseline.nii.gz")
    write_volume(pair.followup, out / "followup.nii.gz")
    write_lesions(pair.baseline_lesions, out / "lesions.json")
    write_lesions(pair.followup_lesions, out / "followup_truth.json")
    truth = {les.id: les.center_lps_mm for les in pair.followup_lesions}
    radius = {les.id: les.radius_mm for les in pair.followup_lesions}

    tracker = LesionTracker(method="affine")
    registration = tracker.set_pair(pair.baseline, pair.followup)
    print(f"registration: {registration.seconds:.2f} s, metric {registration.metric_value:.4f}")
    compared = {}
    for method in dict.fromkeys(["affine", args.method]):
        tracker.method = method
        results = tracker.track(pair.baseline_lesions)
        compared[tracker.resolved_method() if method == "auto" else method] = results
        write_results(results_to_dict(results, registration, dict(tracker.timing_s)), out / f"results_{method}.json")

    names = list(compared)
    print()
    print(f"{'lesion':<7}{'radius mm':>10}" + "".join(f"{'error ' + m + ' mm':>18}" for m in names) + f"{'confidence':>12}")
    for n, les in enumerate(pair.baseline_lesions):
        errs = [np.linalg.norm(compared[m][n].followup_center_lps_mm - truth[les.id]) for m in names]
        print(f"{les.id:<7}{radius[les.id]:>10.1f}" + "".join(f"{e:>18.2f}" for e in errs)
              + f"{compared[names[-1]][n].confidence:>12.2f}")
    print()
    for m in names:
        errors = np.array([np.linalg.norm(r.followup_center_lps_mm - truth[r.id]) for r in compared[m]])
        s = summarise(errors, np.array([radius[r.id] for r in compared[m]]))
        print(f"{m:<8} CPM@10mm {s['cpm_10mm']:.2f}  CPM@Radius {s['cpm_radius']:.2f}  "
              f"MED {s['med_mm']:.2f} ± {s['med_std_mm']:.2f} mm")
    png = render_tracking_png(pair.baseline, pair.followup, compared[names[-1]], out / "demo.png", truth_lps_mm=truth)
    print(f"\nwrote {out}/: baseline.nii.gz, followup.nii.gz, lesions.json, results_*.json, {png.name}")
    print(f"try: tlt-tracker track {out}/baseline.nii.gz {out}/followup.nii.gz --lesions {out}/lesions.json "
          f"--out {out}/results.json")
    return 0

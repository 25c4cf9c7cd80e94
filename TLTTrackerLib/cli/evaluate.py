"""Score lesion-tracking predictions on the DLS benchmark exactly as DLT's evaluation.py does.

PREDICTIONS.json is a DLS-format file whose records carry a prediction field (default "predict target center",
[x, y, z] voxels of the target scan). Ground truth comes from the same records, or from --ground-truth (matched by
source, target and source centre). Primary metrics follow DLT: CPM@10mm (error ≤ min(r, 10 mm)), CPM@Radius
(error < r), MED ± std and per-axis MED in mm, r = max target RECIST diameter / 2 × spacing. A secondary section
gives the official TLT code's definitions, which are far more lenient; do not compare the two.

  tlt-tracker evaluate DLTMix.json
  tlt-tracker evaluate test.json --field "predict target center" --json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

NAME = "evaluate"
HELP = "score DLS-format predictions (CPM@10mm, CPM@Radius, MED) as DLT does"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("predictions", help="DLS-format JSON with a prediction field per record")
    p.add_argument("--field", default="predict target center", help="prediction field (default: %(default)s)")
    p.add_argument("--ground-truth", help="DLS annotation file with the true target centres (default: the same file)")
    p.add_argument("--compare", help="second predictions file (same pairs): paired t-test on the errors")
    p.add_argument("--compare-field", help="prediction field of --compare (default: --field)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def score(predictions_path: str, field: str, ground_truth: str | None = None) -> tuple[dict, np.ndarray]:
    """(summary dict with DLT and TLT-code figures, per-pair errors in mm)."""
    from ..dls import load_dls, match_ground_truth
    from ..metrics import errors_mm, summarise, tlt_code_summary

    preds = load_dls(predictions_path)
    truth = match_ground_truth(preds, load_dls(ground_truth)) if ground_truth else preds
    pred_xyz = np.stack([r.prediction(field) for r in preds])
    gt_xyz = np.stack([t.target_center_xyz for t in truth])
    spacing = np.stack([t.target_spacing_mm for t in truth])
    err, axis_err = errors_mm(pred_xyz, gt_xyz, spacing)
    radii = np.array([t.target_radius_mm for t in truth])
    summary = summarise(err, radii, axis_err)
    # The TLT code measures errors in voxels of 1 mm isotropic crops, i.e. in mm; lesion_size stays in voxels.
    summary["secondary_tlt_code"] = tlt_code_summary(err, np.array([t.target_box_diagonal for t in truth]))
    summary["field"] = field
    return summary, err


def run(args: argparse.Namespace) -> int:
    from ..metrics import paired_t_test

    summary, err = score(args.predictions, args.field, args.ground_truth)
    if args.compare:
        _, err_b = score(args.compare, args.compare_field or args.field, args.ground_truth)
        summary["paired_t_test"] = paired_t_test(err, err_b)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    s = summary
    print(f"DLS evaluation of {args.predictions} (field {args.field!r}), n = {s['n']}")
    print("Primary (DLT evaluation.py definitions)")
    print(f"  {'CPM@10mm':>9} {'CPM@Radius':>11} {'MED (mm)':>15} {'MEDx':>6} {'MEDy':>6} {'MEDz':>6}")
    print(f"  {100 * s['cpm_10mm']:>9.2f} {100 * s['cpm_radius']:>11.2f} {s['med_mm']:>7.2f} ± {s['med_std_mm']:<5.2f}"
          f" {s['med_x_mm']:>6.2f} {s['med_y_mm']:>6.2f} {s['med_z_mm']:>6.2f}")
    t = s["secondary_tlt_code"]
    print("Secondary (official TLT code definitions: box diagonal, voxels; not comparable with the above)")
    print(f"  CPM@10mm {100 * t['cpm_10mm']:.2f}  CPM@R {100 * t['cpm_radius']:.2f}")
    if "paired_t_test" in s:
        p = s["paired_t_test"]
        print(f"Paired t-test vs {args.compare}: mean difference {p['mean_difference_mm']:+.2f} mm, "
              f"t = {p['t']:.3f}, p = {p['p']:.3g} (n = {p['n']})")
    return 0

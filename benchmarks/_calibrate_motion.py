"""Start-error distribution of a motion setting: how far the real affine registration leaves lesions.

For each seed: ``make_pair`` with the scenario's PairConfig (optionally changed), ``register_affine``, and
the distance between the registered image and the exact image ``F(p)`` of the LIDC nodules plus ``--points``
body points per pair (fixed per volume) that land inside the follow-up. Prints median, p90, max.

    python benchmarks/_calibrate_motion.py --scenario large-motion --seeds 0-5 [--volume lidc_0001_2mm]
        [--set nonrigid_rms_mm_range=6,40 ...]
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from TLTTrackerLib import scenarios  # noqa: E402
from TLTTrackerLib.registration import register_affine  # noqa: E402
from TLTTrackerLib.sampling import sample_training_points  # noqa: E402
from TLTTrackerLib.synthetic import make_pair  # noqa: E402


def parse_seeds(text: str) -> list[int]:
    """``"0-9"`` or ``"100-109"`` or ``"1,4,7"`` -> list of ints."""
    out: list[int] = []
    for part in text.split(","):
        if "-" in part[1:]:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    return out


def start_errors(config, volume_name: str, seeds, n_points: int) -> np.ndarray:
    vol, lesions = scenarios.case_lesions(volume_name, "lidc_nodules" if volume_name.startswith("lidc") else "blobs")
    points = sample_training_points(vol, n_points, np.random.default_rng(1), kind="uniform")
    errs = []
    for seed in seeds:
        t0 = time.perf_counter()
        pair = make_pair(vol, lesions, seed, config)
        reg = register_affine(pair.baseline, pair.followup)
        p = np.concatenate([np.array([les.center_lps_mm for les in lesions]), points])
        truth = pair.baseline_to_followup.apply(p)
        inside = pair.followup.contains_lps(truth)
        e = np.linalg.norm(reg.baseline_to_followup.apply(p[inside]) - truth[inside], axis=1)
        errs.append(e)
        print(f"  seed {seed}: rms {pair.info['nonrigid_rms_mm']:.1f} mm, median {np.median(e):.1f}, "
              f"max {e.max():.1f} mm ({time.perf_counter() - t0:.1f} s)", flush=True)
    return np.concatenate(errs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="large-motion")
    ap.add_argument("--seeds", default="0-5")
    ap.add_argument("--volume", default="lidc_0001_2mm")
    ap.add_argument("--points", type=int, default=30)
    ap.add_argument("--set", action="append", default=[], help="PairConfig field=value (Python literal)")
    args = ap.parse_args()
    changes = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in args.set)}
    config = scenarios.with_config(args.scenario, **changes).config
    e = start_errors(config, args.volume, parse_seeds(args.seeds), args.points)
    print(f"{args.scenario} {changes or ''} on {args.volume}: n {e.size}, median {np.median(e):.1f}, "
          f"p90 {np.percentile(e, 90):.1f}, max {e.max():.1f} mm, mean {e.mean():.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

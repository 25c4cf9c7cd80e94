"""Pictures of a scenario case's targets on its baseline CT: what each "lesion" of the suite looks like.

One row per target: the axial (x–y) plane in a lung window (−1000..300 HU), the axial and the coronal (x–z) plane
in a soft-tissue window (−160..240 HU), ±30 mm around the target's centre (LPS mm; the red circle is its radius).
It shows why the POPI and TotalSegmentator anatomical points (``P1..P6``) are not lesions and what the painted
lesions (``L..``, ``S..``, :mod:`TLTTrackerLib.painted_lesions`) look like (``docs/benchmarks.md`` §23).

    python benchmarks/target_images.py popi_ct00_2mm blobs docs/images/targets_popi_points.png
    python benchmarks/target_images.py popi_ct00_2mm painted docs/images/targets_popi_painted.png
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("TLT_SHARED_DATA", ROOT.parent / "shared" / "data"))

from TLTTrackerLib import scenarios  # noqa: E402

HALF_MM = 30.0
VIEWS = (("axial, lung window", (0, 1), (-1000, 300)), ("axial, soft-tissue window", (0, 1), (-160, 240)),
         ("coronal, soft-tissue window", (0, 2), (-160, 240)))


def plane(volume, centre: np.ndarray, axes: tuple[int, int]) -> np.ndarray:
    """The image on the plane through ``centre`` spanned by LPS axes ``axes``, 0.5 mm pixels, (u, v) order."""
    from scipy import ndimage

    r = np.arange(-HALF_MM, HALF_MM + 0.25, 0.5)
    pts = np.zeros((r.size, r.size, 3)) + centre
    pts[..., axes[0]] += r[:, None]
    pts[..., axes[1]] += r[None, :]
    idx = volume.lps_to_index_kji(pts.reshape(-1, 3)).T
    return ndimage.map_coordinates(np.asarray(volume.array, np.float32), idx, order=1, cval=-1000.0).reshape(
        r.size, r.size)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("volume", help="case volume, e.g. popi_ct00_2mm")
    ap.add_argument("lesions", choices=("blobs", "painted", "lidc_nodules", "abdomen"))
    ap.add_argument("png")
    args = ap.parse_args()
    if not (SHARED / "ct" / f"{args.volume}.nii.gz").exists():
        print(f"shared data not found under {SHARED}; nothing to draw")
        return 0
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vol, targets = scenarios.case_lesions(args.volume, args.lesions, SHARED)
    fig, axs = plt.subplots(len(targets), len(VIEWS), figsize=(3.2 * len(VIEWS), 3.2 * len(targets)), squeeze=False)
    for row, les in enumerate(targets):
        for col, (title, axes, window) in enumerate(VIEWS):
            ax = axs[row, col]
            ax.imshow(plane(vol, les.center_lps_mm, axes).T, cmap="gray", vmin=window[0], vmax=window[1],
                      origin="lower", extent=(-HALF_MM, HALF_MM, -HALF_MM, HALF_MM))
            ax.add_patch(plt.Circle((0.0, 0.0), les.radius_mm, fill=False, color="r", lw=0.8))
            ax.set_title(f"{les.id} (r {les.radius_mm:.1f} mm): {title}", fontsize=8)
            ax.tick_params(labelsize=6)
    fig.suptitle(f"{args.volume}, {args.lesions}: targets on the baseline (mm from the centre)", fontsize=9)
    fig.tight_layout()
    Path(args.png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=60)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

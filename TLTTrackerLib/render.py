"""Pictures of tracking results: baseline | follow-up axial slices with the points (matplotlib, imported lazily).

Used by ``tlt-tracker demo``, the accuracy benchmark and the README figure. Each row is one lesion: the
baseline slice through its centre (green +), and the follow-up slice through the tracked centre (tracked: red x,
affine-only estimate: yellow o, ground truth when known: cyan +). Slices are shown in array order (rows = j,
columns = i) as radiologists see axial slices of an LPS-oriented scan (patient's right on the image left).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .geometry import Volume


def _slice_and_xy(volume: Volume, point_lps_mm: np.ndarray) -> tuple[np.ndarray, float, float]:
    k, j, i = volume.lps_to_index_kji(point_lps_mm)
    kk = int(np.clip(round(k), 0, volume.shape_kji[0] - 1))
    return volume.array[kk], float(i), float(j)


def render_tracking_png(
    baseline: Volume,
    followup: Volume,
    results: Sequence[object],
    path: str | Path,
    truth_lps_mm: Mapping[str, np.ndarray] | None = None,
    window_hu: tuple[float, float] = (-1000.0, 400.0),
    zoom_mm: float = 60.0,
    max_rows: int = 6,
) -> Path:
    """Write a PNG with one row per tracked lesion (see module docstring). Returns the path.

    ``results`` are :class:`~TLTTrackerLib.tracked_lesion.TrackedLesion`; ``truth_lps_mm`` maps id -> true LPS centre.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(results)[:max_rows]
    fig, axes = plt.subplots(len(rows), 2, figsize=(7.2, 3.4 * len(rows)), squeeze=False)
    for row, r in zip(axes, rows):
        panels = [
            (baseline, r.baseline_center_lps_mm, [(r.baseline_center_lps_mm, "+", "lime", "baseline")]),
            (
                followup,
                r.followup_center_lps_mm,
                [(r.affine_center_lps_mm, "o", "yellow", "affine only"),
                 (r.followup_center_lps_mm, "x", "red", f"tracked ({r.method})")]
                + ([(truth_lps_mm[r.id], "+", "cyan", "truth")] if truth_lps_mm and r.id in truth_lps_mm else []),
            ),
        ]
        for ax, (vol, focus, marks), title in zip(row, panels, ("baseline", "follow-up")):
            image, fi, fj = _slice_and_xy(vol, focus)
            ax.imshow(image, cmap="gray", vmin=window_hu[0], vmax=window_hu[1], interpolation="bilinear",
                      aspect=vol.spacing_mm[1] / vol.spacing_mm[0])
            for point, marker, colour, label in marks:
                _, pi, pj = _slice_and_xy(vol, point)
                ax.plot(pi, pj, marker, color=colour, markersize=11, mew=2, fillstyle="none", label=label)
            half_i, half_j = zoom_mm / vol.spacing_mm[0], zoom_mm / vol.spacing_mm[1]
            ax.set_xlim(fi - half_i, fi + half_i)
            ax.set_ylim(fj + half_j, fj - half_j)
            ax.set_xticks([])
            ax.set_yticks([])
            extra = f"  conf {r.confidence:.2f}" if title == "follow-up" else ""
            ax.set_title(f"{r.id}: {title}{extra}", fontsize=10)
        row[1].legend(loc="lower right", fontsize=7, framealpha=0.6)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out)
    return out

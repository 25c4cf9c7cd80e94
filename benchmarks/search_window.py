"""Search-window size from evidence: how large must the follow-up crop be to hold the true lesion centre?

The search crop is centred on the registration-propagated point. With DLT's affine start (``predict target
center`` in DLS valid.json / test.json; per-axis errors in mm with the target spacing, method-notes §5.3) this
script finds, on a grid of window sizes (z and a square in-plane size, multiples of the token stride), the
window of fewest voxels whose interior (the window minus ``--margin-mm`` on every side) holds the true centre
for at least ``--coverage`` of the pairs of *each* split, and reports its cost against the official 40×200×200
window: tokens, search self-attention logits, backbone GFLOP (analytic), and optionally a measured CPU forward
pass of the default network (``--time``; machine load disturbs it).

    python benchmarks/search_window.py [--coverage 0.99] [--margin-mm 8] [--time] [--json OUT]
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

from TLTTrackerLib.dls import load_dls  # noqa: E402

STRIDE = 8
OFFICIAL = (40, 200, 200)


def start_errors_mm(path: Path) -> np.ndarray:
    """``|predict target center - target center| × target spacing``, ``(N, 3)`` (z, in-plane, in-plane)."""
    recs = load_dls(path)
    d = np.array(
        [(r.prediction("predict target center") - r.target_center_xyz) * r.target_spacing_mm for r in recs]
    )
    return np.abs(d[:, [2, 1, 0]])


def coverage(err: np.ndarray, size_zyx: tuple[int, int, int], margin_mm: float) -> float:
    half = np.array(size_zyx, dtype=float) / 2 - margin_mm
    return float(np.mean(np.all(err <= half, axis=1)))


def backbone_gflop(shape_zyx: tuple[int, int, int], channels=(32, 64, 128, 192)) -> float:
    """Multiply-adds × 2 of the feature extractor's 3×3×3 convolutions for one crop (norms, ReLUs ignored)."""
    vox = float(np.prod(shape_zyx))
    c0 = channels[0]
    flop = 2 * 27 * vox * (1 * c0 + c0 * c0 + 1 * c0)  # stem + stem shortcut
    for a, b in zip(channels[:-1], channels[1:]):
        vox /= 8
        flop += 2 * 27 * vox * (a * b + b * b + a * b)  # conv/2, conv, shortcut conv/2
    return flop / 1e9


def cost(shape: tuple[int, int, int], heads: int = 8, layers: int = 3) -> dict[str, float]:
    grid = [s // STRIDE for s in shape]
    ns = int(np.prod(grid))
    return {
        "voxels": int(np.prod(shape)),
        "tokens": ns,
        "grid": grid,
        "self_attention_logits_per_layer": ns * ns * heads,
        "self_attention_MiB_fp32_per_layer": ns * ns * heads * 4 / 2**20,
        "backbone_gflop_per_crop": round(backbone_gflop(shape), 1),
        "fusion_layers": layers,
    }


def time_forward(size_mm: tuple[int, int, int], repeats: int = 1) -> float:
    import torch

    from TLTTrackerLib.config import ModelConfig
    from TLTTrackerLib.model import build_tracker

    net = build_tracker(ModelConfig()).eval()
    grid = [s // STRIDE for s in size_mm]
    batch = {
        "template_image": torch.rand(1, 1, *size_mm),
        "search_image": torch.rand(1, 1, *size_mm),
        "template_prior": torch.rand(1, *grid),
        "search_prior": torch.rand(1, *grid),
        "search_start": torch.full((1, 3), 0.5),
        "template_origin": torch.zeros(1, 3),
    }
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            net(batch)
            best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--coverage", type=float, default=0.99)
    ap.add_argument("--margin-mm", type=float, default=8.0)
    ap.add_argument("--time", action="store_true", help="also time one CPU forward pass per window")
    ap.add_argument("--json", help="write the analysis here")
    args = ap.parse_args()
    files = {name: SHARED / "dls" / f"{name}.json" for name in ("valid", "test")}
    if not all(p.exists() for p in files.values()):
        print(f"DLS annotations not found under {SHARED / 'dls'}; nothing to analyse")
        return 0
    errs = {name: start_errors_mm(p) for name, p in files.items()}
    for name, e in errs.items():
        q = np.percentile(e, [50, 95, 99], axis=0).round(1).tolist()
        print(
            f"{name}: {len(e)} pairs; |start error| mm (z, in-plane, in-plane) median {q[0]}, "
            f"p95 {q[1]}, p99 {q[2]}"
        )
    candidates = []
    for z in range(40, 161, STRIDE):
        for xy in range(40, 257, STRIDE):
            cov = {n: coverage(e, (z, xy, xy), args.margin_mm) for n, e in errs.items()}
            if min(cov.values()) >= args.coverage:
                candidates.append((z * xy * xy, z, xy, cov))
    if not candidates:
        print("no window on the grid reaches the coverage")
        return 1
    _, z, xy, cov = min(candidates)
    chosen = (z, xy, xy)
    result = {
        "coverage_target": args.coverage,
        "margin_mm": args.margin_mm,
        "chosen_window_mm": list(chosen),
        "chosen_coverage": cov,
        "chosen_cost": cost(chosen),
        "official_window_mm": list(OFFICIAL),
        "official_coverage_no_margin": {n: coverage(e, OFFICIAL, 0.0) for n, e in errs.items()},
        "official_coverage_with_margin": {n: coverage(e, OFFICIAL, args.margin_mm) for n, e in errs.items()},
        "official_cost": cost(OFFICIAL),
    }
    print(
        f"\nsmallest window (z, y, x) with ≥ {args.coverage:.0%} of each split inside "
        f"(margin {args.margin_mm} mm): "
        f"{chosen} mm -> coverage " + ", ".join(f"{n} {100 * c:.2f} %" for n, c in cov.items())
    )
    print(
        "official 40×200×200: coverage without margin "
        + ", ".join(f"{n} {100 * c:.2f} %" for n, c in result["official_coverage_no_margin"].items())
        + "; with margin "
        + ", ".join(f"{n} {100 * c:.2f} %" for n, c in result["official_coverage_with_margin"].items())
    )
    for label, key in (("chosen", "chosen_cost"), ("official", "official_cost")):
        c = result[key]
        print(
            f"{label:>9}: {c['voxels']:>9,d} voxels, grid {c['grid']}, {c['tokens']} search tokens, "
            f"{c['self_attention_logits_per_layer'] / 1e6:.1f} M self-attention logits per layer "
            f"({c['self_attention_MiB_fp32_per_layer']:.0f} MiB fp32), "
            f"backbone {c['backbone_gflop_per_crop']} GFLOP per crop"
        )
    if args.time:
        import torch

        print(
            f"\nCPU forward (default model, batch 1, fp32, {torch.get_num_threads()} threads, "
            f"{platform.processor() or platform.machine()}; shared machine, timings disturbed by other load):"
        )
        for label, size in (("chosen", chosen), ("official", OFFICIAL)):
            seconds = time_forward(size)
            result[f"{label}_cpu_forward_s"] = seconds
            print(f"{label:>9} {size}: {seconds:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Validation curve of a training run: centre error (MED, median) and CPM@10mm vs step, from ``log.jsonl``.

    python benchmarks/training_curve.py runs/tlt_cpu/log.jsonl --png docs/images/tlt_cpu_validation.png

Prints one line per validation (step, n, CPM@10mm, MED, median, the start error of the same samples) and the
training loss averaged between validations; with ``--png`` draws both.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def read_log(path: Path) -> tuple[list[dict], list[dict]]:
    """(training records, validation records) of a ``log.jsonl``, by step; a damaged line (a run killed while
    writing) is skipped, and steps logged again after a resume keep their latest record."""
    train: dict[int, dict] = {}
    val: dict[int, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        (val if "val" in rec else train)[rec["step"]] = rec
    return [train[k] for k in sorted(train)], [val[k] for k in sorted(val)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log", type=Path)
    ap.add_argument("--png", type=Path)
    args = ap.parse_args()
    train, val = read_log(args.log)
    print(f"{'step':>6} {'n':>4} {'CPM@10mm':>9} {'MED mm':>7} {'median':>7} {'start MED':>10} {'train loss':>11}")
    last = 0
    for v in val:
        m = v["val"]
        losses = [t["loss"] for t in train if last < t["step"] <= v["step"]]
        last = v["step"]
        print(f"{v['step']:>6} {m.get('n', 0):>4} {m.get('cpm_10mm', float('nan')):>9.3f} "
              f"{m.get('med_mm', float('nan')):>7.2f} {m.get('median_mm', float('nan')):>7.2f} "
              f"{m.get('start_med_mm', float('nan')):>10.2f} {np.mean(losses) if losses else float('nan'):>11.4f}")
    if args.png and val:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
        steps = [v["step"] for v in val]
        a.plot(steps, [v["val"]["med_mm"] for v in val], "o-", label="MED (network)")
        a.plot(steps, [v["val"]["median_mm"] for v in val], "s-", label="median (network)")
        a.plot(steps, [v["val"].get("start_med_mm", np.nan) for v in val], "k--", label="start (affine) MED")
        a.set_xlabel("training step")
        a.set_ylabel("centre error on held-out volume (mm)")
        a.legend()
        b.plot([t["step"] for t in train], [t["loss"] for t in train], lw=0.8)
        b.set_xlabel("training step")
        b.set_ylabel("training loss")
        b.set_yscale("log")
        fig.suptitle(f"{args.log.parent.name}: validation (held-out volume) and training loss")
        fig.tight_layout()
        args.png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.png, dpi=100)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

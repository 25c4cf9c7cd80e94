"""Training throughput of a recipe: data cost per sample, network cost per step, and the share of a real
training step spent waiting for data (issue: a trained TLT model in the box, deliverable 1).

    python benchmarks/train_throughput.py [--config configs/tlt_cpu.json] [--steps 20] [--workers 1]

Three measurements on the recipe's own datasets (``../shared/data`` must be beside the checkout):

1. data: ``dataset[i]`` in this process, no network: ms per sample (median over items, after a warm-up
   item that loads the volumes and builds the point samplers);
2. network: ``train_step`` on one prepared batch, repeated: ms per step (forward + backward + AdamW);
3. loop: the training loop's DataLoader with ``--workers`` worker processes feeding ``train_step``: per step,
   the wall time spent waiting for the next batch vs the whole step; the "data share" is
   waiting / (waiting + train_step).

Also prints the search-window check of the recipe's motion (``motion_stats``: start error median/p90/max and the
fraction of truths inside the search window with an 8 mm margin).
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "tlt_cpu.json"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--items", type=int, default=6, help="items timed for the data measurement")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--motion-items", type=int, default=60, help="pairs for the search-window check (0: skip)")
    args = ap.parse_args()
    os.chdir(ROOT)
    if not (ROOT.parent / "shared" / "data" / "ct").exists():
        print("../shared/data/ct not found; nothing to measure")
        return 0
    import torch
    from torch.utils.data import DataLoader

    from TLTTrackerLib.config import load_run_config
    from TLTTrackerLib.data.dataset import collate_samples
    from TLTTrackerLib.model import build_tracker
    from TLTTrackerLib.training.engine import train_step
    from TLTTrackerLib.training.fit import build_datasets, make_optimizer, set_cpu_threads

    run = load_run_config(args.config, {"train.num_workers": args.workers})
    cfg = run.train
    set_cpu_threads(cfg)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.2f}")
    train_ds, _ = build_datasets(run.preprocess, cfg, None)
    t0 = time.perf_counter()
    first = train_ds[0]
    print(f"warm-up item (volumes, samplers): {time.perf_counter() - t0:.1f} s")
    per_sample = []
    for i in range(1, args.items + 1):
        t0 = time.perf_counter()
        items = train_ds[i]
        per_sample.append((time.perf_counter() - t0) / len(items))
    data_ms = 1000 * float(np.median(per_sample))
    print(f"1. data: {data_ms:.0f} ms per sample (median of {args.items} items of {len(first)} samples)")

    model = build_tracker(run.model)
    optimizer, scheduler = make_optimizer(model, cfg)
    batch = collate_samples([first] * max(1, cfg.batch_size))
    step_args = (optimizer, scheduler, torch.device("cpu"), cfg.precision, cfg.focal_weight, cfg.l1_weight,
                 cfg.l1_space, cfg.grad_clip_norm)
    train_step(model, batch, *step_args)
    times = []
    for _ in range(max(3, args.steps // 4)):
        t0 = time.perf_counter()
        train_step(model, batch, *step_args)
        times.append(time.perf_counter() - t0)
    net_ms = 1000 * float(np.median(times))
    n_batch = len(batch["meta"])
    print(f"2. network: {net_ms:.0f} ms per step of {n_batch} samples (forward + backward + AdamW)")
    print(f"   data alone for that step: {data_ms * n_batch:.0f} ms ({data_ms * n_batch / net_ms:.2f} × network)")

    loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, collate_fn=collate_samples,
                        num_workers=args.workers, drop_last=True, persistent_workers=False)
    waits, steps = [], []
    it = iter(loader)
    next(it)  # worker start-up and its warm-up item
    for _ in range(args.steps):
        t0 = time.perf_counter()
        b = next(it)
        t1 = time.perf_counter()
        train_step(model, b, *step_args)
        t2 = time.perf_counter()
        waits.append(t1 - t0)
        steps.append(t2 - t1)
    wait, step = float(np.sum(waits)), float(np.sum(steps))
    print(f"3. loop ({args.workers} worker): {1000 * (wait + step) / args.steps:.0f} ms per step, of which "
          f"waiting for data {1000 * wait / args.steps:.0f} ms and train_step {1000 * step / args.steps:.0f} ms; "
          f"data share {wait / (wait + step):.1%}")
    result = {"data_ms_per_sample": data_ms, "network_ms_per_step": net_ms, "samples_per_step": n_batch,
              "loop_ms_per_step": 1000 * (wait + step) / args.steps, "data_share": wait / (wait + step)}
    if args.motion_items:
        from TLTTrackerLib.data.crop_pairs import CropPairDataset, motion_stats

        if isinstance(train_ds, CropPairDataset):
            stats = motion_stats(train_ds, args.motion_items)
            print("search window check: " + json.dumps({k: round(v, 3) for k, v in stats.items()}))
            result["motion"] = stats
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

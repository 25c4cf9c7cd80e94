"""Speed and memory of the TLT network: inference and training steps, batch 1 and batched.

For each window (the default crops: search 96×80×80 mm, template 64×64×64 mm; and the official 40×200×200 for
both) and batch size:

- inference: eval mode, ``torch.inference_mode``, autocast per ``--precision`` (auto = bf16 on CUDA, fp32 on
  CPU); seconds per batch and per lesion (best of ``--repeats`` after one warm-up);
- training step (forward + backward + AdamW step, train mode, dropout on): on CUDA always, on CPU only with
  ``--train-on-cpu`` (tens of seconds per step);
- peak GPU memory (``torch.cuda.max_memory_allocated``) on CUDA, peak resident memory of the process on CPU;
- crop preparation (``build_sample``: two crops sampled from a real CT, priors) per lesion, when
  ``../shared/data/ct/lidc_0001.nii.gz`` is present.

Random weights and inputs (speed does not depend on them). ``--device cuda`` without a GPU reports "no CUDA"
and exits 0. On a shared CPU the timings are disturbed by other load.

    python benchmarks/model_speed.py [--device auto|cpu|cuda] [--batch-sizes 1,4] [--precision auto|bf16|fp32]
                                     [--windows default,official] [--train-on-cpu] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("TLT_SHARED_DATA", ROOT.parent / "shared" / "data"))

WINDOWS = {"default": None, "official": ((40, 200, 200), (40, 200, 200))}


def make_batch(
    b: int, size: tuple[int, int, int], template: tuple[int, int, int], device, stride: int = 8, seed: int = 0
) -> dict:
    """A batch at 1 mm: search crop ``size``, template crop ``template`` (voxels, z, y, x)."""
    import torch

    from TLTTrackerLib.heatmap import gaussian_grid

    g = torch.Generator().manual_seed(seed)

    def prior(shape: tuple[int, int, int]) -> torch.Tensor:
        grid = tuple(s // stride for s in shape)
        return torch.from_numpy(gaussian_grid((np.array(shape) - 1) / 2, 10.0, grid, stride))[None].repeat(
            b, 1, 1, 1
        )

    origin = (np.array(size) - np.array(template)) / 2
    batch = {
        "template_image": torch.rand((b, 1, *template), generator=g),
        "search_image": torch.rand((b, 1, *size), generator=g),
        "template_prior": prior(template),
        "search_prior": prior(size),
        "search_start": torch.full((b, 3), 0.5),
        "template_origin": torch.tensor(np.array([origin] * b), dtype=torch.float32),
        "target_heatmap": prior(size),
        "target_center": torch.full((b, 3), 0.52),
        "search_size_mm": torch.tensor([list(size)] * b, dtype=torch.float32),
    }
    return {k: v.to(device) for k, v in batch.items()}


def timed(fn, device, repeats: int) -> float:
    import torch

    fn()  # warm-up (allocations, kernel selection)
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def crop_seconds(
    size_mm: tuple[int, int, int], template_mm: tuple[int, int, int], n: int = 5
) -> float | None:
    path = SHARED / "ct" / "lidc_0001.nii.gz"
    if not path.exists():
        return None
    from TLTTrackerLib.config import PreprocessConfig
    from TLTTrackerLib.io import read_volume
    from TLTTrackerLib.preprocessing import build_sample

    vol = read_volume(path)
    cfg = PreprocessConfig(search_size_mm=size_mm, template_size_mm=template_mm)
    c = vol.center_lps_mm()
    t0 = time.perf_counter()
    for k in range(n):
        build_sample(vol, vol, c + k, 8.0, c + k + 3.0, cfg)
    return (time.perf_counter() - t0) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-sizes", default="1,4")
    ap.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    ap.add_argument("--windows", default="default,official")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--train-on-cpu", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()

    import torch

    from TLTTrackerLib.config import ModelConfig, PreprocessConfig
    from TLTTrackerLib.losses import tracking_loss
    from TLTTrackerLib.model import build_tracker, count_parameters
    from TLTTrackerLib.inference import autocast

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA: nothing to measure on the GPU (run with --device cpu for CPU figures)")
        return 0
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    print(
        f"device {device} ({gpu or platform.processor() or platform.machine()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} cores, precision {args.precision}"
    )
    net = build_tracker(ModelConfig()).to(device)
    print(f"model: {count_parameters(net):,d} parameters (default ModelConfig)")
    pre = PreprocessConfig()
    rows = []
    for name in args.windows.split(","):
        size, template = WINDOWS[name] or (pre.search_shape, pre.template_shape)
        crop_s = crop_seconds(size, template) if device.type == "cpu" else None
        print(f"[{name}] search {size}, template {template} voxels at 1 mm")
        if crop_s is not None:
            print(
                f"  crop preparation (two crops + priors from LIDC-0001 at full resolution): "
                f"{crop_s:.3f} s/lesion"
            )
        for b in (int(x) for x in args.batch_sizes.split(",")):
            batch = make_batch(b, size, template, device)
            row = {
                "window": name,
                "size": list(size),
                "template": list(template),
                "batch": b,
                "device": str(device),
                "precision": args.precision,
            }
            net.eval()

            def infer(batch: dict = batch) -> None:
                with torch.inference_mode(), autocast(device, args.precision):
                    net(batch)

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            row["infer_s"] = timed(infer, device, args.repeats)
            row["infer_s_per_lesion"] = row["infer_s"] / b
            if device.type == "cuda":
                row["infer_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            if crop_s is not None:
                row["crop_s_per_lesion"] = crop_s
                row["total_s_per_lesion"] = crop_s + row["infer_s_per_lesion"]
            if device.type == "cuda" or args.train_on_cpu:
                opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
                net.train()

                def train(batch: dict = batch, opt: torch.optim.Optimizer = opt) -> None:
                    with autocast(device, args.precision):
                        out = net(batch)
                    loss, _ = tracking_loss(out, batch)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                try:
                    row["train_step_s"] = timed(train, device, args.repeats)
                    if device.type == "cuda":
                        row["train_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                except torch.cuda.OutOfMemoryError:
                    row["train_step_s"] = "out of memory"
                    torch.cuda.empty_cache()
            row["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            rows.append(row)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))

    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

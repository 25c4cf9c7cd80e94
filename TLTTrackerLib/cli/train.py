"""Train the TLT network from a JSON recipe (see configs/ and TLTTrackerLib/training/fit.py for the torchrun
commands: 1 GPU, 8 GPUs, 2 nodes).

Examples:
    tlt-tracker train --config configs/tlt_selfsup.json
    tlt-tracker train --config configs/tlt_dls.json --set train.max_steps=2000 --set train.batch_size=2
    torchrun --standalone --nproc_per_node=8 -m TLTTrackerLib.cli train --config configs/tlt_dls.json
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

NAME = "train"
HELP = "train the TLT network from a JSON recipe (multi-GPU through torchrun)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, help="JSON recipe with model / preprocess / train sections"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a recipe value (JSON value, e.g. train.max_steps=100); repeatable",
    )
    parser.add_argument("--output", help="output folder (overrides train.output_dir)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="resume from a checkpoint path, or from OUTPUT/last.pt when given without a value",
    )
    parser.add_argument("--device", help="auto, cpu or cuda (overrides train.device)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.lr=1e-4", "train.output_dir=runs/x"]`` -> dict (JSON values; bare words are strings)."""
    from ..errors import InputError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or "." not in key:
            raise InputError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. train.max_steps=100")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def run(args: argparse.Namespace) -> int:
    from ..config import load_run_config

    overrides = parse_overrides(args.set)
    if args.output:
        overrides["train.output_dir"] = args.output
    if args.device:
        overrides["train.device"] = args.device
    run_config = load_run_config(args.config, overrides)
    if run_config.train is not None and getattr(run_config.train, "output_dir", None):
        from ._outputs import Target, check_outputs

        check_outputs({"the --config recipe": args.config}, [Target("output folder", run_config.train.output_dir,
                                                                    "folder")])
    from ..training.fit import fit  # torch only from here

    rank0 = int(os.environ.get("RANK", "0")) == 0
    bar = None
    if rank0 and not args.no_progress and run_config.train is not None:
        from tqdm import tqdm

        bar = tqdm(total=run_config.train.max_steps, desc="train", unit="step", dynamic_ncols=True)

    def progress(record: dict[str, Any]) -> None:
        if bar is not None:
            bar.n = record["step"]
            bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
            bar.refresh()

    try:
        summary = fit(run_config, resume=args.resume, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if rank0:
        val = summary.get("validation") or {}
        shown = {
            k: round(v, 4) if isinstance(v, float) else v
            for k, v in val.items()
            if k in ("n", "cpm_10mm", "cpm_radius", "med_mm", "start_med_mm", "loss")
        }
        print(
            f"trained {summary['steps']} steps in {summary['seconds']:.1f} s; "
            f"last checkpoint {summary['last']}"
        )
        if shown:
            print(f"validation: {json.dumps(shown)}")
        if summary.get("best"):
            print(
                f"best {summary['best']['metric']} = {summary['best']['value']:.4f} at step "
                f"{summary['best']['step']}: {summary['best_path']}"
            )
    return 0

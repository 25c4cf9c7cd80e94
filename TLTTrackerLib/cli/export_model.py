"""Turn a training checkpoint into a shippable model file: weights, configs, step and validation metrics only
(no optimiser, scheduler or RNG state), written atomically, with its sha256; optionally registered in
``TLTTrackerLib/models/registry.json`` (and made the bundled model) so ``--method tlt`` finds it offline.

Examples:
    tlt-tracker export-model runs/tlt_cpu/best.pt --out TLTTrackerLib/models/tlt_cpu_2mm.pt \\
        --register tlt-cpu-2mm --bundled --card TLTTrackerLib/models/tlt_cpu_2mm.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "export-model"
HELP = "write a weights-only model file from a training checkpoint (and register it)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint written by tlt-tracker train (best.pt, last.pt)")
    parser.add_argument("--out", required=True, help="model file to write (.pt); never the checkpoint itself")
    parser.add_argument("--register", metavar="NAME", help="add or replace NAME in the package's model registry")
    parser.add_argument("--bundled", action="store_true", help="make NAME the bundled (default) model")
    parser.add_argument("--card", help="model card (Markdown) to record with the registry entry")
    parser.add_argument("--licence", default="Apache-2.0 (weights trained by TLTTracker on CC BY / free CTs; "
                        "see the model card)")


def export_weights(src: Path, dst: Path) -> dict:
    """Copy the shippable part of checkpoint ``src`` to ``dst`` (atomic); returns the registry facts."""
    import torch

    from ..checkpoint import load_checkpoint
    from ..errors import InputError
    from ..io import atomic_write
    from ..weights import sha256_of

    if dst.resolve() == src.resolve():
        raise InputError(f"--out {dst} is the checkpoint itself; choose another file")
    data = load_checkpoint(src)
    keep = ("format", "format_version", "model_config", "preprocess_config", "train_config", "state_dict",
            "step", "epoch", "metrics", "best", "versions")
    payload = {k: data.get(k) for k in keep}
    payload.update(optimizer=None, scheduler=None, rng=None, batch_in_epoch=0)
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dst, lambda tmp: torch.save(payload, tmp), suffix=".tmp")
    return {"file": dst.name, "sha256": sha256_of(dst), "size_bytes": dst.stat().st_size,
            "step": int(data.get("step") or 0), "metrics": data.get("metrics") or {}}


def register(name: str, facts: dict, bundled: bool, card: str | None, licence: str,
             registry_path: Path | None = None) -> Path:
    """Add or replace ``name`` in the registry (default: the package's; atomic). The model file must sit in
    the registry's folder (``TLTTrackerLib/models/``) to be found."""
    from .. import weights
    from ..io import atomic_write

    path = Path(registry_path or weights.REGISTRY_PATH)
    reg = weights.load_registry(path)
    entry = {"name": name, "file": facts["file"], "url": None, "sha256": facts["sha256"],
             "size_bytes": facts["size_bytes"], "licence": licence, "card": Path(card).name if card else None,
             "description": f"TLT network, {facts['step']} training steps (validation: "
                            f"{ {k: round(v, 3) for k, v in facts['metrics'].items() if k in ('cpm_10mm', 'med_mm')} })"}
    reg["models"] = [m for m in reg["models"] if m.get("name") != name] + [entry]
    if bundled:
        reg["bundled"] = name
    text = json.dumps(reg, indent=2) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), suffix=".tmp")
    return path


def run(args: argparse.Namespace) -> int:
    facts = export_weights(Path(args.checkpoint), Path(args.out))
    print(f"wrote {args.out}: {facts['size_bytes'] / 1e6:.1f} MB, sha256 {facts['sha256']}, step {facts['step']}")
    if args.register:
        path = register(args.register, facts, args.bundled, args.card, args.licence)
        print(f"registered {args.register} in {path}" + (" (bundled)" if args.bundled else ""))
    return 0

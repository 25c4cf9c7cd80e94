"""Show a TLT model file (format, versions, training step, metrics, configs, parameters, and for a registered
model its registry entry: name, sha256, licence, model card) or, with ``--config``, the network a recipe would
build. Without arguments: the bundled model (or, when none is bundled, the default network).

Examples:
    tlt-tracker inspect-model                       # the bundled model
    tlt-tracker inspect-model tlt-cpu-2mm           # a registry name
    tlt-tracker inspect-model runs/tlt/best.pt
    tlt-tracker inspect-model --config configs/tlt_dls.json --json
"""

from __future__ import annotations

import argparse
import json
from typing import Any

NAME = "inspect-model"
HELP = "show a model file's configuration, metrics and parameter counts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", help="model file written by tlt-tracker train, or a registry name "
                        "(default: the bundled model)")
    parser.add_argument("--config", help="a training recipe (used when no checkpoint is given)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def describe(model: Any, model_config: Any, preprocess: Any) -> dict[str, Any]:
    """Parameter counts per part and the token/attention sizes of the configured crops."""
    from ..model import count_parameters

    s_grid = [n // preprocess.token_stride for n in preprocess.search_shape]
    t_grid = [n // preprocess.token_stride for n in preprocess.template_shape]
    ns = s_grid[0] * s_grid[1] * s_grid[2]
    return {
        "parameters": count_parameters(model),
        "parameters_by_part": {name: count_parameters(m) for name, m in model.named_children()},
        "search_tokens": ns,
        "template_tokens_before_sss": t_grid[0] * t_grid[1] * t_grid[2],
        "search_self_attention_logits_per_layer": ns * ns * model_config.n_heads,
    }


def registry_entry(path: Any) -> dict[str, Any] | None:
    """The package registry's entry for model file ``path`` (matched by file name and sha256), with the model
    card's path; None for an unregistered file."""
    from pathlib import Path

    from .. import weights

    reg = weights.load_registry()
    named = [e for e in reg["models"] if e.get("file") == Path(path).name]
    digest = weights.sha256_of(Path(path)) if named else None  # hashed once, only when a name matches
    for entry in named:
        if entry.get("sha256") == digest:
            out = {k: entry.get(k) for k in ("name", "sha256", "size_bytes", "licence", "description")}
            out["bundled"] = reg.get("bundled") == entry.get("name")
            card = entry.get("card")
            out["card"] = str(weights.MODELS_DIR / card) if card else None
            return out
    return None


def run(args: argparse.Namespace) -> int:
    path = None
    if args.checkpoint or not args.config:
        from ..weights import resolve_model

        path = resolve_model(args.checkpoint)  # a path, a registry name, or None: the bundled model
    if path is not None:
        from ..checkpoint import load_model

        model, mc, pc, data = load_model(path)
        info: dict[str, Any] = {
            "file": str(path),
            "registry": registry_entry(path),
            "format_version": data["format_version"],
            "versions": data.get("versions"),
            "step": data.get("step"),
            "epoch": data.get("epoch"),
            "metrics": data.get("metrics"),
            "best": data.get("best"),
        }
    else:
        from ..config import ModelConfig, PreprocessConfig, load_run_config
        from ..model import build_tracker

        if args.config:
            rc = load_run_config(args.config)
            mc, pc = rc.model, rc.preprocess
        else:
            mc, pc = ModelConfig(), PreprocessConfig()
        model = build_tracker(mc)
        info = {"file": None, "config": args.config or "defaults"}
    info.update(describe(model, mc, pc))
    info["model_config"], info["preprocess_config"] = mc.to_dict(), pc.to_dict()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")
    return 0

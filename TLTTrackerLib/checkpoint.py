"""TLTTracker model files: weights plus everything needed to rebuild and use them.

A checkpoint is a ``torch.save`` dict of plain types (loadable with ``torch.load(weights_only=True)``)::

    {"format": "tlttracker-checkpoint", "format_version": 1,
     "model_config": {...}, "preprocess_config": {...}, "train_config": {...} | None,
     "state_dict": {...}, "optimizer": {...} | None, "scheduler": {...} | None,
     "step": int, "epoch": int, "batch_in_epoch": int, "metrics": {...}, "best": {...} | None,
     "rng": {...} | None, "versions": {"torch", "tlttracker", "python", "git_sha"}}

:func:`load_model` alone rebuilds a ready ``eval()`` network and its :class:`PreprocessConfig` (no training
code needed, as nanoGPT's ``sample.py`` rebuilds from ``model_args``). A file of another format version, a
corrupt file or a file that is not a TLTTracker checkpoint raises
:class:`~TLTTrackerLib.errors.ModelFileError`.
"""

from __future__ import annotations

import logging
import os
import pickle
import platform
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .config import ModelConfig, PreprocessConfig, TrainConfig, check_compatible
from .errors import InputError, ModelFileError
from .io import atomic_write

logger = logging.getLogger(__name__)

FORMAT = "tlttracker-checkpoint"
FORMAT_VERSION = 1
_PREFIXES = ("module.", "_orig_mod.")


def versions() -> dict[str, str]:
    """Versions recorded in a checkpoint (git SHA of the source tree when it is a git checkout)."""
    sha = "unknown"
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            check=False,
            text=True,
            timeout=5,
        )
        if out.returncode == 0:
            sha = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "torch": str(torch.__version__),
        "tlttracker": str(__version__),
        "python": platform.python_version(),
        "git_sha": sha,
    }


def strip_prefixes(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Remove DDP (``module.``) and ``torch.compile`` (``_orig_mod.``) key prefixes."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside DDP / ``torch.compile`` wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    model_config: ModelConfig,
    preprocess_config: PreprocessConfig,
    train_config: TrainConfig | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    step: int = 0,
    epoch: int = 0,
    batch_in_epoch: int = 0,
    metrics: dict[str, Any] | None = None,
    best: dict[str, Any] | None = None,
    rng: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, then rename). Returns the path."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": model_config.to_dict(),
        "preprocess_config": preprocess_config.to_dict(),
        "train_config": train_config.to_dict() if train_config is not None else None,
        "state_dict": strip_prefixes(unwrap(model).state_dict()),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": int(step),
        "epoch": int(epoch),
        "batch_in_epoch": int(batch_in_epoch),
        "metrics": dict(metrics or {}),
        "best": best,
        "rng": rng,
        "versions": versions(),
    }
    p = Path(path)
    atomic_write(p, lambda tmp: torch.save(payload, tmp), suffix=".tmp")
    return p


def _load_problem(exc: BaseException) -> str:
    """What is wrong with a file ``torch.load(weights_only=True)`` refused, in our words. torch's own text
    suggests retrying with ``weights_only=False``: that would run whatever code a pickle holds, so it is
    never shown."""
    text = str(exc)
    if "weights_only" in text or "Unsupported global" in text or isinstance(exc, pickle.UnpicklingError):
        return ("holds pickled Python objects besides tensors and plain values (not a TLTTracker model file; "
                "such files can run code when loaded, so TLTTracker refuses them)")
    if isinstance(exc, (EOFError, zipfile.BadZipFile)) or "zip archive" in text or "central directory" in text:
        return "is truncated or corrupt (cannot open it as a torch zip archive)"
    first = (text.strip().splitlines() or [type(exc).__name__])[0][:160]
    return f"is corrupt or not a TLTTracker model file ({first})"


def is_trained(data: dict[str, Any]) -> bool:
    """Whether a loaded checkpoint has seen training: a positive ``step`` count (``tlt-tracker train`` saves
    the optimiser step; a freshly initialised network saved with ``step=0`` gives random confidences)."""
    try:
        return int(data.get("step") or 0) > 0
    except (TypeError, ValueError):
        return False


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint (``weights_only=True``). Raises ModelFileError for a missing, corrupt,
    foreign or other-version file."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"model file not found: {p}")
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ModelFileError(f"{p} {_load_problem(exc)}; download or train it again") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelFileError(
            f"{p} is not a TLTTracker model file (no '{FORMAT}' marker); "
            "pass a checkpoint written by tlt-tracker train"
        )
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{p} has model file format version {version!r}; this TLTTracker {__version__} reads version "
            f"{FORMAT_VERSION}: use a matching TLTTracker version or a newer model file"
        )
    return data


def configs_from_checkpoint(
    data: dict[str, Any], source: str = "checkpoint"
) -> tuple[ModelConfig, PreprocessConfig]:
    """The model and preprocessing configs stored in a loaded checkpoint."""
    try:
        model_config = ModelConfig.from_dict(data["model_config"])
        preprocess_config = PreprocessConfig.from_dict(data["preprocess_config"])
        check_compatible(model_config, preprocess_config)
    except (KeyError, InputError) as exc:
        raise ModelFileError(
            f"{source} holds an invalid configuration ({exc}); it was not written by this version"
        ) from exc
    return model_config, preprocess_config


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelConfig, PreprocessConfig, dict[str, Any]]:
    """Rebuild the network of a checkpoint on ``device`` in ``eval()`` mode.

    Returns ``(model, model_config, preprocess_config, checkpoint dict)``.
    """
    from .model import build_tracker

    data = load_checkpoint(path)
    model_config, preprocess_config = configs_from_checkpoint(data, str(path))
    model = build_tracker(model_config)
    try:
        model.load_state_dict(strip_prefixes(data["state_dict"]), strict=True)
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ModelFileError(f"{path}: weights do not fit the stored model configuration ({first})") from exc
    model.to(device).eval()
    if not is_trained(data):
        logger.warning("MODEL NOT TRAINED: %s records 0 training steps; its positions and confidences are "
                       "those of a random network (results get the flag 'untrained_model', confidence null)", path)
    logger.debug("loaded %s (step %s, metrics %s)", path, data.get("step"), data.get("metrics"))
    return model, model_config, preprocess_config, data

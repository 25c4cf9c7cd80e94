"""Model files: the bundled model, a registry of downloadable models, a checksum-verified cache, offline use.

Resolution order for ``resolve_model(spec)``:

1. ``spec`` is an existing file path -> that file.
2. ``spec`` is a registry name (``TLTTrackerLib/models/registry.json``) -> the cached file, downloaded with
   progress into the cache folder and verified against its sha256 the first time.
3. ``spec`` is None -> ``$TLT_TRACKER_MODEL`` if set, else the bundled model (``models/*.pt`` named by the
   registry's ``"bundled"`` entry) if present, else None (no learned model available).

Cache folder: ``$TLT_TRACKER_CACHE`` or ``~/.cache/tlttracker``. ``TLT_TRACKER_OFFLINE=1`` forbids downloads (the
error then says which file to place where). Registry entries::

    {"bundled": "NAME" | null,
     "models": [{"name": ..., "file": "x.pt", "url": ..., "sha256": ..., "size_bytes": ..., "licence": ...,
                 "description": ...}]}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.request
from pathlib import Path
from typing import Any, Callable

from .errors import ModelFileError

logger = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parent / "models"
REGISTRY_PATH = MODELS_DIR / "registry.json"

ProgressFn = Callable[[int, int | None], None]  # (bytes done, total bytes or None)


def load_registry(path: Path | None = None) -> dict[str, Any]:
    """The registry as a dict (``{"bundled": ..., "models": [...]}``); empty when the file is absent."""
    p = path or REGISTRY_PATH
    if not p.exists():
        return {"bundled": None, "models": []}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"model registry {p} is not valid JSON: {exc}") from exc
    data.setdefault("bundled", None)
    data.setdefault("models", [])
    return data


def cache_dir() -> Path:
    return Path(os.environ.get("TLT_TRACKER_CACHE") or Path.home() / ".cache" / "tlttracker")


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, sha256: str | None) -> Path:
    """Check ``path`` against ``sha256`` (skipped when None). Raises ModelFileError on mismatch."""
    if sha256 and sha256_of(path) != sha256.lower():
        raise ModelFileError(
            f"model file {path} fails its sha256 check (corrupt or a different file); delete it and download again"
        )
    return path


def download(url: str, dest: Path, sha256: str | None = None, progress: ProgressFn | None = None) -> Path:
    """Download ``url`` to ``dest`` atomically (temporary file, checksum, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as fh:  # noqa: S310 (registry URL)
            total = int(resp.headers.get("Content-Length") or 0) or None
            done = 0
            while block := resp.read(1 << 20):
                fh.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
        verify(tmp, sha256)
        os.replace(tmp, dest)
    except OSError as exc:
        raise ModelFileError(
            f"cannot download model from {url} ({exc}); download it by hand and pass its path with --model"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _entry(name: str, registry: dict[str, Any]) -> dict[str, Any] | None:
    return next((m for m in registry["models"] if m.get("name") == name), None)


def resolve_model(
    spec: str | os.PathLike[str] | None,
    registry: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> Path | None:
    """Turn a path, a registry name or None into a local model file (see module docstring)."""
    reg = registry if registry is not None else load_registry()
    if spec is None:
        env = os.environ.get("TLT_TRACKER_MODEL")
        if env:
            return resolve_model(env, reg, progress)
        bundled = reg.get("bundled")
        entry = _entry(bundled, reg) if bundled else None
        if entry and (MODELS_DIR / entry["file"]).exists():
            return verify(MODELS_DIR / entry["file"], entry.get("sha256"))
        return None
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    entry = _entry(str(spec), reg)
    if entry is None:
        names = ", ".join(m["name"] for m in reg["models"]) or "none"
        raise ModelFileError(f"model {spec!s} is neither a file nor a known model name (known: {names})")
    local = MODELS_DIR / entry["file"]
    if local.exists():
        return verify(local, entry.get("sha256"))
    cached = cache_dir() / entry["file"]
    if cached.exists():
        return verify(cached, entry.get("sha256"))
    if os.environ.get("TLT_TRACKER_OFFLINE") == "1":
        raise ModelFileError(
            f"model {entry['name']} is not cached and TLT_TRACKER_OFFLINE=1; put {entry['file']} in {cache_dir()} "
            "or pass its path with --model"
        )
    logger.info("downloading model %s from %s", entry["name"], entry["url"])
    return download(entry["url"], cached, entry.get("sha256"), progress)

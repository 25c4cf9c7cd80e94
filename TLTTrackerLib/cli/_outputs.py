"""Guard every path a command writes, before any work starts.

:func:`check_outputs` takes the paths a command reads and the paths it will write, resolves them all
(symlinks followed) and refuses, with one :class:`~TLTTrackerLib.errors.InputError` line naming the option and
the path:

- a write target that is an input (any read path) or another write target (two options, one file);
- a file target that is an existing folder or is spelled as one (``newdir/``), a folder target that is an
  existing file;
- a target whose folder cannot be created or written (read-only, or a file in the way).

Nothing is created here; the writers create missing folders later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import InputError


@dataclass(frozen=True)
class Target:
    """One output: ``label`` (e.g. ``--registration-out``), its ``path``, and ``kind`` "file" or "folder"."""

    label: str
    path: str | os.PathLike[str]
    kind: str = "file"


def _resolve(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def _check_writable(target: Target, resolved: Path) -> None:
    text = os.fspath(target.path)
    if target.kind == "file":
        if text.endswith(("/", os.sep)):
            raise InputError(f"{target.label} {text} names a folder; give a file name such as "
                             f"{text.rstrip('/' + os.sep)}/results.json")
        if resolved.is_dir():
            raise InputError(f"{target.label} {text} is an existing folder; give a file name")
    elif resolved.exists() and not resolved.is_dir():
        raise InputError(f"{target.label} {text} is an existing file; give a folder (it is created if missing)")
    folder = resolved.parent if target.kind == "file" else resolved
    while not folder.exists():  # the writer will create the missing folders under the first existing one
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{target.label} {text}: {folder} is a file, so the folder cannot be created")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{target.label} {text}: folder {folder} is not writable; choose another place")


def check_outputs(reads: dict[str, str | os.PathLike[str] | None], targets: Iterable[Target]) -> None:
    """Refuse write targets that are inputs, duplicates, folders/files of the wrong kind or unwritable.

    Args:
        reads: label (e.g. "the baseline") -> path read by the command; None entries are skipped.
        targets: everything the command will write.
    """
    read_paths = {_resolve(p): label for label, p in reads.items() if p}
    written: dict[Path, str] = {}
    for target in targets:
        resolved = _resolve(target.path)
        if resolved in read_paths:
            raise InputError(f"{target.label} {target.path} would overwrite {read_paths[resolved]} "
                             f"({resolved}); choose another file name")
        if resolved in written:
            raise InputError(f"{target.label} {target.path} and {written[resolved]} name the same file "
                             f"({resolved}); give each output its own name")
        _check_writable(target, resolved)
        written[resolved] = f"{target.label} {target.path}"

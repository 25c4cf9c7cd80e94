"""Shared harness of the bad-input test modules (test_bad_*.py): run ``tlt-tracker`` as a subprocess on a bad
input and check the contract of issue 9: exit code 2, exactly one ``error:`` line naming the file and the
problem, no traceback, no input modified (hashes before and after), no output or temporary file left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``folder`` ("<dir>" for folders, "-> target" for links)."""
    out: dict[str, str] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = f"-> {os.readlink(p)}"
        elif p.is_dir():
            out[rel] = "<dir>"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "TLTTrackerLib.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def run_in_process(args: list[str], cwd: Path, capsys) -> subprocess.CompletedProcess:
    """``main(args)`` in this process with ``cwd`` as working folder (a traceback would fail the test)."""
    from TLTTrackerLib.cli import main

    old = os.getcwd()
    os.chdir(cwd)
    try:
        capsys.readouterr()
        code = main(args)
    finally:
        os.chdir(old)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def assert_refused(args: list[str], folder: Path, names: str, problem: str, capsys=None) -> str:
    """Run ``args`` in ``folder`` (a subprocess, or in this process with ``capsys``: faster, same contract);
    assert the bad-input contract. Returns the error line."""
    before = snapshot(folder)
    proc = run_in_process(args, folder, capsys) if capsys is not None else run_cli(args, folder)
    after = snapshot(folder)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1, proc.stderr
    assert names in errors[0], (names, errors[0])
    assert problem.lower() in errors[0].lower(), (problem, errors[0])
    assert after == before, f"files changed: {set(after.items()) ^ set(before.items())}"
    return errors[0]


def write_ct(path: Path, shape_kji=(24, 40, 40), seed: int = 0, **kw) -> Path:
    """A small CT-like int16 volume (a body ellipsoid with texture) written with SimpleITK."""
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    k, j, i = np.mgrid[: shape_kji[0], : shape_kji[1], : shape_kji[2]]
    body = ((k - shape_kji[0] / 2) / (shape_kji[0] / 2.2)) ** 2 + ((j - shape_kji[1] / 2) / (shape_kji[1] / 2.5)) ** 2 \
        + ((i - shape_kji[2] / 2) / (shape_kji[2] / 2.5)) ** 2 < 1
    array = np.where(body, 40 + rng.normal(0, 30, shape_kji), -1000).astype(kw.pop("dtype", np.int16))
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(kw.pop("spacing", (2.0, 2.0, 3.0)))
    if "direction" in kw:
        image.SetDirection(kw.pop("direction"))
    sitk.WriteImage(image, str(path), kw.pop("compress", path.name.endswith(".gz")))
    return path


def write_lesions(path: Path, centers=((40.0, 40.0, 36.0),), radius: float = 6.0) -> Path:
    """LESIONS.json (LPS) with lesions L1, L2, ... at ``centers``."""
    path.write_text(json.dumps({"coordinate_system": "LPS", "lesions": [
        {"id": f"L{n}", "center": list(c), "radius_mm": radius} for n, c in enumerate(centers, start=1)]}))
    return path


def write_pair_inputs(folder: Path, lesions: bool = True) -> Path:
    """The inputs most bad-input tests start from: ``bl.nii.gz``, ``fu.nii.gz`` (another seed) and, with
    ``lesions``, ``les.json``, in ``folder``."""
    write_ct(folder / "bl.nii.gz")
    write_ct(folder / "fu.nii.gz", seed=1)
    if lesions:
        write_lesions(folder / "les.json")
    return folder

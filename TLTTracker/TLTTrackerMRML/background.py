"""BackgroundTracking: ``python -m TLTTrackerLib.cli track ... --progress-json`` in a child process.

Why out of process (slicer-notes §4.5): Slicer's GUI stays responsive, Cancel kills the run, a crash or an
out-of-memory kill cannot take Slicer down, and the command line is the contract the CLI tests check. Inputs go
to a temporary folder (uncompressed NRRD, LESIONS.json in LPS with file-name-safe ids, the reused registration);
reader threads collect stdout progress lines and stderr; the caller polls (a QTimer in Slicer). Nothing here
touches the scene. The child runs in its own process group so that Cancel also stops the interpreter that
Slicer's ``PythonSlicer`` launcher starts (killing the launcher alone would leave it running).
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Sequence

from TLTTrackerLib.errors import DeviceError, TLTError
from TLTTrackerLib.lesions import Lesion

LIBRARY_ROOT = (
    Path(__file__).resolve().parents[2]
)  # folder holding the TLTTrackerLib package (repo or install)
KILLED_EXIT_CODES = (-9, 137)  # SIGKILL: usually the kernel's out-of-memory killer


def _popen_kwargs() -> dict[str, Any]:
    if os.name == "nt":
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) | getattr(
            subprocess, "CREATE_NEW_PROCESS_GROUP", 0
        )
        return {"creationflags": flags}
    return {"start_new_session": True}


def kill_process_tree(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and every process it started (its process group; ``taskkill /T`` on Windows)."""
    if proc.poll() is not None:
        return
    try:
        if os.name == "nt":
            subprocess.run(
                ["taskkill", "/F", "/T", "/PID", str(proc.pid)],
                capture_output=True,
                check=False,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
        else:
            os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.kill()
    except OSError:
        pass
    proc.wait()


class BackgroundTracking:
    """Runs ``tlt-tracker track`` on temporary files in a child process; poll it from a GUI timer.

    Usage::

        job = BackgroundTracking(baseline_volume, followup_volume, lesions, method="auto")
        while job.running: fraction, message = job.poll()   # from a QTimer in Slicer
        results = job.results()                              # TrackedLesion list, or raises TLTError

    Args:
        baseline, followup: ``Volume`` objects (world LPS).
        lesions: baseline lesions to track (LPS).
        model: model path or registry name for learned methods (None: the library's default).
        registration: ``RegistrationResult.to_dict()`` of this pair to reuse, or None to register.
        python: interpreter command (Slicer: PythonSlicer; default: ``PythonSlicer`` on PATH, else this Python).
        heatmaps: also ask for per-lesion heatmaps (attached to the results as ``TrackedLesion.heatmap``).
    """

    def __init__(
        self,
        baseline,
        followup,
        lesions: Sequence[Lesion],
        method: str = "auto",
        device: str = "auto",
        model: str | None = None,
        registration: dict | None = None,
        python: str | Sequence[str] | None = None,
        heatmaps: bool = False,
    ) -> None:
        from TLTTrackerLib.io import write_volume
        from TLTTrackerLib.lesions import write_lesions

        self.registration: dict | None = None
        self.timing_s: dict[str, float] = {}
        self._dir = Path(tempfile.mkdtemp(prefix="tlttracker_"))
        # File-name-safe ids for the child (labels such as "L1/a" would break heatmap file names); mapped back.
        self._ids = {f"k{n}": les.id for n, les in enumerate(lesions, start=1)}
        write_volume(baseline, self._dir / "baseline.nrrd", compress=False)
        write_volume(followup, self._dir / "followup.nrrd", compress=False)
        write_lesions(
            [Lesion(k, les.center_lps_mm, les.radius_mm) for k, les in zip(self._ids, lesions)],
            self._dir / "lesions.json",
        )
        self._out = self._dir / "results.json"
        self._heatmap_dir = self._dir / "heatmaps" if heatmaps else None
        if python is None:
            python = shutil.which("PythonSlicer") or sys.executable
        self.args = [
            *([python] if isinstance(python, str) else python),
            "-m",
            "TLTTrackerLib.cli",
            "track",
            str(self._dir / "baseline.nrrd"),
            str(self._dir / "followup.nrrd"),
            "--lesions",
            str(self._dir / "lesions.json"),
            "--out",
            str(self._out),
            "--method",
            method,
            "--device",
            device,
            "--progress-json",
        ]
        if model:
            self.args += ["--model", str(model)]
        if registration:
            (self._dir / "registration.json").write_text(json.dumps(registration))
            self.args += ["--registration-in", str(self._dir / "registration.json")]
        if self._heatmap_dir is not None:
            self.args += ["--heatmap-out", str(self._heatmap_dir)]
        path = os.pathsep.join(p for p in (str(LIBRARY_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1")
        self._proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
            cwd=str(LIBRARY_ROOT),
            stdin=subprocess.DEVNULL,
            **_popen_kwargs(),
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._pump, args=(self._proc.stdout, self._lines.put), daemon=True),
            threading.Thread(target=self._pump, args=(self._proc.stderr, self._stderr.append), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.progress = (0.0, "starting")
        self.cancelled = False

    @staticmethod
    def _pump(stream, sink) -> None:
        for line in stream:
            sink(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def poll(self) -> tuple[float, str]:
        """Latest (fraction, message) reported by the child process."""
        while not self._lines.empty():
            line = self._lines.get_nowait()
            try:
                msg = json.loads(line)
                self.progress = (float(msg["progress"]), str(msg["message"]))
            except (ValueError, KeyError, TypeError):
                continue
        return self.progress

    def wait(self, timeout: float | None = None) -> None:
        """Block until the child process has ended and its output has been read."""
        self._proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout=5)

    def cancel(self) -> None:
        """Stop the child process and everything it started; nothing was written to the scene."""
        self.cancelled = True
        kill_process_tree(self._proc)
        shutil.rmtree(self._dir, ignore_errors=True)

    def _failure(self) -> TLTError:
        for reader in self._readers:
            reader.join(timeout=5)
        errors = [line for line in self._stderr if line.startswith("error:")]
        if errors:
            return TLTError(errors[-1][len("error:") :].strip())
        if self._proc.returncode in KILLED_EXIT_CODES:
            return DeviceError(
                "the tracking process was killed, probably out of memory; close other programs, "
                "choose CPU as the device, or crop the volumes, then track again"
            )
        detail = self._stderr[-1] if self._stderr else ""
        return TLTError(f"tracking process failed (exit code {self._proc.returncode}) {detail}".strip())

    def results(self) -> list:
        """Tracked lesions (input ids, input order) once the process has ended.

        Raises:
            TLTError: with the CLI's one-line message (or the exit code) on failure; after :meth:`cancel`.
        """
        from TLTTrackerLib.io import read_volume
        from TLTTrackerLib.results import results_from_dict

        if self.cancelled:
            raise TLTError("tracking was cancelled")
        self._proc.wait()
        try:
            if self._proc.returncode != 0:
                raise self._failure()
            payload = json.loads(self._out.read_text(encoding="utf-8"))
            self.registration = payload.get("registration")
            self.timing_s = dict(payload.get("timing_s", {}))
            results = []
            for r in results_from_dict(payload):
                heatmap = None
                if self._heatmap_dir is not None and (self._heatmap_dir / f"{r.id}_heatmap.nii.gz").is_file():
                    heatmap = read_volume(self._heatmap_dir / f"{r.id}_heatmap.nii.gz")
                results.append(dataclasses.replace(r, id=self._ids.get(r.id, r.id), heatmap=heatmap))
            return results
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

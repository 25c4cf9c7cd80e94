"""TrackingLogic: track lesions between two volume nodes, node in and node out, with no GUI.

Two ways to run, same result:

- :meth:`TrackingLogic.track` (synchronous, in process): for the Python console, scripts and tests, and under
  the non-Qt ``slicer-core``. Registration of a pair is cached and reused; only lesions that changed (new,
  moved, other radius or method) are tracked again.
- :class:`BackgroundTracking` (out of process): runs ``python -m TLTTrackerLib.cli track ... --progress-json``
  on temporary files so Slicer stays responsive; ``poll()`` reports progress, ``cancel()`` kills it. Nothing
  in the scene changes until it has finished; then :meth:`TrackingLogic.apply_results` writes the nodes.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from TLTTrackerLib.errors import InputError, TLTError
from TLTTrackerLib.lesions import DEFAULT_RADIUS_MM, Lesion

from .nodes import fill_results_table, lesions_from_markups, markups_from_results, volume_from_node

REPO_OR_INSTALL_DIR = Path(__file__).resolve().parents[2]  # folder holding the TLTTrackerLib package


def _node_key(node) -> tuple:
    image = node.GetImageData()
    parent = node.GetParentTransformNode()
    return (node.GetID(), node.GetMTime(), image.GetMTime() if image else 0,
            parent.GetMTime() if parent is not None else 0)


def _lesion_key(lesion: Lesion, method: str) -> tuple:
    return (lesion.id, tuple(np.round(lesion.center_lps_mm, 3)), round(lesion.radius_mm, 3), method)


class TrackingLogic:
    """Volume and markups nodes -> tracked follow-up points and a results table."""

    def __init__(self) -> None:
        self._pair_key: tuple | None = None
        self._tracker: Any = None
        self._done: dict[tuple, Any] = {}
        self.last_results: list = []

    # ------------------------------------------------------------------ synchronous
    def track(
        self,
        baseline_node,
        followup_node,
        lesions_node,
        output_node=None,
        table_node=None,
        method: str = "auto",
        device: str = "auto",
        model: str | None = None,
        default_radius_mm: float = DEFAULT_RADIUS_MM,
        progress: Callable[[float, str], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ):
        """Track every point of ``lesions_node`` (on the baseline) into the follow-up.

        Returns ``(output_node, table_node)``; creates them in the baseline's scene when not given.
        """
        from TLTTrackerLib.tracker import LesionTracker

        if baseline_node is None or followup_node is None:
            raise InputError("select a baseline and a follow-up volume")
        if baseline_node is followup_node:
            raise InputError("baseline and follow-up are the same volume; select two different scans")
        lesions = lesions_from_markups(lesions_node, default_radius_mm)
        key = (_node_key(baseline_node), _node_key(followup_node), method, device, model)
        if key != self._pair_key:
            self._tracker = LesionTracker(method=method, model=model, device=device)
            if progress:
                progress(0.0, "reading volumes")
            self._tracker.set_pair(volume_from_node(baseline_node), volume_from_node(followup_node),
                                   progress=lambda f, m: progress(0.4 * f, m) if progress else None)
            self._pair_key, self._done = key, {}
        todo = [les for les in lesions if _lesion_key(les, method) not in self._done]
        if todo:
            fresh = self._tracker.track(todo, cancel=cancel,
                                        progress=lambda f, m: progress(0.4 + 0.6 * f, m) if progress else None)
            for les, res in zip(todo, fresh):
                self._done[_lesion_key(les, method)] = res
        results = [self._done[_lesion_key(les, method)] for les in lesions]
        if progress:
            progress(1.0, f"tracked {len(results)} lesions ({len(todo)} new or changed)")
        return self.apply_results(results, baseline_node.GetScene(), output_node, table_node)

    def apply_results(self, results: Sequence, scene, output_node=None, table_node=None):
        """Write results into a follow-up point list and a table (created in ``scene`` when None)."""
        output_node = markups_from_results(results, scene, node=output_node)
        if table_node is None:
            table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", "TLTTracker results")
        fill_results_table(table_node, results)
        self.last_results = list(results)
        return output_node, table_node

    def registration_dict(self) -> dict | None:
        """The cached registration of the current pair (for reuse by a background run), if any."""
        reg = getattr(self._tracker, "registration", None)
        return reg.to_dict() if reg is not None else None


class BackgroundTracking:
    """Runs ``tlt-tracker track`` in a child process on temporary NRRD files; poll from a GUI timer.

    Usage::

        job = BackgroundTracking(baseline_volume, followup_volume, lesions, method="auto")
        while job.running: fraction, message = job.poll()   # from a QTimer in Slicer
        results = job.results()                              # TrackedLesion list, or raises TLTError
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
        python: str | None = None,
    ) -> None:
        from TLTTrackerLib.io import write_volume
        from TLTTrackerLib.lesions import write_lesions

        self._dir = Path(tempfile.mkdtemp(prefix="tlttracker_"))
        write_volume(baseline, self._dir / "baseline.nrrd", compress=False)
        write_volume(followup, self._dir / "followup.nrrd", compress=False)
        write_lesions(lesions, self._dir / "lesions.json")
        self._out = self._dir / "results.json"
        args = [python or shutil.which("PythonSlicer") or sys.executable, "-m", "TLTTrackerLib.cli", "track",
                str(self._dir / "baseline.nrrd"), str(self._dir / "followup.nrrd"),
                "--lesions", str(self._dir / "lesions.json"), "--out", str(self._out), "--method", method,
                "--device", device, "--progress-json"]
        if model:
            args += ["--model", str(model)]
        if registration:
            (self._dir / "registration.json").write_text(json.dumps(registration))
            args += ["--registration-in", str(self._dir / "registration.json")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_OR_INSTALL_DIR), os.environ.get("PYTHONPATH", "")]))
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                      cwd=str(REPO_OR_INSTALL_DIR))
        self._lines: queue.Queue[str] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self._proc.stdout, self._lines), daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()
        self.progress = (0.0, "starting")

    @staticmethod
    def _pump(stream, sink) -> None:
        for line in stream:
            sink.put(line)

    def _pump_err(self) -> None:
        for line in self._proc.stderr:
            self._stderr.append(line.rstrip())

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
        self._proc.wait(timeout)

    def cancel(self) -> None:
        """Stop the child process; nothing was written to the scene."""
        if self.running:
            self._proc.kill()
            self._proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def results(self) -> list:
        """Tracked lesions once the process has ended; raises TLTError with the CLI's message on failure."""
        from TLTTrackerLib.results import results_from_dict

        self._proc.wait()
        try:
            if self._proc.returncode != 0:
                errors = [line for line in self._stderr if line.startswith("error:")]
                detail = errors[-1][len("error:"):].strip() if errors else (self._stderr[-1] if self._stderr else "")
                raise TLTError(detail or f"tracking process failed (exit code {self._proc.returncode})")
            payload = json.loads(self._out.read_text())
            self.registration = payload.get("registration")
            return results_from_dict(payload)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

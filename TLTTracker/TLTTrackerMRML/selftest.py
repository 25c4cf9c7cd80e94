"""The module's self-test scenario, shared by ``TLTTrackerTest`` (inside Slicer) and pytest (under slicer-core).

A CT-like phantom pair with known lesion positions (no download), tracked three ways: in process (the console
API), in a child process reusing the pair's registration (the GUI path), and a run that is cancelled.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import vtk

from TLTTrackerLib.geometry import lps_to_ras, ras_to_lps


def _world_lps(points_node) -> dict[str, np.ndarray]:
    out = {}
    for n in range(points_node.GetNumberOfControlPoints()):
        ras = [0.0, 0.0, 0.0]
        points_node.GetNthControlPointPositionWorld(n, ras)
        out[points_node.GetNthControlPointLabel(n)] = ras_to_lps(np.array(ras))
    return out


def run_self_test(
    scene,
    logic,
    python: str | Sequence[str] | None = None,
    method: str = "auto",
    process_events: Callable[[], Any] | None = None,
    log: Callable[[str], Any] = print,
) -> dict[str, float]:
    """Run the scenario; raises AssertionError on a failed check. Returns the measured errors (mm).

    Args:
        scene: the MRML scene to add the phantom volumes and points to.
        logic: a ``TrackingLogic`` (``TLTTrackerLogic`` in Slicer).
        python: interpreter command for the child process (PythonSlicer in Slicer).
        method: method of the in-process run ("auto" in Slicer; "affine" keeps pytest fast).
        process_events: called while waiting for the child process (``slicer.app.processEvents``).
    """
    import time

    from TLTTrackerLib.phantom import make_phantom
    from TLTTrackerLib.registration import RegistrationResult
    from TLTTrackerLib.synthetic import make_pair

    from .nodes import node_from_volume

    log("Making a phantom pair")
    volume, lesions = make_phantom(3, shape_kji=(56, 112, 112), spacing_mm=(2.0, 2.0, 3.0), n_lesions=3)
    pair = make_pair(volume, lesions, 4)
    baseline = node_from_volume(pair.baseline, scene, "TLT self-test baseline")
    followup = node_from_volume(pair.followup, scene, "TLT self-test follow-up")
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "TLT self-test lesions")
    for les in pair.baseline_lesions:
        points.AddControlPointWorld(vtk.vtkVector3d(*lps_to_ras(les.center_lps_mm)), les.id)
    truth = {les.id: les.center_lps_mm for les in pair.followup_lesions}

    log(f"Tracking in process ({method})")
    output, table = logic.track(baseline, followup, points, method=method)
    errors = [float(np.linalg.norm(p - truth[label])) for label, p in _world_lps(output).items()]
    assert table.GetNumberOfRows() == len(truth) and len(errors) == len(truth), "one row and point per lesion"
    limit = 15.0 if method == "affine" else 2.0
    assert np.median(errors) < limit, f"median error {np.median(errors):.2f} mm >= {limit} mm"

    log("Tracking in a child process (the GUI path): registration reused, only what changed is computed")
    moved = pair.baseline_lesions[0].center_lps_mm + [2.0, -1.0, 0.0]
    points.SetNthControlPointPositionWorld(0, *lps_to_ras(moved))
    job = logic.start_background(baseline, followup, points, method="affine", python=python)
    assert "--registration-in" in job.args, "the pair's registration was not reused"
    assert len(job.context[2]) == (1 if method == "affine" else len(truth)), "re-tracked more than needed"
    while job.running:
        if process_events:
            process_events()
        time.sleep(0.05)
    output2, _ = logic.finish_background(job, baseline)
    forward = RegistrationResult.from_dict(logic.registration_dict()).baseline_to_followup
    inputs = {label: forward.apply(p) for label, p in _world_lps(points).items()}
    through = [float(np.linalg.norm(p - inputs[label])) for label, p in _world_lps(output2).items()]
    assert max(through) < 0.01, f"child process result differs from the registration by {max(through):.3f} mm"

    log("Cancel stops the child process")
    running = logic.start_background(baseline, followup, points, method="refine", heatmaps=True, python=python)
    running.cancel()
    assert not running.running, "the child process survived Cancel"
    return {"median_error_mm": float(np.median(errors)), "background_max_difference_mm": max(through)}

"""The module's node-level Logic on a phantom pair under slicer-core: in-process and background runs."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import slicer
import vtk

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "TLTTracker"))

from TLTTrackerMRML import BackgroundTracking, TrackingLogic, lesions_from_markups, node_from_volume  # noqa: E402
from TLTTrackerLib.errors import InputError, TLTError  # noqa: E402
from TLTTrackerLib.geometry import lps_to_ras, ras_to_lps  # noqa: E402
from TLTTrackerLib.phantom import make_phantom  # noqa: E402
from TLTTrackerLib.synthetic import make_pair  # noqa: E402


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(3)
    volume, lesions = make_phantom(rng)
    return make_pair(volume, lesions, rng)


@pytest.fixture
def scene_nodes(pair):
    scene = slicer.vtkMRMLScene()
    app = slicer.vtkMRMLApplicationLogic()
    app.SetMRMLScene(scene)
    baseline = node_from_volume(pair.baseline, scene, "baseline")
    followup = node_from_volume(pair.followup, scene, "follow-up")
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "lesions")
    points.SetControlPointLabelFormat("L%d")
    for les in pair.baseline_lesions:
        n = points.AddControlPointWorld(vtk.vtkVector3d(*lps_to_ras(les.center_lps_mm)), les.id)
        points.SetNthControlPointDescription(n, f"radius_mm={les.radius_mm:.2f}")
    yield scene, baseline, followup, points
    scene.Clear(1)


def _errors(output, pair):
    truth = {les.id: les.center_lps_mm for les in pair.followup_lesions}
    errs = []
    for n in range(output.GetNumberOfControlPoints()):
        ras = [0.0, 0.0, 0.0]
        output.GetNthControlPointPositionWorld(n, ras)
        errs.append(np.linalg.norm(ras_to_lps(np.array(ras)) - truth[output.GetNthControlPointLabel(n)]))
    return np.array(errs)


def test_track_places_follow_up_points_and_fills_table(scene_nodes, pair):
    scene, baseline, followup, points = scene_nodes
    logic = TrackingLogic()
    seen = []
    output, table = logic.track(baseline, followup, points, progress=lambda f, m: seen.append(f))
    errors = _errors(output, pair)
    assert output.GetNumberOfControlPoints() == len(pair.baseline_lesions)
    assert np.median(errors) < 2.0, errors
    assert table.GetTable().GetNumberOfRows() == len(pair.baseline_lesions)
    assert seen[-1] == 1.0
    assert output.GetScene() is scene and baseline.GetImageData() is not None  # inputs untouched


def test_retrack_only_changed_lesions_and_reuse_registration(scene_nodes, monkeypatch):
    scene, baseline, followup, points = scene_nodes
    logic = TrackingLogic()
    output, table = logic.track(baseline, followup, points, method="affine")
    tracker = logic._tracker
    calls = []
    original = tracker.track
    monkeypatch.setattr(tracker, "track", lambda lesions, **kw: calls.append(len(lesions)) or original(lesions, **kw))
    monkeypatch.setattr(tracker, "set_pair", lambda *a, **k: pytest.fail("registration recomputed"))
    pos = [0.0, 0.0, 0.0]
    points.GetNthControlPointPosition(0, pos)
    points.SetNthControlPointPosition(0, pos[0] + 2.0, pos[1], pos[2])
    logic.track(baseline, followup, points, output_node=output, table_node=table, method="affine")
    assert calls == [1]
    assert output.GetNumberOfControlPoints() == points.GetNumberOfControlPoints()


def test_clear_errors(scene_nodes):
    scene, baseline, followup, points = scene_nodes
    logic = TrackingLogic()
    with pytest.raises(InputError, match="select a baseline"):
        logic.track(None, followup, points)
    with pytest.raises(InputError, match="same volume"):
        logic.track(baseline, baseline, points)
    far = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "far")
    far.AddControlPoint(vtk.vtkVector3d(5000.0, 0.0, 0.0), "X")
    with pytest.raises(InputError, match="outside the baseline"):
        logic.track(baseline, followup, far, method="affine")


def test_background_run_matches_and_cancel_leaves_nothing(scene_nodes, pair):
    scene, baseline, followup, points = scene_nodes
    lesions = lesions_from_markups(points)
    job = BackgroundTracking(pair.baseline, pair.followup, lesions, method="affine", python=sys.executable)
    job.wait(120)
    fraction, _ = job.poll()
    results = job.results()
    assert fraction == 1.0 and [r.id for r in results] == [les.id for les in lesions]
    logic = TrackingLogic()
    output, _ = logic.apply_results(results, scene)
    assert np.median(_errors(output, pair)) < 15  # affine only
    again = BackgroundTracking(pair.baseline, pair.followup, lesions, method="affine", python=sys.executable,
                               registration=job.registration)
    again.wait(120)
    assert len(again.results()) == len(lesions)
    slow = BackgroundTracking(pair.baseline, pair.followup, lesions, python=sys.executable)
    slow.cancel()
    assert not slow.running


def test_background_failure_reports_the_cli_message(pair):
    from TLTTrackerLib.lesions import Lesion

    job = BackgroundTracking(pair.baseline, pair.followup, [Lesion("X", [9999.0, 0, 0], 5)], method="affine",
                             python=sys.executable)
    with pytest.raises(TLTError, match="outside the baseline"):
        job.results()

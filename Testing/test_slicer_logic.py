"""The module's node-level Logic on a phantom pair under slicer-core: in-process and background runs."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import slicer
import vtk

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "TLTTracker"))

from TLTTrackerMRML import (  # noqa: E402
    BackgroundTracking,
    TrackingLogic,
    lesions_from_markups,
    node_from_volume,
    volume_from_node,
)
from TLTTrackerLib.errors import InputError, TLTError  # noqa: E402
from TLTTrackerLib.geometry import lps_to_ras, ras_to_lps  # noqa: E402
from TLTTrackerLib.phantom import make_phantom  # noqa: E402
from TLTTrackerLib.synthetic import make_pair  # noqa: E402


@pytest.fixture(scope="module")
def pair():
    """A CT-like phantom pair with organ-scale non-rigid motion and exact lesion positions (2 x 2 x 3 mm voxels,
    3 lesions: small enough for CI, large enough for registration and local matching to be realistic)."""
    rng = np.random.default_rng(3)
    volume, lesions = make_phantom(rng, shape_kji=(56, 112, 112), spacing_mm=(2.0, 2.0, 3.0), n_lesions=3)
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


def test_retrack_only_changed_lesions_and_reuse_registration(registered, monkeypatch):
    scene, baseline, followup, points, logic, output, table = registered
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
    baseline.SetName("renamed")  # renaming (or display changes) must not invalidate the registration
    logic.track(baseline, followup, points, output_node=output, table_node=table, method="affine")
    assert calls == [1]


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
    assert job.registration is not None  # kept for reuse by the next run
    slow = BackgroundTracking(pair.baseline, pair.followup, lesions, python=sys.executable)
    slow.cancel()
    assert not slow.running


def test_background_failure_reports_the_cli_message(pair):
    from TLTTrackerLib.lesions import Lesion

    from TLTTrackerLib.transforms import AffineTransform

    identity = {"baseline_to_followup": AffineTransform.identity().to_dict(), "metric_value": 0.0}
    job = BackgroundTracking(pair.baseline, pair.followup, [Lesion("X", [9999.0, 0, 0], 5)], method="affine",
                             python=sys.executable, registration=identity)  # no registration: fails fast
    with pytest.raises(TLTError, match="outside the baseline"):
        job.results()


# ---------------------------------------------------------------------------------------------- GUI path
@pytest.fixture(scope="module")
def registered(pair):
    """One scene with the pair, lesion points and a logic that has registered the pair once (affine)."""
    scene = slicer.vtkMRMLScene()
    baseline = node_from_volume(pair.baseline, scene, "baseline")
    followup = node_from_volume(pair.followup, scene, "follow-up")
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "lesions")
    for les in pair.baseline_lesions:
        points.AddControlPointWorld(vtk.vtkVector3d(*lps_to_ras(les.center_lps_mm)), les.id)
    logic = TrackingLogic()
    output, table = logic.track(baseline, followup, points, method="affine")
    return scene, baseline, followup, points, logic, output, table


def test_background_retracks_only_moved_lesion_reusing_the_registration(registered):
    from TLTTrackerLib.registration import RegistrationResult

    scene, baseline, followup, points, logic, output, table = registered
    assert logic.start_background(baseline, followup, points, method="affine") is None  # nothing changed
    pos = [0.0, 0.0, 0.0]
    points.GetNthControlPointPositionWorld(1, pos)
    points.SetNthControlPointPositionWorld(1, pos[0] + 3.0, pos[1] - 2.0, pos[2])
    job = logic.start_background(baseline, followup, points, method="affine", python=sys.executable)
    assert "--registration-in" in job.args and len(job.context[2]) == 1  # one lesion, no new registration
    job.wait(120)
    output, table = logic.finish_background(job, baseline, output, table)
    assert output.GetNumberOfControlPoints() == points.GetNumberOfControlPoints()
    # through the child process and back: the moved lesion lands where the cached registration maps it
    forward = RegistrationResult.from_dict(logic.registration_dict()).baseline_to_followup
    expected = lps_to_ras(forward.apply(ras_to_lps(np.array(pos) + [3.0, -2.0, 0.0])))
    got = [0.0, 0.0, 0.0]
    output.GetNthControlPointPositionWorld(1, got)
    np.testing.assert_allclose(got, expected, atol=0.01)
    assert table.GetNumberOfRows() == points.GetNumberOfControlPoints()
    assert table.GetCellText(1, 0) == points.GetNthControlPointLabel(1)  # column titles are not a data row


def test_heatmap_becomes_a_volume_node_in_the_follow_up_frame(registered):
    scene, baseline, followup, points, logic, *_ = registered
    one = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "one")
    p = [0.0, 0.0, 0.0]
    points.GetNthControlPointPositionWorld(0, p)
    one.AddControlPointWorld(vtk.vtkVector3d(*p), "L/1")  # a label that is no safe file name
    output, _ = logic.track(baseline, followup, one, method="refine", heatmaps=True)
    node = logic.heatmap_nodes["L/1"]
    assert node.GetName() == "L/1 match score" and node.GetAttribute("TLTTracker.heatmapFor") == "L/1"
    heat = volume_from_node(node)
    tracked = [0.0, 0.0, 0.0]
    output.GetNthControlPointPositionWorld(0, tracked)
    assert heat.contains_lps(ras_to_lps(np.array(tracked)))  # the map surrounds the tracked centre
    logic.track(baseline, followup, one, method="refine", heatmaps=True)  # cached: no second node
    volumes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    marked = [volumes.GetItemAsObject(i) for i in range(volumes.GetNumberOfItems())]
    assert len([n for n in marked if n.GetAttribute("TLTTracker.heatmapFor")]) == 1


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        return [int(c) for c in open(path).read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cancel_kills_the_launcher_and_its_interpreter(pair):
    """PythonSlicer is a launcher that starts the real interpreter as a child: Cancel must stop both."""
    import time

    from TLTTrackerLib.lesions import Lesion

    launcher = ["/bin/sh", "-c", '"$0" "$@"; exit $?', sys.executable]  # like PythonSlicer: python is a child
    job = BackgroundTracking(pair.baseline, pair.followup, [Lesion("L1", pair.baseline_lesions[0].center_lps_mm)],
                             method="refine", python=launcher)
    deadline = time.monotonic() + 20
    while not _children(job.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    interpreter = _children(job.pid)
    assert interpreter, "the launcher did not start the interpreter"
    job.cancel()
    deadline = time.monotonic() + 20  # a killed interpreter may take a moment to exit on a loaded machine
    while any(_alive(pid) for pid in interpreter) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not job.running and not any(_alive(pid) for pid in interpreter)
    with pytest.raises(TLTError, match="cancelled"):
        job.results()


def test_environment_checks(tmp_path):
    from TLTTrackerLib.errors import DeviceError, ModelFileError
    from TLTTrackerLib.tracker import METHODS
    from TLTTrackerMRML import environment

    assert environment.methods() == ("auto", *METHODS)
    assert environment.resolve_method_and_model("auto", "bundled", None) == ("auto", None)
    assert environment.resolve_method_and_model("auto", "none", None)[0] in environment.methods()
    with pytest.raises(ModelFileError, match="not found"):
        environment.resolve_method_and_model("auto", "file", tmp_path / "missing.pt")
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_text("hello")
    with pytest.raises(ModelFileError, match="not a PyTorch model"):
        environment.check_model_spec(str(not_a_model))
    with pytest.raises(InputError, match="unknown method"):
        environment.resolve_method_and_model("magic", "bundled", None)
    assert environment.needs_torch("affine", None) is False
    assert environment.needs_torch("tlt", None) is True
    assert environment.needs_torch("auto", None) is False  # auto is refine, bundled model or not
    assert environment.missing_requirements(["numpy>=1", "SimpleITK", "torch", "scipy>=1.0"]) == []
    assert environment.missing_requirements(["surely-not-installed-pkg>=1"]) == ["surely-not-installed-pkg>=1"]
    kind, text = environment.detect_device()
    assert kind in ("cpu", "cuda") and text
    if kind == "cpu":
        environment.check_device("cuda", uses_torch=False)  # model-free methods ignore the device
        with pytest.raises(DeviceError, match="no NVIDIA GPU"):
            environment.check_device("cuda", uses_torch=True)


def test_ensure_dependencies_asks_before_installing_and_explains_refusals(monkeypatch):
    from TLTTrackerMRML import environment

    asked, installed = [], []

    def no_extension():
        raise ImportError("no PyTorchUtils")

    # model-free methods with everything present: no dialog, nothing installed
    environment.ensure_dependencies("affine", None, asked.append, installed.append, no_extension)
    assert asked == [] and installed == []
    monkeypatch.setattr(environment, "missing_requirements", lambda reqs: ["scipy>=1.10"])
    with pytest.raises(TLTError, match="missing: scipy"):
        environment.ensure_dependencies("affine", None, lambda text: asked.append(text) or False,
                                        installed.append, no_extension)
    assert "scipy>=1.10" in asked[-1] and installed == []
    environment.ensure_dependencies("affine", None, lambda text: True, installed.append, no_extension)
    assert installed == ["scipy>=1.10"]
    # a learned method without torch: the PyTorch extension is required, then consent, then its installer
    monkeypatch.setattr(environment, "missing_requirements", lambda reqs: [])
    monkeypatch.setattr(environment, "torch_installed", lambda: False)
    with pytest.raises(TLTError, match="PyTorch extension"):
        environment.ensure_dependencies("tlt", "m.pt", lambda text: True, installed.append, no_extension)
    with pytest.raises(TLTError, match="PyTorch is required"):
        environment.ensure_dependencies("tlt", "m.pt", lambda text: False, installed.append, lambda: lambda: True)
    with pytest.raises(TLTError, match="not installed"):
        environment.ensure_dependencies("tlt", "m.pt", lambda text: True, installed.append, lambda: lambda: False)
    environment.ensure_dependencies("tlt", "m.pt", lambda text: True, installed.append, lambda: lambda: True)


def test_views_show_the_pair_side_by_side_and_jump_to_a_lesion():
    from TLTTrackerMRML import views

    class Recorder:
        """Stands in for the Qt layout manager and slice widgets (not in slicer-core): records the calls."""

        def __init__(self, log, name=""):
            self.log, self.name = log, name

        def __getattr__(self, attr):
            def call(*args):
                self.log.append((self.name, attr, args))
                return Recorder(self.log, self.name)

            return call

    log = []
    scene = slicer.vtkMRMLScene()
    base = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    follow = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    heat = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    points = []
    for pos in ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0)):
        node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
        node.AddControlPoint(*pos, "L1")
        points.append(node)

    class Layout:
        def setLayout(self, layout):
            log.append(("layout", layout))

        def sliceWidget(self, name):
            return Recorder(log, name)

    views.show_pair(Layout(), base, follow, *points)
    assert ("layout", slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView) in log
    assert ("Red", "SetBackgroundVolumeID", (base.GetID(),)) in log
    assert ("Yellow", "SetBackgroundVolumeID", (follow.GetID(),)) in log
    log.clear()
    views.jump_to_lesion(Layout(), *points, "L1", heat)
    assert ("Red", "JumpSliceByCentering", (1.0, 2.0, 3.0)) in log
    assert ("Yellow", "JumpSliceByCentering", (4.0, 5.0, 6.0)) in log
    assert ("Yellow", "SetForegroundVolumeID", (heat.GetID(),)) in log
    log.clear()
    views.jump_to_lesion(Layout(), *points, "L9", None)  # unknown label: no jump, no overlay
    assert not any(entry[1] in ("JumpSliceByCentering", "SetForegroundVolumeID") for entry in log)

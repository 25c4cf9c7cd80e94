"""TLTTracker: follow lesions from a baseline CT to a follow-up CT (3D Slicer scripted module).

A thin shell: the Widget talks only to the parameter node and the Logic; the Logic converts nodes to library
objects (``TLTTrackerMRML``, the only place where RAS becomes LPS) and calls ``TLTTrackerLib``. Tracking runs in
a child process (``TLTTrackerMRML.background``) so Slicer stays responsive and Track turns into Cancel.
"""

from __future__ import annotations

import enum
import importlib.util
import logging
import shutil
import sys
from pathlib import Path
from typing import Annotated, Optional

# Source-tree runs: make the repository root (which holds TLTTrackerLib) importable.
if importlib.util.find_spec("TLTTrackerLib") is None:
    sys.path.append(str(Path(__file__).resolve().parents[1]))

import ctk
import qt
import slicer
import vtk
from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLMarkupsLineNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLTableNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from TLTTrackerLib.errors import TLTError
from TLTTrackerLib.tracker import METHODS
from TLTTrackerMRML import BackgroundTracking, TrackingLogic, environment, results_csv, set_radius_from_line
from TLTTrackerMRML import views

METHOD_CHOICES = ["auto", *METHODS]  # data-driven: a method added to the library appears here


class ModelSource(enum.Enum):
    BUNDLED = "bundled"
    FILE = "file"
    NONE = "none"

    def label(self) -> str:
        return {"bundled": _("Bundled model"), "file": _("Model from file"), "none": _("No model")}[
            self.value
        ]


class Device(enum.Enum):
    AUTO = "auto"
    CPU = "cpu"
    GPU = "cuda"

    def label(self) -> str:
        return {"auto": _("Auto"), "cpu": _("CPU"), "cuda": _("GPU (CUDA)")}[self.value]


# ---------------------------------------------------------------------------------------------- module
class TLTTracker(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("TLT Tracker")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
        self.parent.contributors = ["TLTTracker developers"]
        self.parent.helpText = _(
            "Follow lesions from a baseline CT to a follow-up CT. Place a point on each lesion of the baseline, "
            "press Track, and review the matching points on the follow-up in the results table. The scans are "
            "registered (affine) and each lesion is matched locally; every result carries a confidence."
            "<p><b>Intended use:</b> research software for reviewing lesions across time points. Not a medical "
            "device; not for clinical decisions. Check every tracked point.</p>"
            "<p>Method: W. Tang, H. Kang, H. Zhang, P. Yu, C. W. Arnold, R. Zhang. <i>Transformer Lesion "
            "Tracker.</i> MICCAI 2022 (arXiv:2206.06252). Benchmark: J. Cai et al. <i>Deep Lesion Tracker: "
            "Monitoring Lesions in 4D Longitudinal Imaging Studies.</i> CVPR 2021 (DLS / DeepLesion).</p>"
            '<p>Documentation: <a href="https://github.com/tlttracker/SlicerTLTTracker#readme">README</a>.</p>'
        )
        self.parent.acknowledgementText = _(
            "TLTTracker is a clean-room implementation of the Transformer Lesion Tracker idea. DLS annotations: "
            "JimmyCai91/DLT (CC-BY-SA-4.0). DeepLesion images: NIH Clinical Center."
        )


# ---------------------------------------------------------------------------------------------- parameters
@parameterNodeWrapper
class TLTTrackerParameterNode:
    """Everything the module's GUI shows, saved with the scene."""

    baselineVolume: vtkMRMLScalarVolumeNode
    followupVolume: vtkMRMLScalarVolumeNode
    baselineLesions: vtkMRMLMarkupsFiducialNode
    followupLesions: vtkMRMLMarkupsFiducialNode
    resultsTable: vtkMRMLTableNode
    radiusLine: vtkMRMLMarkupsLineNode
    defaultRadiusMm: Annotated[float, WithinRange(0.5, 150.0)] = 10.0
    method: Annotated[str, Choice(METHOD_CHOICES)] = "auto"
    modelSource: ModelSource = ModelSource.BUNDLED
    modelPath: Path = Path()
    device: Device = Device.AUTO
    showHeatmap: bool = False


# ---------------------------------------------------------------------------------------------- widget
class TLTTrackerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: Optional[TLTTrackerLogic] = None
        self._parameterNode: Optional[TLTTrackerParameterNode] = None
        self._parameterNodeGuiTag = None
        self._job: Optional[BackgroundTracking] = None
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self.onPollJob)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/TLTTracker.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = TLTTrackerLogic()
        self.ui.deviceStatusLabel.text = environment.detect_device()[1]
        self.ui.lesionsPlaceWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.lesionsPlaceWidget.buttonsVisible = False
        self.ui.lesionsPlaceWidget.placeButton().show()
        self.ui.lesionsPlaceWidget.placeButton().text = _("Add lesion")
        self.ui.lesionsPlaceWidget.placeButton().toolButtonStyle = qt.Qt.ToolButtonTextBesideIcon
        self.ui.lesionsPlaceWidget.placeMultipleMarkups = (
            slicer.qSlicerMarkupsPlaceWidget.ForcePlaceMultipleMarkups
        )
        self.ui.modelPathLineEdit.filters = ctk.ctkPathLineEdit.Files | ctk.ctkPathLineEdit.Readable
        self.ui.modelPathLineEdit.nameFilters = [_("PyTorch model (*.pt *.pth)"), _("All files (*)")]

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.trackButton.connect("clicked(bool)", self.onTrackButton)
        self.ui.radiusFromLineButton.connect("clicked(bool)", self.onRadiusFromLine)
        self.ui.exportButton.connect("clicked(bool)", self.onExportCsv)
        self.ui.resultsTableView.connect("selectionChanged()", self.onResultSelected)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.onCancel()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanTrack)

    def onSceneStartClose(self, caller, event) -> None:
        self.onCancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        p = self._parameterNode
        if not p.baselineVolume:
            p.baselineVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        if not p.baselineLesions:
            p.baselineLesions = self.logic.newLesionList(slicer.mrmlScene)

    def setParameterNode(self, inputParameterNode: Optional[TLTTrackerParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanTrack)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanTrack)
            self._checkCanTrack()

    def _checkCanTrack(self, caller=None, event=None) -> None:
        p = self._parameterNode
        self.ui.lesionsPlaceWidget.setCurrentNode(p.baselineLesions if p else None)
        self.ui.resultsTableView.setMRMLTableNode(p.resultsTable if p else None)
        self.ui.modelPathLineEdit.enabled = bool(p and p.modelSource == ModelSource.FILE)
        if self._job is not None:
            return
        ready = bool(p and p.baselineVolume and p.followupVolume and p.baselineLesions)
        self.ui.trackButton.enabled = ready
        self.ui.trackButton.toolTip = (
            _("Track the baseline lesions into the follow-up")
            if ready
            else _("Select a baseline and a follow-up volume and place lesion points")
        )

    @staticmethod
    def _showError(message: str, exc: Exception) -> None:
        """One clear line for user errors (TLTError); the traceback as details for anything else."""
        logging.error(f"{message} {exc}")
        if isinstance(exc, TLTError):
            slicer.util.errorDisplay(f"{message}\n\n{exc}")
        else:
            import traceback

            slicer.util.errorDisplay(f"{message}\n\n{exc}", detailedText=traceback.format_exc())

    # ------------------------------------------------------------------ tracking, in the background
    def onTrackButton(self) -> None:
        if self._job is not None:
            self.onCancel()
            return
        p = self._parameterNode
        try:
            with slicer.util.WaitCursor():
                method, model = self.logic.resolveChoices(p.method, p.modelSource.value, p.modelPath)
                self.logic.ensureDependencies(method, model)
                job = self.logic.start_background(
                    p.baselineVolume,
                    p.followupVolume,
                    p.baselineLesions,
                    method,
                    p.device.value,
                    model,
                    p.defaultRadiusMm,
                    heatmaps=p.showHeatmap,
                    python=self.logic.pythonCommand(),
                )
        except Exception as exc:  # noqa: BLE001 (shown to the user)
            self._showError(_("Could not start tracking."), exc)
            return
        if job is None:  # nothing changed since the last run: just refresh the outputs
            self._finish(None)
            return
        self._job = job
        self.ui.trackButton.text = _("Cancel")
        self.ui.progressBar.value = 0
        self.ui.statusLabel.text = _("Starting...")
        self._timer.start()

    def onPollJob(self) -> None:
        if self._job is None:
            self._timer.stop()
            return
        fraction, message = self._job.poll()
        self.ui.progressBar.value = int(100 * fraction)
        self.ui.statusLabel.text = message
        if self._job.running:
            return
        self._timer.stop()
        job, self._job = self._job, None
        self._finish(job)

    def _finish(self, job: Optional[BackgroundTracking]) -> None:
        self.ui.trackButton.text = _("Track")
        p = self._parameterNode
        try:
            with slicer.util.WaitCursor():
                output, table = self.logic.finish_background(
                    job, p.baselineVolume, p.followupLesions, p.resultsTable
                )
                p.followupLesions, p.resultsTable = output, table
                self.logic.showResults(p.baselineVolume, p.followupVolume, p.baselineLesions, output)
        except Exception as exc:  # noqa: BLE001 (shown to the user)
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = _("Tracking failed: {error}").format(error=exc)
            self._showError(_("Tracking failed."), exc)
        else:
            self.ui.progressBar.value = 100
            fresh = 0 if job is None else len(job.context[2])
            self.ui.statusLabel.text = _("Tracked {n} lesions ({k} new or changed).").format(
                n=output.GetNumberOfControlPoints(), k=fresh
            )
        self._checkCanTrack()

    def onCancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self._job = None
            self._timer.stop()
            self.ui.trackButton.text = _("Track")
            self.ui.statusLabel.text = _("Cancelled: the scene was not changed.")
            self.ui.progressBar.value = 0
            self._checkCanTrack()

    # ------------------------------------------------------------------ review
    def onRadiusFromLine(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not set the radius."), waitCursor=False):
            label, radius = self.logic.setRadiusFromLine(p.baselineLesions, p.radiusLine)
            self.ui.statusLabel.text = _("{label}: radius {r:.1f} mm").format(label=label, r=radius)

    def onResultSelected(self) -> None:
        p = self._parameterNode
        rows = self.ui.resultsTableView.selectionModel().selectedRows()
        if not rows or not (p.baselineLesions and p.followupLesions):
            return
        label = rows[0].sibling(rows[0].row(), 0).data()  # the Lesion column, whatever the sort order
        self.logic.jumpToLesion(p.baselineLesions, p.followupLesions, str(label), p.followupVolume)

    def onExportCsv(self) -> None:
        path = qt.QFileDialog.getSaveFileName(
            None, _("Export results"), "tlttracker_results.csv", "CSV (*.csv)"
        )
        if path:
            with slicer.util.tryWithErrorDisplay(_("Could not export the results."), waitCursor=True):
                self.logic.exportCsv(path)


# ---------------------------------------------------------------------------------------------- logic
class TLTTrackerLogic(ScriptedLoadableModuleLogic, TrackingLogic):
    """No GUI: explicit nodes in and out. From the Python console::

    logic = slicer.util.getModuleLogic("TLTTracker")
    output, table = logic.track(baselineNode, followupNode, lesionsNode)   # synchronous
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        TrackingLogic.__init__(self)

    def getParameterNode(self):
        return TLTTrackerParameterNode(super().getParameterNode())

    @staticmethod
    def newLesionList(scene):
        node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Baseline lesions")
        node.CreateDefaultDisplayNodes()
        node.SetControlPointLabelFormat("L%d")
        return node

    @staticmethod
    def resolveChoices(method: str, modelSource: str, modelPath) -> tuple[str, Optional[str]]:
        """GUI choices -> (method, model spec) for :meth:`start_background` (raises ModelFileError/InputError)."""
        return environment.resolve_method_and_model(method, modelSource, modelPath)

    @staticmethod
    def pythonCommand() -> list[str]:
        """The interpreter for the tracking process: Slicer's PythonSlicer (on PATH inside Slicer)."""
        python = shutil.which("PythonSlicer") or str(Path(sys.executable).with_name("PythonSlicer"))
        return [python] if Path(python).exists() else [sys.executable]

    def ensureDependencies(self, method: str, model: Optional[str] = None) -> None:
        """Install what the chosen method needs, with the user's consent, on the first Track (never at
        import); the policy is ``environment.ensure_dependencies``, this passes Slicer's dialogs and installers."""
        environment.ensure_dependencies(
            method, model, slicer.util.confirmOkCancelDisplay, slicer.util.pip_install, self._torchInstaller,
            translate=_,
        )

    @staticmethod
    def _torchInstaller():
        """PyTorch through the PyTorch extension's PyTorchUtils (ImportError when that extension is missing)."""
        import PyTorchUtils

        def install() -> bool:
            return PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=False, torchVersionRequirement=">=2.2"
            ) is not None

        return install

    @staticmethod
    def setRadiusFromLine(lesionsNode, lineNode) -> tuple[str, float]:
        """Half the length of ``lineNode`` becomes the radius of the lesion nearest to the line's centre."""
        return set_radius_from_line(lesionsNode, lineNode)

    def showResults(self, baselineNode, followupNode, baselineLesions, followupLesions) -> None:
        """Baseline | follow-up side by side (axial, unlinked); each point list only in its own view."""
        views.show_pair(slicer.app.layoutManager(), baselineNode, followupNode, baselineLesions, followupLesions)

    def jumpToLesion(self, baselineLesions, followupLesions, label: str, followupNode=None) -> None:
        """Centre both views on the lesion's baseline and tracked points; its heatmap (if any) over the
        follow-up."""
        views.jump_to_lesion(slicer.app.layoutManager(), baselineLesions, followupLesions, label,
                             self.heatmap_nodes.get(label))

    def exportCsv(self, path: str) -> None:
        from TLTTrackerLib.io import atomic_write

        text = results_csv(self.last_results)
        atomic_write(Path(path), lambda tmp: tmp.write_text(text))


# ---------------------------------------------------------------------------------------------- test
class TLTTrackerTest(ScriptedLoadableModuleTest):
    """Self-test on a phantom pair made by the library (no network): the console API in process, then the
    GUI's background path (a PythonSlicer child process reusing the registration) and its Cancel. The scenario
    lives in ``TLTTrackerMRML.selftest`` so that pytest runs it too, under slicer-core."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_track_phantom_pair()

    def test_track_phantom_pair(self):
        from TLTTrackerMRML.selftest import run_self_test

        logic = TLTTrackerLogic()
        measured = run_self_test(slicer.mrmlScene, logic, python=logic.pythonCommand(), method="auto",
                                 process_events=slicer.app.processEvents, log=self.delayDisplay)
        self.delayDisplay(f"Test passed: median error {measured['median_error_mm']:.2f} mm")

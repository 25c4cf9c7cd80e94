"""TLTTracker: follow lesions from a baseline CT to a follow-up CT (3D Slicer scripted module).

A thin shell: the Widget talks only to the parameter node and the Logic; the Logic converts nodes to library
objects (``TLTTrackerMRML``, the only place where RAS becomes LPS) and calls ``TLTTrackerLib``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

# Source-tree runs: make the repository root (which holds TLTTrackerLib) importable.
if importlib.util.find_spec("TLTTrackerLib") is None:
    sys.path.append(str(Path(__file__).resolve().parents[1]))

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

from TLTTrackerMRML import BackgroundTracking, TrackingLogic, lesions_from_markups, results_csv, volume_from_node

METHOD_CHOICES = ["auto", "refine", "affine"]
DEVICE_CHOICES = ["auto", "cpu", "cuda"]


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
            "<p>Research software, not for clinical decisions.</p>"
            "<p>Method: W. Tang et al., <i>Transformer Lesion Tracker</i>, MICCAI 2022 (arXiv:2206.06252). "
            "Benchmark: J. Cai et al., <i>Deep Lesion Tracker</i>, CVPR 2021 (DLS / DeepLesion).</p>"
            '<p>Documentation: <a href="https://github.com/tlttracker/SlicerTLTTracker">README</a>.</p>'
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
    device: Annotated[str, Choice(DEVICE_CHOICES)] = "auto"
    modelPath: str = ""
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
        self.ui.deviceStatusLabel.text = self.logic.detectedDevice()
        self.ui.lesionsPlaceWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.lesionsPlaceWidget.buttonsVisible = False
        self.ui.lesionsPlaceWidget.placeButton().show()
        self.ui.lesionsPlaceWidget.placeMultipleMarkups = slicer.qSlicerMarkupsPlaceWidget.ForcePlaceMultipleMarkups

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
        if self._job is not None:
            return
        ready = bool(p and p.baselineVolume and p.followupVolume and p.baselineLesions)
        self.ui.trackButton.enabled = ready
        self.ui.trackButton.toolTip = _("Track the baseline lesions into the follow-up") if ready else _(
            "Select a baseline and a follow-up volume and place lesion points")
        self.ui.resultsTableView.setMRMLTableNode(p.resultsTable if p else None)

    # ------------------------------------------------------------------ tracking, in the background
    def onTrackButton(self) -> None:
        if self._job is not None:
            self.onCancel()
            return
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not start tracking."), waitCursor=True):
            self.logic.ensureDependencies(p.method)
            self._job = self.logic.startBackgroundTracking(
                p.baselineVolume, p.followupVolume, p.baselineLesions, p.method, p.device,
                p.modelPath or None, p.defaultRadiusMm, heatmaps=p.showHeatmap)
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
        self.ui.trackButton.text = _("Track")
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Tracking failed."), waitCursor=True):
            output, table = self.logic.finishBackgroundTracking(job, p.baselineVolume, p.followupVolume,
                                                                p.followupLesions, p.resultsTable, p.showHeatmap)
            p.followupLesions, p.resultsTable = output, table
            self.ui.statusLabel.text = _("Tracked {n} lesions.").format(n=output.GetNumberOfControlPoints())
            self.logic.showSideBySide(p.baselineVolume, p.followupVolume)
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
        rows = [index.row() for index in rows]
        if rows and p.baselineLesions and p.followupLesions:
            self.logic.jumpToLesion(p.baselineVolume, p.followupVolume, p.baselineLesions, p.followupLesions, rows[0])

    def onExportCsv(self) -> None:
        path = qt.QFileDialog.getSaveFileName(None, _("Export results"), "tlttracker_results.csv", "CSV (*.csv)")
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
    def detectedDevice() -> str:
        """A torch-free GPU probe, for the GUI (importing torch to draw a label would take seconds)."""
        import shutil

        has_gpu = os.path.exists("/proc/driver/nvidia/gpus") or shutil.which("nvidia-smi") is not None
        return _("NVIDIA GPU found (used by learned models); refine/affine run on the CPU") if has_gpu else _(
            "No GPU found: everything runs on the CPU")

    def ensureDependencies(self, method: str) -> None:
        """Check Python packages the method needs; install only with the user's consent, never at import.

        refine/affine need numpy, scipy and SimpleITK, which Slicer ships; learned methods need torch, installed
        through the PyTorch extension (never a plain pip install of torch, never reinstalling numpy/SimpleITK).
        """
        for name in ("numpy", "scipy", "SimpleITK"):
            if importlib.util.find_spec(name) is None:
                raise RuntimeError(f"Python package {name} is missing from this Slicer; reinstall Slicer")
        if method == "tlt" and importlib.util.find_spec("torch") is None:
            try:
                import PyTorchUtils
            except ImportError as exc:
                raise RuntimeError("The learned model needs PyTorch: install the PyTorch extension from the "
                                   "Extensions Manager, restart Slicer, and try again.") from exc
            if not slicer.util.confirmOkCancelDisplay(_("The learned model needs PyTorch (about 1-3 GB). Install "
                                                        "it now through the PyTorch extension?")):
                raise RuntimeError("PyTorch is required for the learned model; choose method 'refine' instead.")
            PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False)

    def startBackgroundTracking(self, baselineNode, followupNode, lesionsNode, method="auto", device="auto",
                                model=None, defaultRadiusMm=10.0, heatmaps=False) -> BackgroundTracking:
        if baselineNode is None or followupNode is None:
            raise ValueError(_("Select a baseline and a follow-up volume."))
        lesions = lesions_from_markups(lesionsNode, defaultRadiusMm)
        registration = self.registration_dict() if self._pair_key and self._pair_key[:2] == (
            self._nodeKey(baselineNode), self._nodeKey(followupNode)) else None
        return BackgroundTracking(volume_from_node(baselineNode), volume_from_node(followupNode), lesions, method,
                                  device, model, registration=registration, heatmaps=heatmaps)

    @staticmethod
    def _nodeKey(node):
        from TLTTrackerMRML.logic import _node_key

        return _node_key(node)

    def finishBackgroundTracking(self, job, baselineNode, followupNode, outputNode=None, tableNode=None,
                                 showHeatmap=False):
        results = job.results()
        scene = baselineNode.GetScene()
        output, table = self.apply_results(results, scene, outputNode, tableNode)
        output.SetName(f"{followupNode.GetName()} lesions")
        if showHeatmap:
            self.showHeatmaps(results, scene, followupNode)
        return output, table

    def showHeatmaps(self, results, scene, followupNode) -> None:
        from TLTTrackerMRML import node_from_volume

        for r in results:
            if r.heatmap is not None:
                node = node_from_volume(r.heatmap, scene, f"{r.id} match score")
                slicer.util.setSliceViewerLayers(foreground=node, foregroundOpacity=0.4)

    def setRadiusFromLine(self, lesionsNode, lineNode):
        """Half the length of ``lineNode`` becomes the radius of the lesion point nearest to the line's centre."""
        import numpy as np

        if lineNode is None or lineNode.GetNumberOfControlPoints() < 2:
            raise ValueError(_("Draw a line across the lesion first (Markups: line)."))
        if lesionsNode is None or lesionsNode.GetNumberOfControlPoints() == 0:
            raise ValueError(_("Place the lesion point first."))
        a, b = [0.0] * 3, [0.0] * 3
        lineNode.GetNthControlPointPositionWorld(0, a)
        lineNode.GetNthControlPointPositionWorld(1, b)
        centre = (np.array(a) + np.array(b)) / 2
        dists = []
        for n in range(lesionsNode.GetNumberOfControlPoints()):
            p = [0.0] * 3
            lesionsNode.GetNthControlPointPositionWorld(n, p)
            dists.append(np.linalg.norm(np.array(p) - centre))
        n = int(np.argmin(dists))
        radius = lineNode.GetLineLengthWorld() / 2.0
        lesionsNode.SetNthControlPointDescription(n, f"radius_mm={radius:.2f}")
        return lesionsNode.GetNthControlPointLabel(n), radius

    @staticmethod
    def showSideBySide(baselineNode, followupNode) -> None:
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
        for view, node in (("Red", baselineNode), ("Yellow", followupNode)):
            composite = layoutManager.sliceWidget(view).mrmlSliceCompositeNode()
            composite.SetBackgroundVolumeID(node.GetID())
            composite.SetLinkedControl(False)

    @staticmethod
    def jumpToLesion(baselineNode, followupNode, baselineLesions, followupLesions, row: int) -> None:
        layoutManager = slicer.app.layoutManager()
        label = followupLesions.GetNthControlPointLabel(row)
        for view, node in (("Red", baselineLesions), ("Yellow", followupLesions)):
            index = next((n for n in range(node.GetNumberOfControlPoints())
                          if node.GetNthControlPointLabel(n) == label), None)
            if index is None:
                continue
            ras = [0.0] * 3
            node.GetNthControlPointPositionWorld(index, ras)
            layoutManager.sliceWidget(view).mrmlSliceNode().JumpSliceByCentering(*ras)

    def exportCsv(self, path: str) -> None:
        from TLTTrackerLib.io import atomic_write

        text = results_csv(self.last_results)
        atomic_write(Path(path), lambda tmp: tmp.write_text(text))


# ---------------------------------------------------------------------------------------------- test
class TLTTrackerTest(ScriptedLoadableModuleTest):
    """Self-test on a phantom pair made by the library (no network)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_track_phantom_pair()

    def test_track_phantom_pair(self):
        import numpy as np

        from TLTTrackerLib.geometry import lps_to_ras, ras_to_lps
        from TLTTrackerLib.phantom import make_phantom
        from TLTTrackerLib.synthetic import make_pair
        from TLTTrackerMRML import node_from_volume

        self.delayDisplay("Making a phantom pair")
        rng = np.random.default_rng(3)
        volume, lesions = make_phantom(rng)
        pair = make_pair(volume, lesions, rng)
        baseline = node_from_volume(pair.baseline, slicer.mrmlScene, "baseline")
        followup = node_from_volume(pair.followup, slicer.mrmlScene, "follow-up")
        logic = TLTTrackerLogic()
        points = logic.newLesionList(slicer.mrmlScene)
        for les in pair.baseline_lesions:
            points.AddControlPointWorld(vtk.vtkVector3d(*lps_to_ras(les.center_lps_mm)), les.id)
        self.delayDisplay("Tracking")
        output, table = logic.track(baseline, followup, points)
        truth = {les.id: les.center_lps_mm for les in pair.followup_lesions}
        errors = []
        for n in range(output.GetNumberOfControlPoints()):
            ras = [0.0] * 3
            output.GetNthControlPointPositionWorld(n, ras)
            errors.append(np.linalg.norm(ras_to_lps(np.array(ras)) - truth[output.GetNthControlPointLabel(n)]))
        self.assertEqual(table.GetNumberOfRows(), len(pair.baseline_lesions))
        self.assertLess(float(np.median(errors)), 2.0)
        self.delayDisplay(f"Test passed: median error {np.median(errors):.2f} mm")

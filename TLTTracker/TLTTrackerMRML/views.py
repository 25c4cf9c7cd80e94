"""Slice-view navigation of the results: baseline | follow-up side by side, jump to a lesion, heatmap overlay.

Functions take the application's layout manager (``slicer.app.layoutManager()``) rather than importing the
GUI: this module imports nothing from Qt and loads under the non-Qt Slicer core. The Red view shows the
baseline, the Yellow view the follow-up.
"""

from __future__ import annotations

import slicer

VIEWS = ("Red", "Yellow")  # baseline, follow-up


def _slice_widgets(layout_manager) -> list:
    return [layout_manager.sliceWidget(name) for name in VIEWS]


def show_pair(layout_manager, baseline_node, followup_node, baseline_lesions, followup_lesions) -> None:
    """Baseline | follow-up side by side (axial, unlinked); each point list only in its own view."""
    layout_manager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
    for widget, volume, points in zip(
        _slice_widgets(layout_manager), (baseline_node, followup_node), (baseline_lesions, followup_lesions)
    ):
        composite = widget.mrmlSliceCompositeNode()
        composite.SetBackgroundVolumeID(volume.GetID())
        composite.SetForegroundVolumeID(None)
        composite.SetLinkedControl(False)
        widget.mrmlSliceNode().SetOrientationToAxial()
        widget.sliceLogic().FitSliceToAll()
        if points is not None and points.GetDisplayNode() is not None:
            points.GetDisplayNode().SetViewNodeIDs([widget.mrmlSliceNode().GetID()])


def jump_to_lesion(layout_manager, baseline_lesions, followup_lesions, label: str, heatmap=None) -> None:
    """Centre the baseline view on the lesion's baseline point and the follow-up view on its tracked point
    (the control points labelled ``label``); show ``heatmap`` (a volume node in the scene, or None) over the
    follow-up."""
    widgets = _slice_widgets(layout_manager)
    for widget, node in zip(widgets, (baseline_lesions, followup_lesions)):
        labels = [node.GetNthControlPointLabel(n) for n in range(node.GetNumberOfControlPoints())]
        index = labels.index(label) if label in labels else None
        if index is None:
            continue
        ras = [0.0] * 3
        node.GetNthControlPointPositionWorld(index, ras)
        widget.mrmlSliceNode().JumpSliceByCentering(*ras)
    if heatmap is not None and heatmap.GetScene() is not None:
        composite = widgets[1].mrmlSliceCompositeNode()
        composite.SetForegroundVolumeID(heatmap.GetID())
        composite.SetForegroundOpacity(0.4)

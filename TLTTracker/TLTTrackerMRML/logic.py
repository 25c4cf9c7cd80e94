"""TrackingLogic: track lesions between two volume nodes, node in and node out, with no GUI.

Two ways to run, same result:

- :meth:`TrackingLogic.track` (synchronous, in process): for the Python console, scripts and tests, and under
  the non-Qt ``slicer-core``.
- :meth:`TrackingLogic.start_background` / :meth:`TrackingLogic.finish_background` (out of process, see
  ``background.py``): Slicer stays responsive and Cancel works; nothing in the scene changes until
  ``finish_background`` writes the nodes.

Both share one cache: the pair's registration (reused for any method until a volume's voxels, geometry or
transform change) and per-lesion results (only new, moved or re-sized lesions, or another method, are tracked
again).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import vtk

from TLTTrackerLib.errors import DeviceError, InputError, TLTError
from TLTTrackerLib.geometry import lps_to_ras
from TLTTrackerLib.lesions import DEFAULT_RADIUS_MM, Lesion

from . import environment
from .background import BackgroundTracking
from .nodes import (
    _matrix,
    _to_world,
    fill_results_table,
    lesions_from_markups,
    markups_from_results,
    node_from_volume,
    volume_from_node,
)

HEATMAP_ATTRIBUTE = "TLTTracker.heatmapFor"


def _node_key(node) -> tuple:
    """What makes a volume node's content: voxels (image MTime), IJK->RAS and its parent transform.

    Renaming the node or changing its display does not change the key (no needless re-registration).
    """
    image = node.GetImageData()
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    ijk_to_ras = tuple(m.GetElement(r, c) for r in range(4) for c in range(4))
    return (
        node.GetID(),
        image.GetMTime() if image else 0,
        ijk_to_ras,
        tuple(np.round(_to_world(node), 9).ravel()),
    )


def _lesion_key(lesion: Lesion, method: str, model: str | None, heatmap: bool) -> tuple:
    return (
        lesion.id,
        tuple(np.round(lesion.center_lps_mm, 3)),
        round(lesion.radius_mm, 3),
        method,
        model,
        heatmap,
    )


def check_inside(volume_node, lesions: Sequence[Lesion]) -> None:
    """Every lesion lies inside the volume's voxel grid (world frame); else an InputError naming it in RAS."""
    ijk_to_world = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_world)
    world_to_ijk = np.linalg.inv(_to_world(volume_node) @ _matrix(ijk_to_world))
    dims = np.array(volume_node.GetImageData().GetDimensions(), dtype=float)
    for les in lesions:
        ras = lps_to_ras(les.center_lps_mm)
        ijk = (world_to_ijk @ np.append(ras, 1.0))[:3]
        if np.any(ijk < -0.5) or np.any(ijk > dims - 0.5):
            raise InputError(
                f"lesion {les.id} at RAS {np.round(ras, 1).tolist()} mm lies outside the baseline volume "
                f"{volume_node.GetName()!r}; place it on the baseline scan"
            )


class TrackingLogic:
    """Volume and markups nodes -> tracked follow-up points and a results table."""

    def __init__(self) -> None:
        self._pair: tuple | None = None
        self._registration: dict | None = None
        self._tracker: Any = None
        self._tracker_key: tuple | None = None
        self._done: dict[tuple, Any] = {}
        self.last_results: list = []
        self.heatmap_nodes: dict[str, Any] = {}

    # ------------------------------------------------------------------ shared checks and cache
    @staticmethod
    def resolve(method: str, model: str | None, device: str) -> tuple[str, str | None]:
        """Check method/model/device and return ``(method, model spec)``; ``model="none"``: no learned model."""
        if model == environment.NO_MODEL:
            method, model = environment.resolve_method_and_model(method, environment.NO_MODEL, None)
        elif method not in environment.methods():
            raise InputError(f"unknown method {method!r}; choose one of {', '.join(environment.methods())}")
        if model is not None:
            environment.check_model_spec(model)
        environment.check_device(device, environment.needs_torch(method, model))
        return method, model

    def _inputs(self, baseline_node, followup_node, lesions_node, default_radius_mm: float) -> list[Lesion]:
        if baseline_node is None or followup_node is None:
            raise InputError("select a baseline and a follow-up volume")
        if baseline_node is followup_node or baseline_node.GetID() == followup_node.GetID():
            raise InputError("baseline and follow-up are the same volume; select two different scans")
        for node in (baseline_node, followup_node):
            if node.GetImageData() is None:
                raise InputError(f"volume {node.GetName()!r} has no voxels; load the scan again")
        lesions = lesions_from_markups(lesions_node, default_radius_mm)
        check_inside(baseline_node, lesions)
        pair = (_node_key(baseline_node), _node_key(followup_node))
        if pair != self._pair:  # another scan pair (or edited voxels/geometry): forget everything
            self._pair, self._registration, self._tracker, self._tracker_key, self._done = (
                pair,
                None,
                None,
                None,
                {},
            )
        return lesions

    def registration_dict(self) -> dict | None:
        """The cached registration of the current pair (reused by later runs), if any."""
        return self._registration

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
        heatmaps: bool = False,
    ):
        """Track every point of ``lesions_node`` (on the baseline) into the follow-up, in this process.

        Returns ``(output_node, table_node)``; creates them in the baseline's scene when not given.
        ``model``: path or registry name; None = the library's default; ``"none"`` = no learned model.
        """
        from TLTTrackerLib.registration import RegistrationResult
        from TLTTrackerLib.tracker import LesionTracker

        method, model = self.resolve(method, model, device)
        lesions = self._inputs(baseline_node, followup_node, lesions_node, default_radius_mm)
        keys = [_lesion_key(les, method, model, heatmaps) for les in lesions]
        todo = [les for les, key in zip(lesions, keys) if key not in self._done]
        try:
            if todo and (self._tracker is None or self._tracker_key != (method, model, device)):
                if progress:
                    progress(0.0, "reading volumes")
                tracker = LesionTracker(method=method, model=model, device=device)
                reuse = RegistrationResult.from_dict(self._registration) if self._registration else None
                tracker.set_pair(
                    volume_from_node(baseline_node),
                    volume_from_node(followup_node),
                    registration=reuse,
                    progress=lambda f, m: progress(0.4 * f, m) if progress else None,
                )
                self._tracker, self._tracker_key = tracker, (method, model, device)
                self._registration = tracker.registration.to_dict()
            if todo:
                fresh = self._tracker.track(
                    todo,
                    cancel=cancel,
                    with_heatmap=heatmaps,
                    progress=lambda f, m: progress(0.4 + 0.6 * f, m) if progress else None,
                )
                self._done.update(
                    {_lesion_key(les, method, model, heatmaps): r for les, r in zip(todo, fresh)}
                )
        except MemoryError as exc:
            raise DeviceError(
                "out of memory while tracking; close other programs or crop the volumes"
            ) from exc
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():
                raise DeviceError(
                    "the GPU ran out of memory; choose CPU as the device and track again"
                ) from exc
            raise
        results = [self._done[key] for key in keys]
        if progress:
            progress(1.0, f"tracked {len(results)} lesions ({len(todo)} new or changed)")
        if heatmaps:
            self.apply_heatmaps(results, baseline_node.GetScene())
        return self.apply_results(results, baseline_node.GetScene(), output_node, table_node)

    # ------------------------------------------------------------------ background (Slicer GUI)
    def start_background(
        self,
        baseline_node,
        followup_node,
        lesions_node,
        method: str = "auto",
        device: str = "auto",
        model: str | None = None,
        default_radius_mm: float = DEFAULT_RADIUS_MM,
        heatmaps: bool = False,
        python: str | Sequence[str] | None = None,
    ) -> BackgroundTracking | None:
        """Start tracking the new or changed lesions in a child process (the pair's registration is reused).

        Returns the running job, or None when every lesion already has a current result (then call
        :meth:`finish_background` with None at once). The job carries what :meth:`finish_background` needs.
        """
        method, model = self.resolve(method, model, device)
        lesions = self._inputs(baseline_node, followup_node, lesions_node, default_radius_mm)
        keys = [_lesion_key(les, method, model, heatmaps) for les in lesions]
        todo = [les for les, key in zip(lesions, keys) if key not in self._done]
        self._pending = (self._pair, keys)
        if not todo:
            return None
        job = BackgroundTracking(
            volume_from_node(baseline_node),
            volume_from_node(followup_node),
            todo,
            method,
            device,
            model,
            registration=self._registration,
            python=python,
            heatmaps=heatmaps,
        )
        job.context = (self._pair, keys, [_lesion_key(les, method, model, heatmaps) for les in todo])
        return job

    def finish_background(
        self, job: BackgroundTracking | None, baseline_node, output_node=None, table_node=None
    ):
        """Read a finished job (raises its TLTError), update the cache and write the nodes.

        Returns ``(output_node, table_node)``.
        """
        pair, keys = self._pending if job is None else job.context[:2]
        if job is not None:
            fresh = job.results()
            if pair != self._pair:
                raise TLTError("the volumes changed while tracking; track again")
            self._registration = job.registration or self._registration
            self._done.update(dict(zip(job.context[2], fresh)))
        results = [self._done[key] for key in keys]
        if any(r.heatmap is not None for r in results):
            self.apply_heatmaps(results, baseline_node.GetScene())
        return self.apply_results(results, baseline_node.GetScene(), output_node, table_node)

    # ------------------------------------------------------------------ writing nodes
    def apply_results(self, results: Sequence, scene, output_node=None, table_node=None):
        """Write results into a follow-up point list and a table (created in ``scene`` when None)."""
        output_node = markups_from_results(results, scene, node=output_node)
        if table_node is None:
            table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", "TLTTracker results")
        fill_results_table(table_node, results)
        self.last_results = list(results)
        return output_node, table_node

    def apply_heatmaps(self, results: Sequence, scene) -> dict[str, Any]:
        """One volume node per lesion heatmap (``"<id> match score"``, follow-up world frame); a lesion's earlier
        heatmap node is reused. Returns ``{lesion id: node}`` (also kept in :attr:`heatmap_nodes`)."""
        for r in results:
            if r.heatmap is None:
                continue
            node = self.heatmap_nodes.get(r.id)
            if node is not None and scene.GetNodeByID(node.GetID()) is not node:
                node = None  # deleted by the user or a scene close
            node = node_from_volume(r.heatmap, scene, f"{r.id} match score", node=node)
            node.SetAttribute(HEATMAP_ATTRIBUTE, r.id)
            if node.GetDisplayNode() is None:
                node.CreateDefaultDisplayNodes()
            self.heatmap_nodes[r.id] = node
        return dict(self.heatmap_nodes)

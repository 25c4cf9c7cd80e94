"""Scalar volume nodes <-> :class:`TLTTrackerLib.geometry.Volume` (the only place volume geometry crosses RAS/LPS).

A volume node stores voxels as a ``(K, J, I)`` array (``slicer.util.arrayFromVolume``) and an IJK -> RAS matrix
in its *local* frame; a parent transform maps local RAS to world RAS. TLTTrackerLib wants the world geometry in
LPS (ITK convention): ``index_ijk -> LPS mm = F @ W @ IJKToRAS``, with ``F = diag(-1, -1, 1, 1)`` and ``W`` the
parent's to-world matrix. Non-linear parent transforms are refused (harden them first). ``sitkUtils`` is not
used because it ignores parent transforms and is absent from the PyPI ``slicer-core`` wheel.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import slicer
import vtk

from TLTTrackerLib.errors import InputError
from TLTTrackerLib.geometry import Volume

_LPS_FROM_RAS_4 = np.diag([-1.0, -1.0, 1.0, 1.0])


def _matrix(vtk_matrix: Any) -> np.ndarray:
    return slicer.util.arrayFromVTKMatrix(vtk_matrix).astype(float)


def parent_to_world_ras(node: Any) -> np.ndarray:
    """``(4, 4)`` matrix mapping the node's local RAS to world RAS (identity without a parent transform).

    Raises:
        InputError: the parent transform (or one of its ancestors) is not linear.
    """
    parent = node.GetParentTransformNode()
    if parent is None:
        return np.eye(4)
    if not parent.IsTransformToWorldLinear():
        raise InputError(
            f"{node.GetName()!r} is under a non-linear transform; harden the transform (Data module: right-click "
            "the node > Harden transform) and track again"
        )
    m = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(m)
    return _matrix(m)


def ijk_to_world_ras(volume_node: Any) -> np.ndarray:
    """``(4, 4)`` matrix mapping voxel index ``(i, j, k, 1)`` to world RAS mm (parent transforms applied)."""
    m = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(m)
    return parent_to_world_ras(volume_node) @ _matrix(m)


def volume_from_node(volume_node: Any, copy: bool = True) -> Volume:
    """A scalar volume node -> :class:`Volume` in world LPS geometry.

    Args:
        volume_node: ``vtkMRMLScalarVolumeNode`` (a label map works too), optionally under a linear transform.
        copy: copy the voxels (default) so the result does not change when the node does.

    Returns:
        Volume with ``array`` ``(K, J, I)`` in the node's scalar type, ``origin_lps_mm``, ``spacing_mm``
        (i, j, k order) and ``direction`` (columns = LPS directions of i, j, k) of the hardened volume.

    Raises:
        InputError: no node, no voxels, several components, a non-linear transform, or a sheared transform.
    """
    if volume_node is None:
        raise InputError("no volume selected; select a baseline and a follow-up volume")
    image = volume_node.GetImageData()
    if image is None or min(image.GetDimensions()) < 1:
        raise InputError(f"volume {volume_node.GetName()!r} has no voxels; load the scan again")
    if image.GetNumberOfScalarComponents() != 1:
        raise InputError(f"volume {volume_node.GetName()!r} is not a grey-level volume; select a CT volume")
    index_to_lps = _LPS_FROM_RAS_4 @ ijk_to_world_ras(volume_node)
    linear = index_to_lps[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing <= 0):
        raise InputError(f"volume {volume_node.GetName()!r} has a zero voxel size; check its geometry")
    direction = linear / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise InputError(
            f"the transform of {volume_node.GetName()!r} shears the volume; harden or remove that transform first"
        )
    array = slicer.util.arrayFromVolume(volume_node)
    return Volume(np.array(array, copy=True) if copy else array, index_to_lps[:3, 3], spacing, direction)


def update_node_from_volume(volume_node: Any, volume: Volume) -> Any:
    """Write ``volume`` (world LPS geometry) into ``volume_node``; its parent transform, if any, is respected.

    The node's local IJK -> RAS matrix is set so that its *world* geometry equals the Volume's.
    Returns the node.
    """
    index_to_world_ras = _LPS_FROM_RAS_4 @ volume.index_to_lps_matrix()
    local = np.linalg.inv(parent_to_world_ras(volume_node)) @ index_to_world_ras
    slicer.util.updateVolumeFromArray(volume_node, np.ascontiguousarray(volume.array))
    volume_node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(local))
    volume_node.Modified()
    return volume_node


def add_volume_node(scene: Any, volume: Volume, name: str, class_name: str = "vtkMRMLScalarVolumeNode") -> Any:
    """Create a volume node in ``scene`` holding ``volume`` (world geometry, no parent transform)."""
    node = scene.AddNewNodeByClass(class_name, name)
    update_node_from_volume(node, volume)
    node.CreateDefaultDisplayNodes()
    return node


def volume_fingerprint(volume: Volume, max_samples: int = 1_000_000) -> str:
    """A short hash of a Volume's geometry and (subsampled) voxels, to recognise the same scan pair again."""
    h = hashlib.blake2b(digest_size=12)
    for part in (volume.origin_lps_mm, volume.spacing_mm, volume.direction):
        h.update(np.round(np.asarray(part, dtype=float), 5).tobytes())
    arr = np.asarray(volume.array)
    h.update(str((arr.shape, arr.dtype.str)).encode())
    step = max(1, int(np.ceil((arr.size / max_samples) ** (1 / 3))))
    h.update(np.ascontiguousarray(arr[::step, ::step, ::step]).tobytes())
    return h.hexdigest()

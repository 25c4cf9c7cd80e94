"""TLTTrackerLib: follow lesions from a baseline CT to a follow-up CT.

Pure Python (numpy, scipy, SimpleITK). Importing this package never imports torch, slicer, qt, ctk or vtk;
torch-backed parts (``TLTTrackerLib.model``, training) are imported only when used.

Frames and units: physical points are LPS millimetres; arrays are indexed (z, y, x). See ``geometry``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

from .errors import DeviceError, InputError, ModelFileError, TLTError
from .geometry import Volume, lps_to_ras, ras_to_lps
from .transforms import AffineTransform, CompositeTransform, DisplacementFieldTransform

# Names re-exported lazily (module-level __getattr__) so that importing the package stays light.
_LAZY = {
    "read_volume": "io",
    "write_volume": "io",
    "Lesion": "lesions",
    "read_lesions": "lesions",
    "write_lesions": "lesions",
    "register_affine": "registration",
    "RegistrationResult": "registration",
    "LesionTracker": "tracker",
    "TrackedLesion": "tracked_lesion",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "__version__",
    "TLTError",
    "InputError",
    "ModelFileError",
    "DeviceError",
    "Volume",
    "ras_to_lps",
    "lps_to_ras",
    "AffineTransform",
    "CompositeTransform",
    "DisplacementFieldTransform",
    *_LAZY,
]

"""The compute environment as the module sees it, without importing torch: devices, model choice, Python packages.

Importing torch takes seconds, so the panel's "detected device" comes from a torch-free probe (already-imported
torch, the NVIDIA driver's ``/proc`` entries, ``nvidia-smi`` on PATH). Dependencies are checked with
``importlib.metadata`` only; packages that Slicer bundles are never installed or upgraded by this module.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
import sys
from pathlib import Path
from typing import Callable, Sequence

from TLTTrackerLib import tracker as _tracker
from TLTTrackerLib.errors import DeviceError, InputError, ModelFileError, TLTError

# Never installed/upgraded from this module: Slicer ships them (SimpleITK from PyPI breaks Slicer's ITK IO) or
# another extension owns them (torch through the PyTorch extension's PyTorchUtils).
PROTECTED_PACKAGES = frozenset(
    {"numpy", "simpleitk", "torch", "torchvision", "vtk", "requests", "scipy-openblas"}
)
NO_MODEL = "none"  # model spec meaning "do not use a learned model"
MODEL_SOURCES = ("bundled", "file", NO_MODEL)
DEVICES = ("auto", "cpu", "cuda")


def methods() -> tuple[str, ...]:
    """Tracking methods offered in the UI: "auto" first, then the library's methods (data-driven)."""
    return ("auto", *_tracker.METHODS)


def learned_methods() -> tuple[str, ...]:
    """Methods that need a model and torch (the library may declare them; "tlt" otherwise)."""
    return tuple(getattr(_tracker, "LEARNED_METHODS", ("tlt",)))


def bundled_model_available() -> bool:
    """Whether the library ships a bundled model file (no download, no torch import)."""
    from TLTTrackerLib import weights

    registry = weights.load_registry()
    name = registry.get("bundled")
    entry = next((m for m in registry["models"] if m.get("name") == name), None) if name else None
    return bool(entry and (weights.MODELS_DIR / entry["file"]).exists())


def resolve_method_and_model(
    method: str, model_source: str, model_path: str | Path | None
) -> tuple[str, str | None]:
    """UI choices -> ``(method, model spec for LesionTracker/CLI)``.

    ``model_source``: "bundled" (spec None: the library's bundled model if any), "file" (``model_path``, which
    must exist) or "none" (never a learned model: "auto" becomes the best model-free method).

    Raises:
        InputError: unknown method, or a learned method with "none".
        ModelFileError: "file" without an existing file.
    """
    if method not in methods():
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(methods())}")
    if model_source not in MODEL_SOURCES:
        raise InputError(f"unknown model source {model_source!r}; choose one of {', '.join(MODEL_SOURCES)}")
    if model_source == "file":
        path = Path(str(model_path or "")).expanduser()
        if str(model_path or "").strip() in ("", ".") or not path.is_file():
            raise ModelFileError(
                f"model file not found: {str(model_path or '') or '(none)'}; choose a model file"
            )
        return method, str(path)
    if model_source == NO_MODEL:
        if method in learned_methods():
            raise InputError(f"method {method!r} needs a model; choose 'Bundled model' or 'Model from file'")
        if method == "auto" and getattr(_tracker, "AUTO_METHOD", None) in learned_methods():
            free = [m for m in _tracker.METHODS if m not in learned_methods()]
            return (free[-1] if free else "affine"), None
        return method, None
    return method, None


def check_model_spec(model: str) -> None:
    """A model given by path must be an existing PyTorch file (a zip archive); a registry name must be known.

    Raises:
        ModelFileError: missing file, not a PyTorch file, or an unknown name (one line, with what to do).
    """
    import zipfile

    from TLTTrackerLib import weights

    path = Path(str(model)).expanduser()
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise ModelFileError(
                f"{path} is not a PyTorch model file (.pt); choose the file saved by training"
            )
        return
    names = [m.get("name") for m in weights.load_registry()["models"]]
    if str(model) not in names:
        raise ModelFileError(f"model file not found: {model}; choose an existing model file")


def needs_torch(method: str, model_spec: str | None) -> bool:
    """Whether tracking will import torch: a learned method, or "auto" when the library's auto method is a
    learned one and a model is available (a bundled model alone does not make "auto" need torch)."""
    if method in learned_methods():
        return True
    if method != "auto" or getattr(_tracker, "AUTO_METHOD", None) not in learned_methods():
        return False
    return model_spec is not None or bundled_model_available()


def torch_installed() -> bool:
    """torch is importable (checked without importing it)."""
    return "torch" in sys.modules or importlib.util.find_spec("torch") is not None


def detect_device() -> tuple[str, str]:
    """``("cuda" | "cpu", human-readable description)`` from a torch-free probe."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return "cuda", f"GPU: {torch.cuda.get_device_name(0)}"
        except Exception:  # noqa: BLE001 (a broken CUDA setup must not break the panel)
            pass
        return "cpu", "CPU (PyTorch sees no CUDA GPU)"
    names = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            text = info.read_text(errors="replace")
        except OSError:
            continue
        model = re.search(r"^Model:\s*(.+)$", text, re.MULTILINE)
        names.append(model.group(1).strip() if model else "NVIDIA GPU")
    if names:
        return "cuda", "GPU: " + ", ".join(names)
    if shutil.which("nvidia-smi"):
        return "cuda", "GPU: NVIDIA driver found"
    return "cpu", "CPU (no NVIDIA GPU found)"


def check_device(device: str, uses_torch: bool) -> None:
    """Refuse ``device="cuda"`` for a torch method when no GPU can be found.

    Raises:
        InputError: unknown device name.
        DeviceError: "cuda" requested, a learned method chosen, and no GPU detected.
    """
    if device not in DEVICES:
        raise InputError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cuda" and uses_torch and detect_device()[0] != "cuda":
        raise DeviceError("GPU requested but no NVIDIA GPU was found; choose Auto or CPU as the device")


def _requirement_name(line: str) -> str:
    return re.split(r"[\s<>=!~;\[]", line.strip(), maxsplit=1)[0]


def read_requirements(path: str | Path) -> list[str]:
    """Requirement lines of a requirements.txt (comments, blanks and pip options skipped)."""
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def missing_requirements(requirements: Sequence[str]) -> list[str]:
    """Requirements whose distribution is not installed at all, protected packages left out.

    Only presence is checked (a present package is never upgraded from here).
    """
    missing = []
    for req in requirements:
        name = _requirement_name(req)
        if not name or name.lower() in PROTECTED_PACKAGES:
            continue
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(req)
    return missing


def ensure_dependencies(
    method: str,
    model: str | None,
    confirm: Callable[[str], bool],
    pip_install: Callable[[str], None],
    torch_installer: Callable[[], Callable[[], bool]],
    translate: Callable[[str], str] = lambda text: text,
) -> None:
    """Install what ``method`` needs, asking first; raises TLTError when the user declines or it fails.

    affine/refine need numpy, scipy and SimpleITK, which Slicer ships (scipy is installed if an older Slicer
    lacks it). Learned methods need torch, installed only through the PyTorch extension; numpy, SimpleITK and
    torch are never pip-installed or upgraded here. The Slicer module passes its dialogs and installers:
    ``confirm(text)``, ``pip_install(requirements)``, ``torch_installer()`` -> an ``install() -> success``
    function (ImportError when the PyTorch extension is missing; called only when torch is needed), and its
    translation.
    """
    missing = missing_requirements(["scipy>=1.10"])
    if missing:
        prompt = translate("TLTTracker needs these Python packages: {p}. Install them now?")
        if not confirm(prompt.format(p=", ".join(missing))):
            raise TLTError("required Python packages are missing: " + ", ".join(missing))
        pip_install(" ".join(missing))
    if not needs_torch(method, model) or torch_installed():
        return
    try:
        install_torch = torch_installer()
    except ImportError as exc:
        raise TLTError(
            "the learned model needs PyTorch: install the PyTorch extension from the Extensions "
            "Manager, restart Slicer, and track again (or choose 'No model')"
        ) from exc
    if not confirm(translate("The learned model needs PyTorch (about 1-3 GB download). "
                             "Install it now through the PyTorch extension?")):
        raise TLTError("PyTorch is required for the learned model; choose 'No model' to track without it")
    if not install_torch():
        raise TLTError("PyTorch was not installed; see the PyTorch Utils module")

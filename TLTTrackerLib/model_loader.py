"""The TLT model a :class:`~.tracker.LesionTracker` runs: its file found at once, the network loaded once per
device, in the background when asked, and shared by lesions tracked side by side.

    loader = ModelLoader(spec)         # a path, a registry name, or None (the bundled model)
    loader.start("cpu")                # ModelFileError now if there is no file or no PyTorch; loads in a thread
    loader.wait()                      # ModelFileError if the file did not load
    loader.predictor("cpu")            # the TLTPredictor (loads now if nobody started it)

Importing torch and loading the model take 1.5–2.5 s on 2 cores; started before the registration, they overlap it
(docs/benchmarks.md §14).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .errors import ModelFileError


class ModelLoader:
    """The model of ``spec`` (a path, a registry name, or None: ``TLT_TRACKER_MODEL`` or the bundled model)."""

    def __init__(self, spec: str | None) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._loaded: tuple[str, Any] | None = None  # (device, predictor)
        self._loading: Future | None = None
        self._path: Path | None = None

    def path(self) -> Path:
        """The model file (ModelFileError: no PyTorch to run it, no model, an unknown name, a bad checksum),
        found once (the bundled model's checksum is not computed again for the load)."""
        if self._path is None:
            self._path = self._find()
        return self._path

    def _find(self) -> Path:
        from .weights import resolve_model

        if sys.modules.get("torch", True) is None or (
                "torch" not in sys.modules and importlib.util.find_spec("torch") is None):
            raise ModelFileError("the TLT network needs PyTorch, which is not installed: pip install torch (or pip "
                                 "install 'tlttracker[torch]'), or use --method auto")
        path = resolve_model(self.spec)
        if path is None:
            raise ModelFileError("method 'tlt' needs a model: pass --model PATH (a checkpoint written by "
                                 "tlt-tracker train); this installation has no bundled model")
        return Path(path)

    def start(self, device: str) -> None:
        """Find the file now and load it in a background thread (once; :meth:`wait` collects its error)."""
        if self._loading is None and self._loaded is None:
            self.path()
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tlt-model")
            self._loading = pool.submit(self.predictor, device)
            pool.shutdown(wait=False)

    def wait(self) -> None:
        """Wait for the load :meth:`start` began (ModelFileError if it failed); no-op otherwise."""
        if self._loading is not None:
            loading, self._loading = self._loading, None
            loading.result()

    def predictor(self, device: str) -> Any:
        """The :class:`~.inference.TLTPredictor` on ``device``, loaded once (under a lock: lesions side by side
        may ask at the same time)."""
        with self._lock:
            if self._loaded is None or self._loaded[0] != device:
                from .inference import TLTPredictor

                self._loaded = (device, TLTPredictor.from_checkpoint(self.path(), device=device))
            return self._loaded[1]

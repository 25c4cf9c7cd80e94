"""Cores shared among lesions tracked side by side: each SimpleITK filter takes its share when it starts.

:class:`~.tracker.LesionTracker` tracks lesions in a thread pool, one lesion per core. Most lesions end after one
refinement, but a few try several starts and take 3–5× longer; when they are the last ones running, one thread
each would leave the other cores idle. A :class:`CoreShare` is passed as ``RefineConfig.threads``: every filter
asks it, as it starts, for ``cores // lesions running`` threads (at least 1), so the last lesion gets every core
(:func:`thread_count`). SimpleITK's demons and correlation registration give the same result on any number of
threads up to rounding (47 lesions of the tuning suite: |Δ point| ≤ 0.007 mm, docs/benchmarks.md §12), so the
results do not depend on the timing (``Testing/test_core_share.py``, ``Testing/test_tracker.py``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Callable, Union

#: ``RefineConfig.threads``: a fixed count (0: SimpleITK's default, all cores) or a callable asked per filter
Threads = Union[int, Callable[[], int]]


class CoreShare:
    """``cores`` split evenly among the lesions running (``with share.running(): ...`` around each lesion);
    calling the share gives the thread count for a filter starting now."""

    def __init__(self, cores: int) -> None:
        self.cores = max(1, int(cores))
        self._running = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """One more lesion running while the block runs."""
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1

    def __call__(self) -> int:
        with self._lock:
            return max(1, self.cores // max(1, self._running))


def thread_count(threads: Threads) -> int:
    """The SimpleITK thread count for a filter starting now (0: leave SimpleITK's default)."""
    return int(threads()) if callable(threads) else int(threads)


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1

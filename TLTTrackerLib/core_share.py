"""Cores shared among lesions tracked side by side: each SimpleITK filter takes its share when it starts.

:func:`track_side_by_side` (used by :class:`~.tracker.LesionTracker`) tracks lesions in a thread pool, one lesion
per core. Most lesions end after one
refinement, but a few try several starts and take 3–5× longer; when they are the last ones running, one thread
each would leave the other cores idle. A :class:`CoreShare` is passed as ``RefineConfig.threads``: every filter
asks it, as it starts, for ``cores // lesions running`` threads (at least 1), so the last lesion gets every core
(:func:`thread_count`). SimpleITK's demons and correlation registration give the same result on any number of
threads up to rounding (47 lesions of the tuning suite: |Δ point| ≤ 0.007 mm, docs/benchmarks.md §12), so the
results do not depend on the timing (``Testing/test_core_share.py``, ``Testing/test_tracker.py``).

A filter's thread count does not reach the filters it runs inside (demons' field smoothing and warping take
SimpleITK's global default, all cores): with two lesions side by side on 2 cores that made four busy threads and
cost 8 % of the tracking time in switching. While lesions run side by side, :func:`sitk_default_threads` lowers
that default to each lesion's share, and puts it back after (docs/benchmarks.md §14).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable, Union

from .errors import Cancelled

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


@contextlib.contextmanager
def sitk_default_threads(count: int) -> Iterator[None]:
    """SimpleITK's global default thread count set to ``count`` while the block runs, then restored (it is
    process-wide: other SimpleITK work started meanwhile gets it too)."""
    import SimpleITK as sitk

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(count)))
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def track_side_by_side(
    lesions: Sequence[Any],
    fn: Callable[[int, Any, Threads], Any],
    workers: int,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list:
    """``[fn(k, lesion, threads) for k, lesion in enumerate(lesions)]``, ``workers`` lesions at a time (threads:
    SimpleITK and numpy release the GIL), in input order; ``threads`` is the ``RefineConfig.threads`` each lesion
    runs with (a :class:`CoreShare` of :func:`available_cores`; 0, every core, when one lesion runs at a time).
    ``progress(fraction, message)`` and ``cancel()`` are called from the calling thread as lesions finish; on
    cancel, lesions not yet started are dropped and :class:`~.errors.Cancelled` is raised once the running ones
    end."""
    workers = max(1, min(workers, len(lesions)))
    done = 0

    def finished(les: Any) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done / len(lesions), f"tracked {les.id}")

    if workers == 1:
        results = []
        for les in lesions:
            if cancel and cancel():
                raise Cancelled("tracking cancelled")
            results.append(fn(len(results), les, 0))
            finished(les)
        return results
    share = CoreShare(available_cores())  # the last lesions running get the cores the others left

    def run(k: int, les: Any) -> Any:
        with share.running():
            return fn(k, les, share)

    with sitk_default_threads(share.cores // workers), \
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tlt-lesion") as pool:
        futures = [pool.submit(run, k, les) for k, les in enumerate(lesions)]
        try:
            for les, future in zip(lesions, futures):
                while not wait([future], timeout=0.1).done:
                    if cancel and cancel():
                        raise Cancelled("tracking cancelled")
                finished(les)
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

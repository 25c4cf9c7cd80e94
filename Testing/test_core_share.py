"""TLTTrackerLib.core_share: the cores split among the lesions running."""

import threading

import numpy as np

from TLTTrackerLib.core_share import CoreShare, thread_count
from TLTTrackerLib.phantom import make_phantom
from TLTTrackerLib.refine import RefineConfig, refine_center
from TLTTrackerLib.transforms import AffineTransform


def test_share_splits_cores_among_running_lesions():
    share = CoreShare(4)
    assert share() == 4  # nothing running: a filter may take every core
    with share.running():
        assert share() == 4
        with share.running():
            assert share() == 2
            with share.running(), share.running(), share.running():
                assert share() == 1  # more lesions than cores: one thread each, never 0
            assert share() == 2
    assert share() == 4
    assert CoreShare(0)() == 1


def test_share_counts_across_threads():
    share, seen, entered, release = CoreShare(2), [], threading.Barrier(3), threading.Event()

    def lesion():
        with share.running():
            entered.wait()
            release.wait()

    workers = [threading.Thread(target=lesion) for _ in range(2)]
    for w in workers:
        w.start()
    entered.wait()
    seen.append(share())
    release.set()
    for w in workers:
        w.join()
    seen.append(share())
    assert seen == [1, 2]


def test_thread_count_takes_ints_and_callables():
    assert thread_count(0) == 0 and thread_count(3) == 3
    assert thread_count(lambda: 2) == 2


def test_refine_gives_the_same_point_with_a_share_as_with_fixed_threads():
    volume, lesions = make_phantom(0, shape_kji=(48, 96, 96), spacing_mm=(2.0, 2.0, 3.0), n_lesions=4)
    les = lesions[0]
    shift = AffineTransform(np.eye(3), np.array([1.5, -2.0, 1.0]))
    a = refine_center(volume, volume, les.center_lps_mm, les.radius_mm, shift, RefineConfig(threads=1))
    b = refine_center(volume, volume, les.center_lps_mm, les.radius_mm, shift, RefineConfig(threads=CoreShare(2)))
    np.testing.assert_allclose(a.center_lps_mm, b.center_lps_mm, atol=1e-3)


def test_track_side_by_side_keeps_order_hands_out_threads_and_cancels():
    from types import SimpleNamespace

    import pytest

    from TLTTrackerLib.core_share import track_side_by_side
    from TLTTrackerLib.errors import Cancelled

    lesions = [SimpleNamespace(id=f"L{k}") for k in range(5)]
    seen, reported = [], []
    out = track_side_by_side(lesions, lambda k, les, threads: (seen.append(threads), (k, les.id))[1], 1,
                             progress=lambda f, m: reported.append((f, m)))
    assert out == [(k, f"L{k}") for k in range(5)] and seen == [0] * 5  # one at a time: every core per filter
    assert reported[-1] == (1.0, "tracked L4")
    seen.clear()
    out = track_side_by_side(lesions, lambda k, les, threads: (seen.append(threads), les.id)[1], 2)
    assert out == [les.id for les in lesions] and all(isinstance(t, CoreShare) for t in seen)
    with pytest.raises(Cancelled):
        track_side_by_side(lesions, lambda k, les, threads: les.id, 1, cancel=lambda: True)


def test_side_by_side_lowers_simpleitk_default_threads_and_restores_it(monkeypatch):
    """Filters inside a filter (demons' smoothing) take SimpleITK's global default, not the share: side by side,
    that default is each lesion's share of the cores, and is put back afterwards."""
    from types import SimpleNamespace

    import SimpleITK as sitk

    from TLTTrackerLib import core_share

    monkeypatch.setattr(core_share, "available_cores", lambda: 4)
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    lesions = [SimpleNamespace(id=f"L{k}") for k in range(4)]
    seen = core_share.track_side_by_side(
        lesions, lambda k, les, threads: sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(), 2)
    assert seen == [2] * 4  # 4 cores, 2 lesions at a time
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == before
    with core_share.sitk_default_threads(0):
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 1  # never 0
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == before

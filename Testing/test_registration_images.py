"""TLTTrackerLib.registration_images: the affine registration's working images."""

import tracemalloc

import numpy as np
import SimpleITK as sitk

from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.registration_images import AIR_HU, MAX_HU, working_image


def _volume(dtype) -> Volume:
    rng = np.random.default_rng(0)
    array = rng.integers(-3024, 3000, size=(40, 64, 64)).astype(dtype)
    array[:4] = -3024  # outside the scanner's field of view
    return Volume(array, np.array([-10.0, 20.0, -30.0]), np.array([0.8, 0.8, 2.5]))


def test_int16_and_float_inputs_give_the_same_clamped_average():
    a = working_image(_volume(np.int16), 3.0)
    b = working_image(_volume(np.float32), 3.0)
    assert a.GetSize() == b.GetSize() == (16, 16, 40)  # 0.8 mm averaged by 4 in-plane; 2.5 mm kept
    va, vb = sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b)
    assert va.dtype == np.float32 and va.min() >= AIR_HU and va.max() <= MAX_HU
    np.testing.assert_allclose(va, vb, atol=0.5)  # int16 averages round to whole HU
    assert np.all(va[:4] == AIR_HU)


def test_int16_clamp_makes_no_float_copy_of_the_full_volume():
    """The clamp of an int16 scan stays int16: a float64 copy (float bounds on an int16 array) is 4x the
    scan and cost 0.7-1.1 s of a 1.5 s registration of a 512x512x133 pair (docs/benchmarks.md §14)."""
    volume = _volume(np.int16)
    tracemalloc.start()
    try:
        working_image(volume, 3.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * volume.array.nbytes

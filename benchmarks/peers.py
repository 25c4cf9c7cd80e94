"""Peer methods a user would otherwise pick, for the scenario suite: register the pair, map the lesion centres.

Benchmark-only extras, not runtime dependencies (``pip install -e .[bench]``: PyPI ``itk-elastix`` and
``antspyx``). Every adapter has the signature ``peer(baseline, followup, centres_lps_mm (N, 3)) -> (N, 3)``
follow-up LPS mm, with the package's default settings:

- ``elastix-affine``: elastix's default ``affine`` parameter map;
- ``elastix-bspline``: default ``affine`` then default ``bspline`` maps;
- ``ants-syn``: ``ants.registration(type_of_transform="SyN")`` (affine + SyN, ANTsPy defaults).

Direction conventions: both packages return the transform that maps *fixed-space points to moving space*
(what image resampling needs). With fixed = baseline and moving = follow-up, that is the baseline → follow-up
point map we want, applied with transformix (elastix) and ``apply_transforms_to_points`` with the forward
transforms (ANTs). Both work in ITK's physical frame, which is LPS mm like TLTTrackerLib.
``python benchmarks/peers.py --check`` verifies it on a phantom moved by a known translation.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from TLTTrackerLib.geometry import Volume  # noqa: E402


def _float_array(volume: Volume) -> np.ndarray:
    return np.maximum(np.asarray(volume.array, np.float32), -1024.0)


def _itk_image(volume: Volume):
    import itk

    image = itk.image_from_array(np.ascontiguousarray(_float_array(volume)))  # (K, J, I) -> size (I, J, K)
    image.SetOrigin([float(v) for v in volume.origin_lps_mm])
    image.SetSpacing([float(v) for v in volume.spacing_mm])
    image.SetDirection(itk.matrix_from_array(np.ascontiguousarray(volume.direction, dtype=np.float64)))
    return image


def _elastix(baseline: Volume, followup: Volume, centres: np.ndarray, maps: tuple[str, ...]) -> np.ndarray:
    import itk

    params = itk.ParameterObject.New()
    for name in maps:
        params.AddParameterMap(params.GetDefaultParameterMap(name))
    fixed, moving = _itk_image(baseline), _itk_image(followup)
    _, transform_params = itk.elastix_registration_method(fixed, moving, parameter_object=params,
                                                          log_to_console=False)
    with tempfile.TemporaryDirectory() as tmp:
        points_file = Path(tmp) / "points.txt"
        points_file.write_text("point\n%d\n" % len(centres) + "".join(
            f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in centres))
        transformix = itk.TransformixFilter.New(moving)
        transformix.SetTransformParameterObject(transform_params)
        transformix.SetFixedPointSetFileName(str(points_file))
        transformix.SetOutputDirectory(tmp)
        transformix.SetLogToConsole(False)
        transformix.UpdateLargestPossibleRegion()
        lines = (Path(tmp) / "outputpoints.txt").read_text().splitlines()
    out = []
    for line in lines:
        part = line.split("OutputPoint")[1].split("[")[1].split("]")[0]
        out.append([float(v) for v in part.split()])
    return np.array(out, float).reshape(-1, 3)


def elastix_affine(baseline: Volume, followup: Volume, centres: np.ndarray) -> np.ndarray:
    return _elastix(baseline, followup, centres, ("affine",))


def elastix_bspline(baseline: Volume, followup: Volume, centres: np.ndarray) -> np.ndarray:
    return _elastix(baseline, followup, centres, ("affine", "bspline"))


def _ants_image(volume: Volume):
    import ants

    arr = np.ascontiguousarray(_float_array(volume).transpose(2, 1, 0))  # ANTs arrays are (x, y, z)
    return ants.from_numpy(arr, origin=tuple(map(float, volume.origin_lps_mm)),
                           spacing=tuple(map(float, volume.spacing_mm)), direction=np.asarray(volume.direction))


def ants_syn(baseline: Volume, followup: Volume, centres: np.ndarray) -> np.ndarray:
    import ants
    import pandas as pd

    reg = ants.registration(fixed=_ants_image(baseline), moving=_ants_image(followup), type_of_transform="SyN")
    points = pd.DataFrame({"x": centres[:, 0], "y": centres[:, 1], "z": centres[:, 2]})
    mapped = ants.apply_transforms_to_points(3, points, reg["fwdtransforms"])
    return mapped[["x", "y", "z"]].to_numpy(float)


PEERS = {"elastix-affine": elastix_affine, "elastix-bspline": elastix_bspline, "ants-syn": ants_syn}


def check(names: list[str]) -> int:
    """Each peer on a phantom whose follow-up is the baseline moved by a known translation: the mapped lesion
    centres must move by that translation, not against it (within 2 mm of +shift: the default B-spline map bends
    a little even on a pure translation, 1.3 mm measured). Returns the number of failures."""
    import time

    from TLTTrackerLib.phantom import make_phantom

    vol, lesions = make_phantom(0, shape_kji=(48, 96, 96), spacing_mm=(2.0, 2.0, 3.0), n_lesions=4)
    shift = np.array([7.0, -5.0, 9.0])
    # follow-up = the same voxels with the origin moved: follow-up point = baseline point + shift
    followup = Volume(vol.array, vol.origin_lps_mm + shift, vol.spacing_mm, vol.direction)
    centres = np.array([les.center_lps_mm for les in lesions])
    failures = 0
    for name in names:
        t0 = time.perf_counter()
        mapped = PEERS[name](vol, followup, centres)
        err = np.linalg.norm(mapped - (centres + shift), axis=1)
        wrong_way = np.linalg.norm(mapped - (centres - shift), axis=1)
        ok = err.max() < 2.0 and wrong_way.min() > 10.0
        failures += not ok
        print(f"{name}: error vs +shift max {err.max():.2f} mm, vs -shift {wrong_way.min():.2f} mm "
              f"({time.perf_counter() - t0:.1f} s) {'OK' if ok else 'FAIL'}", flush=True)
    return failures


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="peer adapters; --check verifies the point direction")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--peers", default=",".join(PEERS))
    a = ap.parse_args()
    raise SystemExit(check(a.peers.split(",")) if a.check else 0)

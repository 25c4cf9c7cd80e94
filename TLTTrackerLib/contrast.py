"""Synthetic contrast change between a baseline and its follow-up (soft-tissue enhancement).

A follow-up taken in another contrast phase enhances organs differently: liver, spleen, kidney and tumours
(about 0–250 HU) change by tens of HU while air, fat and bone stay put. :func:`enhancement_change` models that
as a smooth HU remapping, optionally modulated in space (organs far apart change by different amounts):

    v' = v + a · m(x) · w(v),    w(v) = sin²(π (v − lo) / (hi − lo)) for lo ≤ v ≤ hi, else 0

- ``a`` (HU): the change at the centre of the window ``[lo, hi]`` (default 0–250 HU), drawn per pair;
- ``m(x) = 1 + s · Σ_k cos(ω_k · x + φ_k) / √(K/2)`` (``x`` LPS mm): plane waves of random direction with
  wavelengths ``wavelength_mm``, relative amplitude ``s``; ``m`` is defined in the physical frame, so any
  sub-grid of the follow-up gets exactly the values of the full grid;
- monotone in ``v`` (no two HU values swap order) as long as ``|a| · max m · π / (hi − lo) < 1``:
  :func:`check_monotone` says so.

The remapping is applied to the warped baseline values before the follow-up's gain, offset and noise
(:func:`TLTTrackerLib.synthetic.render_followup`). Parameters come from :func:`draw_contrast`.
"""

from __future__ import annotations

import math

import numpy as np

from .geometry import Volume

N_WAVES = 3


def draw_contrast(
    rng: np.random.Generator,
    change_hu_range: tuple[float, float],
    spatial_variation: float,
    window_hu: tuple[float, float],
    wavelength_mm: tuple[float, float] = (150.0, 300.0),
) -> dict:
    """Random contrast change (JSON-friendly dict: ``amplitude_hu``, ``window_hu``, ``variation``, and the
    ``waves`` as ``[ωx, ωy, ωz, φ]`` rows, ω in rad/mm along L, P, S)."""
    amplitude = float(rng.uniform(*change_hu_range))
    waves = []
    if spatial_variation > 0:
        for _ in range(N_WAVES):
            d = rng.standard_normal(3)
            d /= np.linalg.norm(d)
            omega = 2 * math.pi / rng.uniform(*wavelength_mm)
            waves.append([*(d * omega).tolist(), float(rng.uniform(0, 2 * math.pi))])
    return {"amplitude_hu": amplitude, "window_hu": [float(window_hu[0]), float(window_hu[1])],
            "variation": float(spatial_variation), "waves": waves}


def check_monotone(max_change_hu: float, spatial_variation: float, window_hu: tuple[float, float]) -> None:
    """ValueError when the remapping could reverse the order of two HU values."""
    lo, hi = window_hu
    if hi <= lo:
        raise ValueError(f"contrast window must be lo < hi HU, got {window_hu}")
    worst = max_change_hu * (1 + spatial_variation * math.sqrt(2 * N_WAVES)) * math.pi / (hi - lo)
    if worst >= 1:
        raise ValueError(
            f"contrast change up to {max_change_hu} HU (variation {spatial_variation}) over {lo}..{hi} HU is not "
            "monotone; use a smaller change or a wider window"
        )


def modulation(grid: Volume, contrast: dict) -> np.ndarray | float:
    """``m(x)`` on the voxel centres of ``grid`` (float32 ``(K, J, I)``), or 1.0 without spatial variation."""
    if not contrast["waves"] or contrast["variation"] == 0:
        return 1.0
    n_k, n_j, n_i = grid.shape_kji
    m = np.zeros(grid.shape_kji, np.float32)
    cols = grid.index_to_lps_matrix()  # 4x4: LPS = M @ (i, j, k, 1)
    for wx, wy, wz, phi in contrast["waves"]:
        w = np.array([wx, wy, wz])
        step = w @ cols[:3, :3]  # phase per index step along i, j, k
        phase0 = float(w @ cols[:3, 3]) + phi
        phase = (phase0 + step[2] * np.arange(n_k, dtype=np.float32))[:, None, None] + (
            step[1] * np.arange(n_j, dtype=np.float32))[None, :, None] + (
            step[0] * np.arange(n_i, dtype=np.float32))[None, None, :]
        m += np.cos(phase, dtype=np.float32)
    m *= np.float32(contrast["variation"] / math.sqrt(len(contrast["waves"]) / 2))
    m += np.float32(1.0)
    return m


def enhancement_change(values: np.ndarray, grid: Volume, contrast: dict) -> np.ndarray:
    """Apply the remapping (module doc) in place to float32 HU ``values`` ``(K, J, I)`` on ``grid``."""
    lo, hi = contrast["window_hu"]
    if contrast["amplitude_hu"] == 0:
        return values
    t = (values - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    w = np.sin(np.float32(math.pi) * np.clip(t, 0.0, 1.0)) ** 2
    w *= np.float32(contrast["amplitude_hu"])
    values += w * modulation(grid, contrast)
    return values

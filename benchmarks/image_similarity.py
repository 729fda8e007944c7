"""SSIM for the benchmarks that print what a speed-up costs in detail (beside those scripts)."""

from __future__ import annotations

from typing import Any


def ssim_float(x: Any, y: Any) -> float:
    """Mean SSIM of two luminance arrays (Wang et al. 2004, 7x7 uniform windows, as
    scikit-image's default), computed in float64."""
    import numpy as np

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def local_mean(z: Any) -> Any:
        k = 7
        c = np.cumsum(np.cumsum(np.pad(z, ((1, 0), (1, 0))), 0), 1)
        return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)

    mx, my = local_mean(x), local_mean(y)
    vx, vy = local_mean(x * x) - mx * mx, local_mean(y * y) - my * my
    cxy = local_mean(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    index = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(index.mean())

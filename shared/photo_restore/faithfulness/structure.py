"""Is the result the same picture? SSIM's contrast-structure term of the aligned luminance.

Low resolution and blurred, so noise, grain, JPEG blocks and sharpening do not count; the
structure term ignores brightness (a faded or darkened print) and colour altogether.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from photo_restore.faithfulness.alignment import AlignedPair

WINDOW = 7  # px of the 256 px working image
# SSIM's constant for contrast (K2 = 0.03 on a [0, 1] range): flat areas count as similar.
C2 = 0.03**2


def structure_similarity(pair: AlignedPair) -> float:
    """The mean contrast-structure similarity where the warped before has content."""
    x, y = pair.before.astype(np.float64), pair.after.astype(np.float64)
    mean_x, mean_y = _box(x), _box(y)
    var_x = _box(x * x) - mean_x**2
    var_y = _box(y * y) - mean_y**2
    cov = _box(x * y) - mean_x * mean_y
    similarity = (2 * cov + C2) / (np.maximum(var_x, 0) + np.maximum(var_y, 0) + C2)
    valid = _erode(pair.valid, WINDOW // 2 + 1)
    if valid.sum() < 0.25 * valid.size:
        raise ValueError("the aligned images overlap too little to compare")
    return float(similarity[valid].mean())


def _box(image: NDArray[np.float64]) -> NDArray[np.float64]:
    """The mean over a WINDOW x WINDOW square around each pixel (edges: what lies inside)."""
    pad = WINDOW // 2
    padded = np.pad(image, pad, mode="edge")
    summed = padded.cumsum(0).cumsum(1)
    summed = np.pad(summed, ((1, 0), (1, 0)))
    rows, cols = image.shape
    total = (
        summed[WINDOW : WINDOW + rows, WINDOW : WINDOW + cols]
        - summed[:rows, WINDOW : WINDOW + cols]
        - summed[WINDOW : WINDOW + rows, :cols]
        + summed[:rows, :cols]
    )
    result: NDArray[np.float64] = total / (WINDOW * WINDOW)
    return result


def _erode(mask: NDArray[np.bool_], by: int) -> NDArray[np.bool_]:
    """`mask` shrunk by `by` pixels, and never touching the image border."""
    inside = np.zeros_like(mask)
    rows, cols = mask.shape
    if rows <= 2 * by or cols <= 2 * by:
        return inside
    inside[by:-by, by:-by] = True
    shrunk = mask & inside
    for axis in (0, 1):
        for step in (-by, by):
            shrunk &= np.roll(mask, step, axis=axis)
    return shrunk

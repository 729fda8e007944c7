"""Where the model put before's content: the scale and offset between before and the result.

Qwen-Image-Edit-2509 zooms and shifts its output by a few percent, so faces and structure are
compared where the content really is. For each candidate scale, before is zoomed and phase
correlation (on downscaled, blurred luminance) finds the offset; the scale whose correlation
peak is sharpest wins, then a finer search around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

from photo_restore.faithfulness.verdicts import Alignment

Luminance = NDArray[np.float32]

# The working image's longest side: 1 px is 0.4% of it, finer than a face's size needs.
ALIGN_SIDE = 256
# Zooms searched: 2509's are a few percent; wider costs time and invites false peaks. The
# coarse search runs at half the working size, the fine one around its best at full size.
COARSE_SCALES = tuple(round(0.9 + 0.02 * step, 3) for step in range(11))
FINE_STEP = 0.004


@dataclass(frozen=True)
class AlignedPair:
    before: Luminance  # before warped into the result's frame
    after: Luminance
    valid: NDArray[np.bool_]  # where the warped before has content
    alignment: Alignment
    peak: float  # the phase-correlation peak (1: identical up to the offset)


def working_size(size: tuple[int, int], side: int = ALIGN_SIDE) -> tuple[int, int]:
    width, height = size
    factor = side / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor))


def luminance(image: Image.Image, size: tuple[int, int], blur: float = 1.0) -> Luminance:
    """Luminance in [0, 1] at `size` (both images at before's working size: the result keeps
    before's aspect, so fractions of width and height map onto each other)."""
    grey = image.convert("L").resize(size, Image.Resampling.BOX)
    if blur > 0:
        grey = grey.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(grey, dtype=np.float32) / 255.0


def align(before: Image.Image, after: Image.Image) -> AlignedPair:
    size = working_size(before.size)
    if min(size) < 16:
        raise ValueError(f"too narrow to align ({before.width}x{before.height})")
    ref, moved = luminance(before, size), luminance(after, size)
    half = (max(8, size[0] // 2), max(8, size[1] // 2))
    small_ref, small_moved = luminance(before, half), luminance(after, half)
    coarse = max((_try_scale(small_ref, small_moved, s) for s in COARSE_SCALES), key=_peak)
    fine = [coarse[1] + FINE_STEP * step for step in range(-3, 4)]
    peak, scale, (tx, ty) = max((_try_scale(ref, moved, s) for s in fine), key=_peak)
    width, height = size
    alignment = Alignment(scale=scale, dx=tx / width, dy=ty / height)
    warped, valid = warp_into(ref, alignment)
    return AlignedPair(warped, moved, valid, alignment, peak)


def _peak(candidate: tuple[float, float, tuple[float, float]]) -> float:
    return candidate[0]


def warp_into(image: Luminance, alignment: Alignment) -> tuple[Luminance, NDArray[np.bool_]]:
    """`image` (before) resampled into the result's frame, and where it has content."""
    height, width = image.shape
    scale = alignment.scale
    tx, ty = alignment.dx * width, alignment.dy * height
    # PIL maps each output pixel to the input: x_in = (x_out - t) / scale.
    data = (1 / scale, 0.0, -tx / scale, 0.0, 1 / scale, -ty / scale)
    source = Image.fromarray(image, mode="F")
    warped = source.transform(source.size, Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)
    ones = Image.fromarray(np.ones_like(image), mode="F")
    covered = ones.transform(source.size, Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)
    return np.asarray(warped, dtype=np.float32), np.asarray(covered) > 0.999


def _try_scale(
    ref: Luminance, moved: Luminance, scale: float
) -> tuple[float, float, tuple[float, float]]:
    """(peak, scale, offset in working pixels) of before zoomed by `scale` about its origin."""
    source = Image.fromarray(ref, mode="F")
    data = (1 / scale, 0.0, 0.0, 0.0, 1 / scale, 0.0)
    fill = float(ref.mean())
    zoomed = source.transform(
        source.size, Image.Transform.AFFINE, data, Image.Resampling.BILINEAR, fillcolor=fill
    )
    peak, offset = phase_correlation(np.asarray(zoomed, dtype=np.float32), moved)
    return peak, scale, offset


def _window(shape: tuple[int, ...]) -> NDArray[np.float32]:
    rows, cols = shape
    return np.outer(np.hanning(rows), np.hanning(cols)).astype(np.float32)


def phase_correlation(a: Luminance, b: Luminance) -> tuple[float, tuple[float, float]]:
    """The peak and the offset (x, y) that moves `a` onto `b` (b(p) ~ a(p - offset))."""
    window = _window(a.shape)
    spectrum_a = np.fft.rfft2((a - a.mean()) * window)
    spectrum_b = np.fft.rfft2((b - b.mean()) * window)
    cross = spectrum_b * np.conj(spectrum_a)
    cross /= np.abs(cross) + 1e-9
    surface = np.fft.irfft2(cross, s=a.shape)
    row, col = (int(i) for i in np.unravel_index(int(np.argmax(surface)), surface.shape))
    dy = _subpixel(surface, row, col, axis=0)
    dx = _subpixel(surface, row, col, axis=1)
    rows, cols = surface.shape
    # The surface wraps: offsets past half the size are negative ones.
    dy = dy - rows if dy > rows / 2 else dy
    dx = dx - cols if dx > cols / 2 else dx
    return float(surface[row, col]), (dx, dy)


def _subpixel(surface: NDArray[np.float64], row: int, col: int, *, axis: int) -> float:
    """The peak's position along `axis`, refined by a parabola through it and its neighbours."""
    size = surface.shape[axis]
    at = row if axis == 0 else col
    if axis == 0:
        left, centre, right = (
            surface[(row - 1) % size, col],
            surface[row, col],
            surface[(row + 1) % size, col],
        )
    else:
        left, centre, right = (
            surface[row, (col - 1) % size],
            surface[row, col],
            surface[row, (col + 1) % size],
        )
    denominator = left - 2 * centre + right
    shift = 0.5 * (left - right) / denominator if denominator < 0 else 0.0
    return float(at + max(-0.5, min(0.5, shift)))

"""Sliders that line up: before scaled and cropped to the framing the model gave its result.

The restoration is kept as the model made it; only the before image of the before/after pair
is adjusted, and only when the model zoomed or shifted the frame enough to see.
"""

from __future__ import annotations

import io

from PIL import Image, ImageStat

from photo_restore.faithfulness.verdicts import Alignment

# Below this (a fraction of the frame, ~4 px at 1024) a slider shows no shift: nothing to adjust.
TOLERANCE = 0.004


def needs_framing(alignment: Alignment) -> bool:
    return max(abs(alignment.scale - 1), abs(alignment.dx), abs(alignment.dy)) >= TOLERANCE


def framed_before(
    before: bytes, alignment: Alignment, size: tuple[int, int], *, jpeg_quality: int
) -> bytes:
    """`before` at `size` (the result's), its content where the alignment says the result has
    it; where the model zoomed out, the uncovered border is before's mean colour."""
    with Image.open(io.BytesIO(before), formats=("JPEG",)) as opened:
        opened.draft("RGB", size)
        image = opened.convert("RGB")
    image = image.resize(size, Image.Resampling.LANCZOS)
    width, height = size
    scale = alignment.scale
    # Each pixel of the framed image comes from before at (x - dx * width) / scale.
    data = (
        1 / scale,
        0.0,
        -alignment.dx * width / scale,
        0.0,
        1 / scale,
        -alignment.dy * height / scale,
    )
    fill = tuple(round(c) for c in ImageStat.Stat(image).mean)
    framed = image.transform(
        size, Image.Transform.AFFINE, data, Image.Resampling.BICUBIC, fillcolor=fill
    )
    out = io.BytesIO()
    framed.save(out, format="JPEG", quality=jpeg_quality)
    return out.getvalue()

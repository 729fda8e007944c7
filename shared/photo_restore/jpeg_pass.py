"""JPEG in, the model's JPEG out, in one streamed libvips pass: decoded at libjpeg's reduced
scale, resized (Lanczos 3), oriented and re-encoded for about the cost of decoding and encoding
alone. Pillow's resize of a 12 MP photo to 3584 px took twice that (benchmarks/bench_hot_paths)."""

from __future__ import annotations

import pyvips

# Every input is new: cached operations would only hold on to memory between invocations.
pyvips.cache_set_max(0)

# EXIF orientation -> the libvips operations that make the stored pixels upright, in order
# (the same transposes as preprocess._TRANSPOSE; vips rotates clockwise, Pillow counter-).
_UPRIGHT: dict[int, tuple[str, ...]] = {
    2: ("fliphor",),
    3: ("rot180",),
    4: ("flipver",),
    5: ("rot90", "fliphor"),
    6: ("rot90",),
    7: ("rot270", "fliphor"),
    8: ("rot270",),
}


def reencode_jpeg(
    data: bytes, *, shrink: int, stored_size: tuple[int, int], orientation: int, quality: int
) -> bytes:
    """`data` (an 8-bit RGB or greyscale JPEG in sRGB) at `stored_size` (before orientation),
    turned upright, as a metadata-free sRGB JPEG with 4:2:0 chroma, as Pillow writes it.

    `shrink` is libjpeg's reduced-scale decode (1, 2, 4 or 8). Raises pyvips.Error on bytes
    libjpeg cannot decode, truncated ones included.
    """
    image = pyvips.Image.new_from_buffer(
        data, "", access="sequential", shrink=shrink, fail_on="truncated"
    )
    width, height = stored_size
    if (image.width, image.height) != stored_size:
        image = image.resize(width / image.width, vscale=height / image.height)
    steps = _UPRIGHT.get(orientation, ())
    if any(step != "fliphor" for step in steps):
        # Rotating and flipping rows read out of order: hold the (downscaled) image first.
        image = image.copy_memory()
    for step in steps:
        image = getattr(image, step)()
    if image.bands == 1:
        image = image.colourspace("srgb")
    jpeg: bytes = image.jpegsave_buffer(Q=quality, subsample_mode="on", keep="none")
    return jpeg

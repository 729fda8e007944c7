"""The model's JPEG in one streamed libvips pass: a source image (a JPEG decoded at libjpeg's
reduced scale, or pixels another decoder produced) resized with Lanczos 3, turned upright and
re-encoded for about the cost of decoding and encoding alone. Pillow's resize of a 12 MP photo
to 3584 px took twice that (benchmarks/bench_hot_paths).

A format joins the pass with a loader that returns a lazy `pyvips.Image` of 8-bit sRGB (or
greyscale) pixels, opaque, in the file's stored orientation: `jpeg_source`, `pixels_source`.
"""

from __future__ import annotations

import ctypes

import pyvips

# Every input is new: cached operations would only hold on to memory between invocations.
pyvips.cache_set_max(0)
_M_ARENA_MAX = -8  # glibc's mallopt() parameter


def _one_malloc_arena() -> None:
    """glibc gives each of libvips' threads a malloc arena of its own and keeps every arena's
    peak: a process's peak RSS for 100 MP rose from 215 MB in its first pass to 299 MB by its
    fifth (12 MP: 171 MB after 16 passes, 122 MB with one arena). One arena keeps it near the
    first pass's, for the same CPU time.
    Set before libvips starts its threads; elsewhere than glibc there is nothing to set."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_ARENA_MAX, 1)


_one_malloc_arena()

# EXIF orientation -> the libvips operations that make the stored pixels upright, in order
# (the same transposes as preprocess._TRANSPOSE; vips rotates clockwise, Pillow counter-).
# Transpose and transverse flip vertically after the rotation: a row copy per row, where a
# horizontal flip copies pixel by pixel (+13 ms of CPU time at 12 MP, 7 % of the pass).
_UPRIGHT: dict[int, tuple[str, ...]] = {
    2: ("fliphor",),
    3: ("rot180",),
    4: ("flipver",),
    5: ("rot270", "flipver"),
    6: ("rot90",),
    7: ("rot90", "flipver"),
    8: ("rot270",),
}
# libjpeg's reduced-scale decodes, largest first.
_JPEG_SHRINKS = (8, 4, 2)
# Shrink-on-load only while the resize after it still reduces by this much: libjpeg's reduced
# decode costs detail that a Lanczos reduction of 2x or more does not (100 MP at 1/2 scale lost
# 0.0088 SSIM, decoded whole 0.0004: bench_preprocess --anchors). libvips' thumbnail's rule.
_RESIZE_AFTER_SHRINK = 2


def jpeg_shrink(size: tuple[int, int], target: tuple[int, int]) -> int:
    """The reduced scale (1, 2, 4 or 8) libjpeg should decode `size` at on the way to `target`."""
    factor = min(size[0] / max(1, target[0]), size[1] / max(1, target[1]))
    return next((s for s in _JPEG_SHRINKS if factor >= s * _RESIZE_AFTER_SHRINK), 1)


def jpeg_source(data: bytes, *, shrink: int) -> pyvips.Image:
    """An 8-bit RGB or greyscale JPEG decoded at 1/`shrink` scale, streamed top to bottom.

    The decode happens when the pass pulls its rows: bytes libjpeg cannot decode (truncated
    ones included) raise pyvips.Error then."""
    return pyvips.Image.new_from_buffer(
        data, "", access="sequential", shrink=shrink, fail_on="truncated"
    )


def pixels_source(
    pixels: bytes | memoryview, *, size: tuple[int, int], bands: int, stride: int
) -> pyvips.Image:
    """8-bit pixels another decoder produced (`bands` of 1, 3 or 4 interleaved; rows `stride`
    bytes apart), without copying them: the caller keeps `pixels` alive for the pass."""
    width, height = size
    rows = pyvips.Image.new_from_memory(pixels, stride, height, 1, "uchar")
    if stride != width * bands:
        rows = rows.crop(0, 0, width * bands, height)
    image = rows.bandfold(factor=bands) if bands > 1 else rows
    interpretation = "srgb" if bands >= 3 else "b-w"
    return image.copy(interpretation=interpretation)


def to_model_jpeg(
    image: pyvips.Image,
    *,
    stored_size: tuple[int, int],
    orientation: int,
    quality: int,
    icc_profile: bytes | None = None,
) -> bytes:
    """`image` at `stored_size` (before orientation), turned upright, as a metadata-free sRGB
    JPEG with 4:2:0 chroma, as Pillow writes it.

    Alpha is composited over white. `icc_profile`: the source's own colour profile, converted
    to sRGB after the resize (None: the pixels already are sRGB). Raises pyvips.Error on bytes
    the source's decoder cannot decode.
    """
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    width, height = stored_size
    if (image.width, image.height) != stored_size:
        image = image.resize(width / image.width, vscale=height / image.height)
    if icc_profile is not None:
        image = _to_srgb(image, icc_profile)
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


def _to_srgb(image: pyvips.Image, icc_profile: bytes) -> pyvips.Image:
    """Through the source's profile to libvips' sRGB (perceptual, as Pillow's path); a profile
    LittleCMS cannot build a transform from is ignored, as Pillow's path ignores it."""
    tagged = image.copy()
    tagged.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc_profile)
    try:
        converted: pyvips.Image = tagged.icc_transform("srgb", embedded=True, intent="perceptual")
    except pyvips.Error:
        return image
    return converted

"""Normalise an uploaded photo for the restoration model: any accepted format in, an upright,
metadata-free 8-bit sRGB JPEG whose longest side is at most ``max_side`` out."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError, features

from photo_restore.errors import CorruptImage, ImageTooLarge, RestoreError, UnsupportedImage
from photo_restore.image_formats import is_hevc_heif, sniff_format
from photo_restore.jpeg_pass import jpeg_shrink, jpeg_source, pixels_source, to_model_jpeg
from photo_restore.png_bands import PngLayout, iter_bands, png_layout
from photo_restore.settings import Settings

if TYPE_CHECKING:
    import pyvips

_ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that makes stored pixels upright (as ImageOps.exif_transpose).
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# The ICC colour space an image mode must have for its embedded profile to be usable.
_ICC_SPACE = {"RGB": "RGB ", "L": "GRAY", "CMYK": "CMYK", "LAB": "Lab "}
# The allow-list for Image.open. MPO has no opener of its own: the JPEG one returns MPO files.
_BASE_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")
_WHITE = (255, 255, 255)
# Modes that need no per-pixel work before resizing: 8 bits a band, no alpha, no palette.
_FLAT_MODES = frozenset({"RGB", "L", "CMYK", "LAB", "YCbCr", "HSV"})
# The other modes the accepted formats decode to; they are flattened strip by strip.
_KNOWN_MODES = _FLAT_MODES | {"1", "P", "PA", "LA", "La", "RGBA", "RGBa", "RGBX", "I", "F"}
# Strips of this many pixels (~16 MB as RGBA).
_STRIP_PIXELS = 4_000_000


@dataclass(frozen=True)
class ImagePreprocessResult:
    image_bytes: bytes  # JPEG, 8-bit sRGB RGB, no metadata
    resized: bool
    original_dimensions: tuple[int, int]  # (width, height) after EXIF orientation is applied
    new_dimensions: tuple[int, int]  # what is submitted to the model
    format_converted: bool  # False only when the input already was a baseline 8-bit RGB/grey JPEG
    original_format: str  # Pillow's format name from the bytes ("HEIC" for HEVC-coded HEIF)

    def params_json(self) -> dict[str, object]:
        return {
            "resized": self.resized,
            "original_dimensions": list(self.original_dimensions),
            "submitted_dimensions": list(self.new_dimensions),
            "format_converted": self.format_converted,
            "original_format": self.original_format,
        }


@dataclass(frozen=True)
class PreprocessLimits:
    """The limits preprocessing works within; their defaults are the settings' defaults."""

    max_side: int  # longest side submitted to the model (never upscaled)
    max_pixels: int  # refused above this, from the header, before decoding
    jpeg_quality: int
    memory_budget_bytes: int  # what decoding one input may take, estimated before it starts

    def __post_init__(self) -> None:
        if self.max_side < 1 or self.max_pixels < 1 or not 1 <= self.jpeg_quality <= 100:
            raise ValueError("max_side and max_pixels must be positive, jpeg_quality in 1..100")

    @classmethod
    def from_settings(cls, settings: Settings) -> PreprocessLimits:
        memory = settings.aws_lambda_function_memory_size * 2**20
        return cls(
            max_side=settings.max_side,
            max_pixels=settings.max_input_pixels,
            jpeg_quality=settings.jpeg_quality,
            memory_budget_bytes=int(memory * settings.preprocess_memory_fraction),
        )


def preprocess_image(data: bytes, limits: PreprocessLimits) -> ImagePreprocessResult:
    """Decode, orient, colour-convert, downscale and re-encode one image.

    Raises UnsupportedImage, CorruptImage or ImageTooLarge; never a raw Pillow exception.
    """
    max_side, max_pixels = limits.max_side, limits.max_pixels
    formats = _allowed_formats()
    src = _open(data, formats)
    with src:
        fmt = src.format or "unknown"
        width, height = src.size
        # Refused from the header alone: nothing has been decoded yet.
        check_dimensions(width, height, max_pixels)
        converted = not (
            fmt == "JPEG" and src.mode in ("RGB", "L") and "progressive" not in src.info
        )
        if src.mode not in _KNOWN_MODES and not src.mode.startswith("I;16"):
            raise UnsupportedImage(f"unsupported pixel format {src.mode} in {fmt}")
        # The fit scales both sides by one factor, so the stored (pre-orientation) size gives
        # the same draft target as the rotated one would.
        draft_target = _fit((width, height), max_side)
        route = _libvips_route(src, fmt)
        plan = _plan_decode(
            src, fmt, data, draft_target, limits.memory_budget_bytes, streamed=route is not None
        )
        if plan.peak_bytes > limits.memory_budget_bytes:
            raise ImageTooLarge(_over_budget(src, fmt, plan, limits.memory_budget_bytes))
        if route is not None:
            original, target, image_bytes = _through_libvips(src, fmt, data, plan, route, limits)
        else:
            original, target, image_bytes = _through_pillow(
                src, fmt, data, plan, draft_target, limits
            )
    return ImagePreprocessResult(
        image_bytes=image_bytes,
        resized=target != original,
        original_dimensions=original,
        new_dimensions=target,
        format_converted=converted,
        original_format=_reported_format(fmt, data),
    )


def _through_pillow(
    src: ImageFile.ImageFile,
    fmt: str,
    data: bytes,
    plan: _DecodePlan,
    draft_target: tuple[int, int],
    limits: PreprocessLimits,
) -> tuple[tuple[int, int], tuple[int, int], bytes]:
    """Every other input, decoded by Pillow: (original size, target size, the JPEG)."""
    stored = src.size  # before load(): see the orientation below
    with _decoding():
        if plan.png is not None:
            # eXIf may follow the pixels: its chunk was found without decoding them.
            orientation = _exif_orientation(plan.png.exif)
            pixels = _decode_png_in_bands(data, plan.png, src, draft_target)
        else:
            if plan.jpeg_shrink > 1:
                # libjpeg decodes straight at 1/2, 1/4 or 1/8 scale (never below the
                # target): 100 MP peaks at ~280 MB instead of ~830 MB.
                src.draft("RGB", draft_target)
            src.load()
            # Read after load(): PNG may keep eXIf after the pixels, and Pillow's TIFF plugin
            # applies (and removes) the orientation itself, its header size already rotated.
            orientation = _orientation(src)
            pixels = src
    original, target, stored_target = _oriented_sizes(stored, orientation, limits.max_side)
    mode, icc = src.mode, src.info.get("icc_profile")
    try:
        # Downscale before transposing: the transpose then copies the small image.
        image = _replace(pixels, _downscale(pixels, stored_target))
        if orientation in _TRANSPOSE:
            image = _replace(image, image.transpose(_TRANSPOSE[orientation]))
        image = _replace(image, _to_srgb(image, icc))
        image.info.clear()  # JPEG save would otherwise carry the comment (and more) over
        out = io.BytesIO()
        image.save(out, "JPEG", quality=limits.jpeg_quality)
        image.close()
    except (ValueError, OSError) as exc:  # Pillow refusing a conversion of these pixels
        raise UnsupportedImage(f"unsupported pixel format {mode} in {fmt}: {exc}") from exc
    return original, target, out.getvalue()


def _oriented_sizes(
    stored: tuple[int, int], orientation: int, max_side: int
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(The upright original size, the upright target, the target before the transpose)."""
    swapped = orientation in (5, 6, 7, 8)
    original = (stored[1], stored[0]) if swapped else stored
    target = _fit(original, max_side)
    return original, target, ((target[1], target[0]) if swapped else target)


# --- the libvips pass ----------------------------------------------------------------------


def _load_jpeg(data: bytes, plan: _DecodePlan) -> tuple[pyvips.Image, object]:
    return jpeg_source(data, shrink=plan.jpeg_shrink), None


def _load_heif(data: bytes, plan: _DecodePlan) -> tuple[pyvips.Image, object]:
    """Decoded by pillow-heif (pyvips-binary has no HEVC decoder), resized by libvips from the
    decoder's own buffer: Pillow's copy of it and Pillow's resize are skipped. libheif applies
    the file's rotation and mirroring itself."""
    from pillow_heif import open_heif

    heif = open_heif(data, convert_hdr_to_8bit=True, remove_stride=False)
    pixels = heif.data  # decodes; the stride keeps libheif's row padding (no copy to drop it)
    bands = len(heif.mode)
    image = pixels_source(pixels, size=heif.size, bands=bands, stride=heif.stride)
    return image, heif  # the file owns the pixels: it must outlive the pass


# Formats the libvips pass reads -> their loader and the Pillow modes it takes. A loader gives a
# lazy image of the stored pixels, and what must stay alive until the pass has run.
_LIBVIPS_LOADERS: dict[
    str, tuple[Callable[[bytes, _DecodePlan], tuple[pyvips.Image, object]], frozenset[str]]
] = {
    "JPEG": (_load_jpeg, frozenset({"RGB", "L"})),
    "MPO": (_load_jpeg, frozenset({"RGB", "L"})),  # the first frame, as Pillow's path
    "HEIF": (_load_heif, frozenset({"RGB", "RGBA", "L"})),
}


@dataclass(frozen=True)
class _LibvipsRoute:
    """An input the libvips pass takes, and the colour profile it converts to sRGB there."""

    icc_profile: bytes | None  # None: the pixels already are sRGB (or grey), or have no profile


def _libvips_route(src: ImageFile.ImageFile, fmt: str) -> _LibvipsRoute | None:
    """8-bit RGB or greyscale (alpha where the loader flattens it), in a format the pass reads,
    with no colour profile or a usable RGB one: phones' Display P3 JPEGs and HEICs. CMYK,
    profiled greyscale and broken profiles take Pillow's path (which ignores broken ones)."""
    loader = _LIBVIPS_LOADERS.get(fmt)
    if loader is None or src.mode not in loader[1]:
        return None
    icc = src.info.get("icc_profile")
    if not icc:
        return _LibvipsRoute(icc_profile=None)
    if src.mode not in ("RGB", "RGBA") or not isinstance(icc, bytes):
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space != _ICC_SPACE["RGB"]:
            return None
        return _LibvipsRoute(icc_profile=None if _is_srgb(profile) else icc)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def _through_libvips(
    src: ImageFile.ImageFile,
    fmt: str,
    data: bytes,
    plan: _DecodePlan,
    route: _LibvipsRoute,
    limits: PreprocessLimits,
) -> tuple[tuple[int, int], tuple[int, int], bytes]:
    """One streamed libvips pass: (original size, target size, the JPEG)."""
    orientation = _orientation(src)  # from the header (HEIF: 1, libheif turns the pixels)
    original, target, stored_target = _oriented_sizes(src.size, orientation, limits.max_side)
    load = _LIBVIPS_LOADERS[fmt][0]
    with _decoding():
        image, keep_alive = load(data, plan)
        image_bytes = to_model_jpeg(
            image,
            stored_size=stored_target,
            orientation=orientation,
            quality=limits.jpeg_quality,
            icc_profile=route.icc_profile,
        )
        del keep_alive
    return original, target, image_bytes


# --- memory admission --------------------------------------------------------------------


@dataclass(frozen=True)
class _DecodePlan:
    peak_bytes: int  # estimated from the header: what decoding and converting will allocate
    detail: str  # how it will be decoded, for the refusal message
    jpeg_shrink: int = 0  # JPEG: libjpeg's reduced-scale decode, 1, 2, 4 or 8 (0: not a JPEG)
    png: PngLayout | None = None  # PNG: decode a band of rows at a time


# Bytes a decoded pixel takes in Pillow (RGB is stored in 4 bytes, like RGBA).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# What the libvips pass holds of a JPEG it streams, per column of the decoded width: its row
# caches and its threads' regions. Measured: 123 MB for 12240 columns (100 MP), 33 MB for 4000
# (~3400 RGB rows); with room to spare.
_BYTES_PER_STREAMED_COLUMN = 3 * 4096
# Above this share of the budget, a PNG is decoded in bands rather than whole.
_BANDS_ABOVE_BUDGET_SHARE = 0.6


def _pixel_bytes(mode: str) -> int:
    return _PIXEL_BYTES.get(mode, 4)


def _plan_decode(
    src: ImageFile.ImageFile,
    fmt: str,
    data: bytes,
    target: tuple[int, int],
    budget: int,
    *,
    streamed: bool,
) -> _DecodePlan:
    """How this input will be decoded, and what that costs, from its header alone.
    `streamed`: it takes the libvips pass, which never holds a JPEG's decoded image."""
    width, height = src.size
    # The resized image, its transposed or colour-converted copy, and the encoder's buffer.
    output = target[0] * target[1] * 4 * 3
    factor = _reduction_factor((width, height), target)
    reduced = -(-width // factor) * -(-height // factor) * 4
    if fmt in ("JPEG", "MPO"):
        return _plan_jpeg(src, target, output, streamed=streamed)
    whole = width * height * _pixel_bytes(src.mode)
    if src.mode not in _FLAT_MODES:  # flattened a strip at a time into a reduced canvas
        whole += reduced + _STRIP_PIXELS * 8
    if fmt in ("HEIF", "AVIF"):
        whole *= 2  # the decoder's own buffer, then Pillow's copy
    layout = png_layout(data) if fmt == "PNG" else None
    if layout is not None and not layout.interlaced and whole > _BANDS_ABOVE_BUDGET_SHARE * budget:
        # The band's filtered rows, byte planes and their PNGs, raw rows, band image and its
        # 8-bit copy: about six band-sized buffers.
        band = min(height, _band_rows(width, factor)) * width * 4 * 6
        return _DecodePlan(band + reduced + output, "in bands of rows", png=layout)
    return _DecodePlan(whole + output, "whole")


def _plan_jpeg(
    src: ImageFile.ImageFile, target: tuple[int, int], output: int, *, streamed: bool
) -> _DecodePlan:
    width, height = src.size
    if streamed:
        # libvips' rule (the resize after it must still halve): the lowest SSIM loss.
        scale = jpeg_shrink((width, height), target)
        decoded = -(-width // scale) * _BYTES_PER_STREAMED_COLUMN
        detail = f"streamed at {f'1/{scale}' if scale > 1 else 'full'} scale"
    else:
        # Pillow's draft(): the largest of 1/8, 1/4, 1/2 that keeps both sides >= the target.
        ratio = min(width // max(1, target[0]), height // max(1, target[1]))
        scale = next(s for s in (8, 4, 2, 1) if ratio >= s)
        decoded = -(-width // scale) * -(-height // scale) * _pixel_bytes(src.mode)
        detail = f"decoded at 1/{scale} scale" if scale > 1 else "decoded at full scale"
    if "progressive" in src.info or "progression" in src.info:
        # libjpeg keeps every DCT coefficient (2 bytes each) of a multi-scan image, at full
        # resolution whatever the output scale: 3 bytes a pixel at 4:2:0, 6 at 4:4:4.
        layers = getattr(src, "layer", None) or [("", 1, 1, 0)]
        h_max = max(h for _, h, _, _ in layers)
        v_max = max(v for _, _, v, _ in layers)
        samples = sum(h * v for _, h, v, _ in layers) / (h_max * v_max)
        decoded += int(width * height * 2 * samples)
        detail = f"progressive, {detail}"
    return _DecodePlan(decoded + output, detail, jpeg_shrink=scale)


def _over_budget(src: ImageFile.ImageFile, fmt: str, plan: _DecodePlan, budget: int) -> str:
    width, height = src.size
    mb = 2**20
    return (
        f"a {width}x{height} {fmt} image ({src.mode}, {plan.detail}) needs about "
        f"{plan.peak_bytes // mb} MB to preprocess, above the limit of {budget // mb} MB "
        f"(PREPROCESS_MEMORY_FRACTION of the worker's memory)"
    )


def _reduction_factor(size: tuple[int, int], target: tuple[int, int]) -> int:
    """The integer box-reduction a strip or band gets before the final resize."""
    return max(1, int(min(size[0] / target[0], size[1] / target[1])))


def _band_rows(width: int, factor: int) -> int:
    """Rows per strip or band: about _STRIP_PIXELS pixels, a multiple of `factor`."""
    return factor * max(1, _STRIP_PIXELS // (width * factor))


# --- decoding ------------------------------------------------------------------------------


@cache
def _heif_available() -> bool:
    """Register pillow-heif's opener once, on first use (it is slow to import)."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    # Thumbnails off: its draft() would otherwise substitute an embedded preview for the photo.
    register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    return True


@cache
def _allowed_formats() -> tuple[str, ...]:
    formats = list(_BASE_FORMATS)
    if "avif" in features.modules and features.check_module("avif"):
        formats.append("AVIF")
    if _heif_available():
        formats.append("HEIF")
    return tuple(formats)


def _reported_format(fmt: str, data: bytes) -> str:
    """Pillow's name, except HEVC-coded HEIF, which the existing app's records call "HEIC"."""
    return "HEIC" if fmt == "HEIF" and is_hevc_heif(data) else fmt


@contextmanager
def _decoding() -> Iterator[None]:
    """Map whatever Pillow or a codec raises on bad bytes to a domain error."""
    with warnings.catch_warnings():
        # We enforce max_pixels ourselves; Pillow's warning above its own limit is noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            yield
        except (RestoreError, MemoryError):
            raise
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(f"image too large: {exc}") from exc
        except Exception as exc:  # OSError, SyntaxError, ValueError, struct.error, codec errors...
            detail = str(exc)[:200] or type(exc).__name__
            raise CorruptImage(f"corrupt image: {detail}") from exc


def _open(data: bytes, formats: tuple[str, ...]) -> ImageFile.ImageFile:
    if not data:
        raise UnsupportedImage("unsupported format: empty file")
    try:
        with _decoding():
            # An explicit allow-list: the bytes decide, never a file name or a mime type.
            return Image.open(io.BytesIO(data), formats=formats)
    except CorruptImage as exc:
        if not isinstance(exc.__cause__, UnidentifiedImageError):
            raise
        claimed = sniff_format(data)
        if claimed in formats:
            raise CorruptImage(f"corrupt image: unreadable {claimed} header") from None
        accepted = ", ".join((*formats, "MPO"))
        raise UnsupportedImage(f"unsupported format (accepted: {accepted})") from None


def _exif_orientation(exif: bytes | None) -> int:
    """The orientation in a raw EXIF block (a PNG's eXIf chunk); 1 when absent or broken."""
    if not exif:
        return 1
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        value = parsed.get(_ORIENTATION_TAG, 1)
    except Exception:  # broken EXIF must not cost the photo; it is stripped anyway
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except (RestoreError, MemoryError):
        raise
    except Exception:  # broken EXIF must not cost the photo; it is stripped anyway
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """Scale so the longest side is max_side (never up), rounding half up, never to 0."""
    width, height = size
    longest = max(width, height)
    if longest <= max_side:
        return size
    return (
        max(1, (width * max_side + longest // 2) // longest),
        max(1, (height * max_side + longest // 2) // longest),
    )


# --- pixel conversions ---------------------------------------------------------------------


def _replace(old: Image.Image, new: Image.Image) -> Image.Image:
    """Free the previous stage's pixels now rather than when the function returns."""
    if new is not old:
        old.close()
    return new


def _downscale(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` at ``size`` (never larger), in a flat mode: 8 bits a band, no alpha, no palette."""
    # Box-reduce by an integer factor while 2x the target remains (reducing_gap=2.0, as in
    # Image.thumbnail), then BICUBIC. Not LANCZOS: for the factor below 2 left after a JPEG
    # draft the two look alike, and LANCZOS costs ~40% more (60% of a naive 12 MP pipeline).
    scale = min(image.width / size[0], image.height / size[1])
    if image.mode in _FLAT_MODES:
        factor = max(1, int(scale / 2))
        flat = image.reduce(factor) if factor > 1 else image
    else:
        # Here the flattened copy, beside the decoded image, sets the peak (Pillow keeps RGB in
        # 4 bytes a pixel): reduce it as far as an integer factor goes (reducing_gap=1.0).
        factor = max(1, int(scale))
        scale_8bit = _bit_depth_scale(image)  # from the whole image, so every strip scales alike
        flat = _normalise_strips(_strips_of(image, factor), image.size, factor, scale_8bit)
    if flat.size != size:
        flat = _replace(flat, flat.resize(size, Image.Resampling.BICUBIC))
    return flat


def _normalise_strips(
    strips: Iterable[Image.Image], size: tuple[int, int], factor: int, scale: float | None
) -> Image.Image:
    """Flatten (and box-reduce) a strip at a time: no full-size RGBA/RGBa/I copy ever exists.

    A 100 MP RGBA PNG peaked at ~950 MB when converted whole; box averaging commutes with the
    (linear) alpha compositing and bit-depth scaling, so strips give the same pixels. Strips
    are `factor` rows high or a multiple of it, so each reduces on its own.
    """
    canvas: Image.Image | None = None
    top = 0
    for strip in strips:
        height = strip.height
        flat = _flatten(_to_8bit(_resizable(strip), scale))
        if factor > 1:
            flat = _replace(flat, flat.reduce(factor))
        if canvas is None:
            canvas = Image.new(flat.mode, (-(-size[0] // factor), -(-size[1] // factor)))
        canvas.paste(flat, (0, top // factor))
        flat.close()
        top += height
    assert canvas is not None  # the image has at least one row
    return canvas


def _strips_of(image: Image.Image, factor: int) -> Iterator[Image.Image]:
    rows = _band_rows(image.width, factor)
    for top in range(0, image.height, rows):
        yield image.crop((0, top, image.width, min(image.height, top + rows)))


def _decode_png_in_bands(
    data: bytes, layout: PngLayout, src: ImageFile.ImageFile, target: tuple[int, int]
) -> Image.Image:
    """A PNG too large to decode whole, reduced to a flat canvas a band of rows at a time."""
    factor = _reduction_factor(src.size, target)
    bands = iter_bands(data, layout, src, _band_rows(src.width, factor))
    # 16-bit greyscale maps 0..65535 onto 0..255: PNG modes need no look at the pixels first.
    return _normalise_strips(bands, src.size, factor, _bit_depth_scale(src))


def _resizable(image: Image.Image) -> Image.Image:
    """Palette, bilevel and premultiplied modes to plain L, LA, RGB or RGBA."""
    mode = image.mode
    if mode == "1":
        return image.convert("L")
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode in ("PA", "RGBa", "RGBX"):
        return image.convert("RGBA" if mode != "RGBX" else "RGB")
    if mode == "La":
        return image.convert("LA")
    return image


def _bit_depth_scale(image: Image.Image) -> float | None:
    """The factor that maps a high-bit-depth greyscale image onto 0..255 (None: 8-bit already)."""
    mode = image.mode
    if mode.startswith("I;16"):
        return 1 / 257
    if mode not in ("I", "F"):
        return None
    peak = float(image.getextrema()[1])  # type: ignore[arg-type]
    if mode == "F" and 0 < peak <= 1.0:
        return 255.0  # float images are usually 0..1
    if peak <= 255:
        return 1.0
    return 1 / 257 if peak <= 65535 else 255 / peak


def _to_8bit(image: Image.Image, scale: float | None) -> Image.Image:
    """Scale to 8-bit L: Pillow's own convert("L") clips 16-bit values instead."""
    if scale is None:
        return image
    if image.mode.startswith("I;16"):
        image = image.convert("I")
    if scale != 1.0:
        image = image.point(lambda value: value * scale)
    return image.convert("L")


def _flatten(image: Image.Image) -> Image.Image:
    """Composite any alpha over white; the model gets opaque pixels."""
    if image.mode not in ("RGBA", "LA"):
        return image
    colour_mode = image.mode[:-1]
    background = Image.new(colour_mode, image.size, _WHITE if colour_mode == "RGB" else 255)
    background.paste(image.convert(colour_mode), (0, 0), image.getchannel("A"))
    image.close()
    return background


def _to_srgb(image: Image.Image, icc: object) -> Image.Image:
    """8-bit sRGB RGB, through the embedded profile when it is usable for this mode."""
    if isinstance(icc, bytes) and icc and image.mode in _ICC_SPACE:
        converted = _apply_profile(image, icc)
        if converted is not None:
            return converted
    if image.mode == "LAB":
        # CIELAB TIFFs without a profile: Pillow cannot convert LAB to RGB by itself.
        return _cms_convert(image, ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")))
    return image if image.mode == "RGB" else image.convert("RGB")


def _apply_profile(image: Image.Image, icc: bytes) -> Image.Image | None:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space != _ICC_SPACE[image.mode]:
            return None  # e.g. a grey profile on an RGB image: ignore it as broken
        if image.mode == "RGB" and _is_srgb(profile):
            return image  # most cameras' profile; the transform would cost ~150 ms for nothing
        return _cms_convert(image, profile)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # a broken profile is ignored, not fatal


def _is_srgb(profile: ImageCms.ImageCmsProfile) -> bool:
    """Named sRGB and with sRGB's primaries (the name alone is sometimes wrong)."""
    core, reference = profile.profile, _srgb().profile
    if "srgb" not in (core.profile_description or "").lower():
        return False
    pairs = (
        (core.red_colorant, reference.red_colorant),
        (core.green_colorant, reference.green_colorant),
        (core.blue_colorant, reference.blue_colorant),
    )
    return all(
        ours is not None
        and theirs is not None
        and all(abs(a - b) < 0.002 for a, b in zip(ours[0], theirs[0], strict=True))
        for ours, theirs in pairs
    )


def _cms_convert(image: Image.Image, profile: ImageCms.ImageCmsProfile) -> Image.Image:
    converted = ImageCms.profileToProfile(
        image,
        profile,
        _srgb(),
        renderingIntent=ImageCms.Intent.PERCEPTUAL,
        outputMode="RGB",
    )
    assert converted is not None  # inPlace=False always returns an image
    return converted


@cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def open_image(data: bytes) -> ImageFile.ImageFile:
    """The worker's allow-listed opener, its header read and nothing decoded: for checks made
    before a restoration (the ingest of an upload). Raises UnsupportedImage, CorruptImage or
    ImageTooLarge (Pillow's own decompression-bomb limit)."""
    return _open(data, _allowed_formats())


def reported_format(fmt: str, data: bytes) -> str:
    return _reported_format(fmt, data)


def check_dimensions(width: int, height: int, max_pixels: int) -> None:
    """A header's size, refused before any pixel is decoded: empty, or over the pixel limit."""
    if width < 1 or height < 1:
        raise CorruptImage("corrupt image: zero width or height")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height} pixels, above the limit of {max_pixels}"
        )

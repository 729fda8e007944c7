"""Tests for photo_restore.preprocess; every test image is generated here, in memory."""

from __future__ import annotations

import dataclasses
import io
import random
import struct
import warnings
import zlib
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pillow_heif
import pytest
from PIL import Image, ImageCms, ImageFile, features
from pillow_heif.as_plugin import HeifImageFile

from photo_restore import jpeg_pass, preprocess
from photo_restore.errors import CorruptImage, ImageTooLarge, UnsupportedImage
from photo_restore.preprocess import ImagePreprocessResult, PreprocessLimits, preprocess_image
from photo_restore.settings import Settings
from photo_restore_tools.local.photos import SAMPLE_PHOTO
from photo_restore_tools.preprocess_files import preprocess_files
from tests.helpers.images import png_chunk, raw_png

RED = (220, 20, 20)
GREEN = (20, 200, 20)
BLUE = (20, 20, 220)
WHITE = (255, 255, 255)
AVIF = "avif" in features.modules and bool(features.check_module("avif"))
# The worker's limits at default settings.
LIMITS = PreprocessLimits.from_settings(Settings())

# --- helpers -------------------------------------------------------------------------------


def prepare(data: bytes, **limits: int) -> ImagePreprocessResult:
    """preprocess_image at the default settings' limits, some of them overridden."""
    return preprocess_image(data, dataclasses.replace(LIMITS, **limits))


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def heic(image: Image.Image, **params: object) -> bytes:
    # pillow_heif's own writer: registering its Pillow opener here would hide a missing
    # registration in the module under test.
    buffer = io.BytesIO()
    pillow_heif.from_pillow(image).save(buffer, quality=90, **params)
    return buffer.getvalue()


def decoded(result: ImagePreprocessResult) -> Image.Image:
    image = Image.open(io.BytesIO(result.image_bytes))
    image.load()
    return image


def assert_output(result: ImagePreprocessResult) -> Image.Image:
    """The invariants of every output: an RGB baseline JPEG without any metadata."""
    image = decoded(result)
    assert image.format == "JPEG"
    assert image.mode == "RGB"
    assert image.size == result.new_dimensions
    assert "progressive" not in image.info
    for key in ("icc_profile", "exif", "xmp", "comment", "photoshop", "adobe"):
        assert key not in image.info, key
    assert not image.getexif()
    assert b"Exif" not in result.image_bytes
    assert b"ICC_PROFILE" not in result.image_bytes
    assert b"http://ns.adobe.com/xap/1.0/" not in result.image_bytes
    return image


def close_to(pixel: object, expected: tuple[int, ...], tolerance: int = 30) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def centre(image: Image.Image) -> object:
    return image.getpixel((image.width // 2, image.height // 2))


def matrix_icc(
    colorants: list[tuple[float, float, float]], gamma: float = 2.2, name: str = "test RGB"
) -> bytes:
    """A minimal ICC v2 RGB display profile with the given D50 colorants and a gamma curve."""

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(value: tuple[float, float, float]) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(s15(v) for v in value)

    description = name.encode() + b"\0"
    desc = (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(description))
        + description
        + b"\0" * 8  # no Unicode description
        + b"\0\0\0"
        + b"\0" * 67  # no ScriptCode description
    )
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    tags = [
        (b"desc", desc),
        (b"cprt", b"text\0\0\0\0public domain\0"),
        (b"wtpt", xyz((0.9642, 1.0, 0.8249))),
        (b"rXYZ", xyz(colorants[0])),
        (b"gXYZ", xyz(colorants[1])),
        (b"bXYZ", xyz(colorants[2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, payload in tags:
        payload += b"\0" * (-len(payload) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(payload))
        body += payload
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"none"
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + bytes(12)  # date
        + b"acsp"
        + bytes(24)  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # rendering intent
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + bytes(48)  # creator, id, reserved
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


# D50-adapted colorants of sRGB: red, green, blue.
SRGB_COLORANTS = [(0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)]


def assert_close(a: Image.Image, b: Image.Image, tolerance: float = 3.0) -> None:
    """Same size, and a mean absolute difference per channel below `tolerance` (of 255)."""
    from PIL import ImageChops, ImageStat

    assert a.size == b.size
    difference = ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB")))
    assert max(difference.mean) < tolerance, difference.mean


def marked_image(size: tuple[int, int] = (64, 40), block: int = 12) -> Image.Image:
    """Blue, with a red block at the stored top-left and a green one at the stored top-right."""
    image = Image.new("RGB", size, BLUE)
    image.paste(RED, (0, 0, block, block))
    image.paste(GREEN, (size[0] - block, 0, size[0], block))
    return image


def with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def displayed(orientation: int, x: int, y: int, width: int, height: int) -> tuple[int, int]:
    """Where stored pixel (x, y) appears once the EXIF orientation is applied (EXIF 2.3 table)."""
    right, bottom = width - 1, height - 1
    return {
        1: (x, y),
        2: (right - x, y),
        3: (right - x, bottom - y),
        4: (x, bottom - y),
        5: (y, x),
        6: (height - 1 - y, x),
        7: (height - 1 - y, right - x),
        8: (y, right - x),
    }[orientation]


def assert_markers(image: Image.Image, orientation: int, size: tuple[int, int]) -> None:
    width, height = size
    scale = image.width / (height if orientation >= 5 else width)
    for (x, y), colour in (((6, 6), RED), ((width - 7, 6), GREEN), ((width // 2, 30), BLUE)):
        dx, dy = displayed(orientation, x, y, width, height)
        pixel = image.getpixel((int(dx * scale), int(dy * scale)))
        assert close_to(pixel, colour, 45), (orientation, colour, pixel)


# --- formats -------------------------------------------------------------------------------


def _two_frames(fmt: str) -> bytes:
    first, second = Image.new("RGB", (48, 32), RED), Image.new("RGB", (48, 32), BLUE)
    return encode(first, fmt, save_all=True, append_images=[second])


FORMATS: dict[str, Callable[[Image.Image], bytes]] = {
    "JPEG": lambda im: encode(im, "JPEG", quality=95),
    "PNG": lambda im: encode(im, "PNG"),
    "HEIF": heic,
    "WEBP": lambda im: encode(im, "WEBP", quality=95),
    "TIFF": lambda im: encode(im, "TIFF"),
    "BMP": lambda im: encode(im, "BMP"),
    "GIF": lambda im: encode(im, "GIF"),
    "AVIF": lambda im: encode(im, "AVIF", quality=95),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_accepted_format(fmt: str) -> None:
    if fmt == "AVIF" and not AVIF:
        pytest.skip("this Pillow has no AVIF support")
    result = prepare(FORMATS[fmt](Image.new("RGB", (48, 32), RED)))
    # pillow-heif writes HEVC-coded files, which the seed's records call HEIC.
    assert result.original_format == {"HEIF": "HEIC"}.get(fmt, fmt)
    assert result.format_converted is (fmt != "JPEG")
    assert result.original_dimensions == result.new_dimensions == (48, 32)
    assert not result.resized
    assert close_to(centre(assert_output(result)), RED)


@pytest.mark.parametrize("fmt", ["MPO", "GIF", "WEBP", "TIFF", "PNG"])
def test_multi_frame_files_give_the_first_frame(fmt: str) -> None:
    data = _two_frames(fmt)
    with Image.open(io.BytesIO(data)) as check:
        assert check.format == fmt and getattr(check, "n_frames", 1) == 2
    result = prepare(data)
    assert result.original_format == fmt
    assert result.format_converted
    assert close_to(centre(assert_output(result)), RED)


def test_heif_registration_is_lazy_and_idempotent() -> None:
    data = heic(Image.new("RGB", (16, 16), GREEN))
    assert prepare(data).original_format == "HEIC"  # as the seed's records say
    assert prepare(data).original_format == "HEIC"


def test_progressive_and_cmyk_jpegs_count_as_converted() -> None:
    progressive = encode(Image.new("RGB", (32, 32), RED), "JPEG", progressive=True)
    assert prepare(progressive).format_converted
    grey = encode(Image.new("L", (32, 32), 128), "JPEG")
    assert not prepare(grey).format_converted


# --- orientation ---------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation(orientation: int) -> None:
    data = encode(marked_image(), "JPEG", quality=95, exif=with_orientation(orientation))
    result = prepare(data)
    expected = (40, 64) if orientation >= 5 else (64, 40)
    assert result.original_dimensions == result.new_dimensions == expected
    assert_markers(assert_output(result), orientation, (64, 40))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_orientation_with_draft_and_downscale(orientation: int) -> None:
    # 8x the limit: libjpeg's draft decodes at 1/8, then the resize, then the transpose.
    image = marked_image((640, 400), block=120)
    data = encode(image, "JPEG", quality=95, exif=with_orientation(orientation))
    result = prepare(data, max_side=80)
    expected = (50, 80) if orientation >= 5 else (80, 50)
    assert result.original_dimensions == ((400, 640) if orientation >= 5 else (640, 400))
    assert result.new_dimensions == expected and result.resized
    out = assert_output(result)
    x, y = displayed(orientation, 60, 60, 640, 400)
    assert close_to(out.getpixel((x // 8, y // 8)), RED, 45)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "HEIF", "AVIF"])
def test_orientation_in_other_formats(fmt: str) -> None:
    if fmt == "AVIF" and not AVIF:
        pytest.skip("this Pillow has no AVIF support")
    image, exif = marked_image(), with_orientation(6)
    if fmt == "TIFF":
        data = encode(image, "TIFF", tiffinfo={0x0112: 6})
    elif fmt == "HEIF":
        data = heic(image, exif=exif.tobytes())
    else:
        data = encode(image, fmt, exif=exif, **({"lossless": True} if fmt == "WEBP" else {}))
    result = prepare(data)
    assert result.original_dimensions == result.new_dimensions == (40, 64)
    assert_markers(assert_output(result), 6, (64, 40))


@pytest.mark.parametrize("orientation", [0, 9, 300])
def test_invalid_orientation_is_ignored(orientation: int) -> None:
    data = encode(marked_image(), "JPEG", quality=95, exif=with_orientation(orientation))
    result = prepare(data)
    assert result.new_dimensions == (64, 40)
    assert_markers(assert_output(result), 1, (64, 40))


# --- modes and colour ----------------------------------------------------------------------


def test_cmyk_jpeg() -> None:
    data = encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    result = prepare(data)
    assert result.format_converted
    assert close_to(centre(assert_output(result)), (255, 0, 0), 20)


def test_16_bit_greyscale_png_is_scaled_not_clipped() -> None:
    image = Image.new("I;16", (64, 16), 0)
    image.paste(32896, (16, 0, 32, 16))  # 128 * 257
    image.paste(65535, (32, 0, 64, 16))
    data = encode(image, "PNG")
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode.startswith("I;16")
    out = assert_output(prepare(data))
    assert close_to(out.getpixel((8, 8)), (0, 0, 0), 3)
    assert close_to(out.getpixel((24, 8)), (128, 128, 128), 3)
    assert close_to(out.getpixel((56, 8)), WHITE, 3)


def test_16_bit_rgb_png() -> None:
    row = b"\0" + struct.pack(">HHH", 65535, 32896, 0) * 8
    data = raw_png(8, 4, 16, 2, zlib.compress(row * 4))
    out = assert_output(prepare(data))
    assert close_to(centre(out), (255, 128, 0), 4)


def test_16_bit_tiff_and_float_tiff() -> None:
    out = assert_output(prepare(encode(Image.new("I;16", (8, 8), 65535), "TIFF")))
    assert close_to(centre(out), WHITE, 3)
    out = assert_output(prepare(encode(Image.new("F", (8, 8), 0.5), "TIFF")))
    assert close_to(centre(out), (128, 128, 128), 3)


def test_cielab_tiff() -> None:
    # Pillow's LAB: L scaled to 0..255, a and b offset by 128.
    grey = encode(Image.new("LAB", (8, 8), (128, 128, 128)), "TIFF")
    assert close_to(centre(assert_output(prepare(grey))), (119, 119, 119), 4)
    red = encode(Image.new("LAB", (8, 8), (136, 208, 195)), "TIFF")
    pixel = centre(assert_output(prepare(red)))
    assert isinstance(pixel, tuple) and pixel[0] > 200 and max(pixel[1:]) < 60, pixel


def test_a_pixel_format_pillow_cannot_convert_is_unsupported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: Image.Image, *args: object, **kwargs: object) -> Image.Image:
        raise ValueError("conversion not supported")

    monkeypatch.setattr(Image.Image, "convert", refuse)
    data = encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "TIFF")
    with pytest.raises(UnsupportedImage, match="unsupported pixel format CMYK in TIFF"):
        prepare(data)


def test_palette_with_transparency_becomes_white() -> None:
    image = Image.new("P", (32, 16), 0)
    image.putpalette([0, 0, 0, *RED] + [0] * 762)
    image.paste(1, (16, 0, 32, 16))
    for fmt in ("PNG", "GIF"):
        out = assert_output(prepare(encode(image, fmt, transparency=0)))
        assert close_to(out.getpixel((4, 8)), WHITE, 6), fmt
        assert close_to(out.getpixel((28, 8)), RED, 20), fmt


def test_rgba_and_la_are_composited_over_white() -> None:
    image = Image.new("RGBA", (48, 16), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (16, 0, 32, 16))
    image.paste((0, 0, 255, 128), (32, 0, 48, 16))
    out = assert_output(prepare(encode(image, "PNG")))
    assert close_to(out.getpixel((4, 8)), WHITE, 4)
    assert close_to(out.getpixel((24, 8)), (255, 0, 0), 20)
    assert close_to(out.getpixel((44, 8)), (127, 127, 255), 20)
    grey = Image.new("LA", (16, 16), (0, 0))
    out = assert_output(prepare(encode(grey, "PNG")))
    assert close_to(centre(out), WHITE, 4)
    webp = assert_output(prepare(encode(image, "WEBP", lossless=True)))
    assert close_to(webp.getpixel((4, 8)), WHITE, 4)


def test_one_bit_and_greyscale() -> None:
    bilevel = Image.new("1", (16, 16), 0)
    bilevel.paste(1, (8, 0, 16, 16))
    out = assert_output(prepare(encode(bilevel, "PNG")))
    assert close_to(out.getpixel((3, 8)), (0, 0, 0), 10)
    assert close_to(out.getpixel((12, 8)), WHITE, 10)
    out = assert_output(prepare(encode(Image.new("L", (16, 16), 90), "BMP")))
    assert close_to(centre(out), (90, 90, 90), 3)


def test_embedded_icc_profile_is_applied() -> None:
    # A profile whose red and blue primaries are swapped: stored red must come out blue.
    swapped = matrix_icc([SRGB_COLORANTS[2], SRGB_COLORANTS[1], SRGB_COLORANTS[0]])
    ImageCms.ImageCmsProfile(io.BytesIO(swapped))  # a valid profile for LittleCMS
    image = Image.new("RGB", (32, 32), (230, 0, 0))
    for data in (
        encode(image, "JPEG", quality=95, icc_profile=swapped),
        encode(image, "PNG", icc_profile=swapped),
    ):
        out = assert_output(prepare(data))
        pixel = centre(out)
        assert isinstance(pixel, tuple)
        assert pixel[2] > 180 and pixel[0] < 60, pixel


def test_srgb_profiles_skip_the_transform(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = ImageCms.profileToProfile

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ImageCms, "profileToProfile", spy)
    image = Image.new("RGB", (16, 16), (230, 0, 0))
    srgb = matrix_icc(SRGB_COLORANTS, name="sRGB IEC61966-2.1")
    out = assert_output(prepare(encode(image, "PNG", icc_profile=srgb)))
    assert close_to(centre(out), (230, 0, 0), 8)
    assert calls == []
    # Named sRGB but with other primaries: the name is not trusted.
    fake = matrix_icc(SRGB_COLORANTS[::-1], name="sRGB IEC61966-2.1")
    out = assert_output(prepare(encode(image, "PNG", icc_profile=fake)))
    pixel = centre(out)
    assert isinstance(pixel, tuple) and pixel[2] > 180 and pixel[0] < 60, pixel
    assert len(calls) == 1


def test_adobe_rgb_like_profile_changes_colours() -> None:
    adobe = matrix_icc(
        [(0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446)]
    )
    data = encode(Image.new("RGB", (32, 32), (60, 160, 60)), "PNG", icc_profile=adobe)
    pixel = centre(assert_output(prepare(data)))
    assert isinstance(pixel, tuple)
    # Adobe RGB's green primary lies outside sRGB: the same numbers are a more saturated green.
    assert pixel[0] < 25 and pixel[2] < 55 and pixel[1] > 145, pixel


@pytest.mark.parametrize(
    "profile",
    [
        b"not an icc profile at all",
        ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes(),  # wrong colour space
    ],
    ids=["broken", "mismatched"],
)
def test_unusable_icc_profiles_are_ignored(profile: bytes) -> None:
    data = encode(Image.new("RGB", (32, 32), GREEN), "JPEG", quality=95, icc_profile=profile)
    assert close_to(centre(assert_output(prepare(data))), GREEN, 20)


def test_cmyk_with_a_mismatched_profile_still_converts() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "TIFF", icc_profile=srgb)
    assert close_to(centre(assert_output(prepare(data))), (255, 0, 0), 20)


@pytest.mark.parametrize("with_icc", [True, False])
def test_metadata_is_stripped(with_icc: bool) -> None:
    exif = with_orientation(1)
    exif[0x010F] = "CameraMaker"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    extra = {"icc_profile": icc} if with_icc else {}
    image = Image.new("RGB", (32, 32), RED)
    data = encode(image, "JPEG", exif=exif, xmp=xmp, comment=b"secret comment", **extra)
    with Image.open(io.BytesIO(data)) as source:
        assert source.getexif().get_ifd(0x8825)  # the input really has GPS
        assert b"Exif" in data and b"CameraMaker" in data
    result = prepare(data)
    out = assert_output(result)
    assert not out.getexif().get_ifd(0x8825)
    for needle in (b"CameraMaker", b"secret comment", b"xmpmeta"):
        assert needle not in result.image_bytes


# --- sizes ---------------------------------------------------------------------------------


def test_12_mp_is_reduced_to_max_side() -> None:
    data = encode(Image.new("RGB", (4000, 3000), GREEN), "JPEG", quality=80)
    result = prepare(data)
    assert result.original_dimensions == (4000, 3000)
    assert result.new_dimensions == (3584, 2688)
    assert result.resized and not result.format_converted
    assert_output(result)


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((3000, 4000), 3584, (2688, 3584)),
        ((8000, 2000), 3584, (3584, 896)),  # draft at 1/2, then the resize
        ((4096, 4096), 512, (512, 512)),  # draft lands exactly on the target
        ((5000, 3), 1000, (1000, 1)),  # never a zero side
        ((3, 5000), 1000, (1, 1000)),
        ((333, 222), 100, (100, 67)),  # rounded, not truncated
    ],
)
def test_longest_side_is_capped_keeping_aspect(
    size: tuple[int, int], max_side: int, expected: tuple[int, int]
) -> None:
    data = encode(Image.new("RGB", size, GREEN), "JPEG", quality=50)
    result = prepare(data, max_side=max_side)
    assert result.new_dimensions == expected
    assert close_to(centre(assert_output(result)), GREEN, 25)


def test_large_png_is_reduced_then_resized() -> None:
    image = Image.new("RGB", (2000, 1500), GREEN)
    result = prepare(encode(image, "PNG", compress_level=1), max_side=300)
    assert result.new_dimensions == (300, 225)
    assert close_to(centre(assert_output(result)), GREEN, 10)


def _noisy(mode: str, size: tuple[int, int]) -> Image.Image:
    noise = Image.effect_noise(size, 70)
    if mode == "RGBA":
        return Image.merge(
            "RGBA",
            (noise, noise.rotate(90), noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT), noise),
        )
    if mode == "P":
        image = noise.convert("RGB").quantize(64)
        image.info["transparency"] = 3
        return image
    if mode == "I;16":
        return noise.point(lambda v: v * 250).convert("I").convert("I;16")
    if mode == "I":  # 32-bit: dim (<= 255) on top, 16-bit values below; scaled as one image
        image = noise.convert("I").point(lambda v: v * 250)
        image.paste(noise.crop((0, 0, size[0], 40)).convert("I"), (0, 0))
        return image
    return noise.convert(mode)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "I;16", "I", "1"])
@pytest.mark.parametrize("max_side", [700, 250, 97])  # box-reduce factors 1, 3 and 9
def test_strip_wise_flattening_matches_whole_image(
    mode: str, max_side: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = encode(_noisy(mode, (900, 601)), "TIFF" if mode == "I" else "PNG")
    whole = prepare(data, max_side=max_side)
    monkeypatch.setattr(preprocess, "_STRIP_PIXELS", 5000)  # ~6 rows a strip: dozens of seams
    strips = prepare(data, max_side=max_side)
    assert strips.new_dimensions == whole.new_dimensions
    assert strips.image_bytes == whole.image_bytes


# --- the libvips pass for JPEGs -----------------------------------------------------------


def libvips_passes(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What each libvips pass from now on reads: a JPEG's shrink-on-load, or "pixels" (HEIF)."""
    calls: list[object] = []
    real_jpeg, real_pixels = jpeg_pass.jpeg_source, jpeg_pass.pixels_source

    def jpeg_spy(data: bytes, **kwargs: Any) -> Any:
        calls.append(kwargs["shrink"])
        return real_jpeg(data, **kwargs)

    def pixels_spy(pixels: Any, **kwargs: Any) -> Any:
        calls.append("pixels")
        return real_pixels(pixels, **kwargs)

    monkeypatch.setattr("photo_restore.preprocess.jpeg_source", jpeg_spy)
    monkeypatch.setattr("photo_restore.preprocess.pixels_source", pixels_spy)
    return calls


def photo_like(size: tuple[int, int]) -> Image.Image:
    """Gradients, edges and blocks at several scales: what a resampler can get wrong."""
    width, height = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image = Image.merge(
        "RGB",
        (
            image.getchannel(0),
            image.rotate(90).getchannel(0).resize(size),
            Image.new("L", size, 90),
        ),
    )
    image.paste(RED, (0, 0, width // 5, height // 5))
    image.paste(GREEN, (width - width // 4, 0, width, height // 3))
    image.paste(BLUE, (width // 3, height // 2, width // 2, height - height // 6))
    return image


# An Adobe RGB-like matrix profile: wider than sRGB, as phones' Display P3 is.
WIDE_GAMUT = [(0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446)]
LIBVIPS_JPEG_CASES: dict[str, Callable[[], bytes]] = {
    "rgb": lambda: encode(photo_like((96, 64)), "JPEG"),
    "grey": lambda: encode(photo_like((96, 64)).convert("L"), "JPEG"),
    "progressive": lambda: encode(photo_like((96, 64)), "JPEG", progressive=True),
    "srgb profile": lambda: encode(
        photo_like((96, 64)), "JPEG", icc_profile=matrix_icc(SRGB_COLORANTS, name="sRGB")
    ),
    "wide-gamut profile": lambda: encode(
        photo_like((96, 64)), "JPEG", icc_profile=matrix_icc(WIDE_GAMUT)
    ),
}
OTHER_JPEG_CASES: dict[str, Callable[[], bytes]] = {
    "cmyk": lambda: encode(photo_like((96, 64)).convert("CMYK"), "JPEG"),
    "broken profile": lambda: encode(photo_like((96, 64)), "JPEG", icc_profile=b"not a profile"),
    "grey profile on rgb": lambda: encode(
        photo_like((96, 64)),
        "JPEG",
        icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes(),
    ),
}


@pytest.mark.parametrize("case", [*LIBVIPS_JPEG_CASES, *OTHER_JPEG_CASES])
def test_rgb_and_grey_jpegs_take_one_libvips_pass_and_other_jpegs_pillows_path(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = {**LIBVIPS_JPEG_CASES, **OTHER_JPEG_CASES}[case]()
    passes = libvips_passes(monkeypatch)
    assert_output(prepare(data))
    assert passes == ([1] if case in LIBVIPS_JPEG_CASES else [])


@pytest.mark.parametrize("fmt", ["JPEG", "HEIF"])
def test_the_libvips_pass_converts_a_wide_gamut_profile_as_pillows_path_does(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wide = matrix_icc(WIDE_GAMUT)
    image = photo_like((300, 200))
    data = (
        heic(image, icc_profile=wide)
        if fmt == "HEIF"
        else encode(image, "JPEG", quality=95, icc_profile=wide)
    )
    # The decoder's own pixels as a lossless PNG with the same profile: Pillow's path.
    pixels = (
        pillow_heif.open_heif(data).to_pillow() if fmt == "HEIF" else Image.open(io.BytesIO(data))
    )
    png = encode(pixels, "PNG", icc_profile=wide)
    passes = libvips_passes(monkeypatch)
    through_libvips = prepare(data, max_side=250)
    assert len(passes) == 1
    through_pillow = prepare(png, max_side=250)
    ours, theirs = assert_output(through_libvips), assert_output(through_pillow)
    assert_close(ours, theirs, tolerance=2.0)
    # And the profile was applied: the same numbers without it give other colours.
    untagged = Image.frombytes(pixels.mode, pixels.size, pixels.tobytes())  # no profile
    unconverted = assert_output(prepare(encode(untagged, "PNG"), max_side=250))
    with pytest.raises(AssertionError):
        assert_close(ours, unconverted, tolerance=4.0)


def test_a_profile_no_transform_can_be_built_from_is_ignored_in_the_libvips_pass_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An RGB profile whose tone curves are missing: it parses, but LittleCMS cannot use it.
    curveless = matrix_icc(WIDE_GAMUT)
    for tag in (b"rTRC", b"gTRC", b"bTRC"):
        curveless = curveless.replace(tag, tag[:1].upper() + b"xyz")
    image = photo_like((96, 64))
    passes = libvips_passes(monkeypatch)
    ignored = prepare(encode(image, "JPEG", quality=95, icc_profile=curveless))
    assert passes == [1]
    untagged = prepare(encode(image, "JPEG", quality=95))
    assert_close(assert_output(ignored), assert_output(untagged), tolerance=0.5)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(
    ("size", "max_side", "shrink"),
    [
        ((300, 200), 3584, 1),
        ((1000, 700), 900, 1),
        ((2400, 1000), 700, 1),
        ((2400, 1000), 500, 2),
        ((2400, 1000), 250, 4),
    ],
    ids=["kept", "resized", "3.4x decoded whole", "4.8x shrunk on load", "9.6x shrunk on load"],
)
def test_the_libvips_pass_gives_the_pixels_pillows_path_gives(
    orientation: int,
    size: tuple[int, int],
    max_side: int,
    shrink: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exif = with_orientation(orientation)
    jpeg = encode(photo_like(size), "JPEG", quality=95, exif=exif)
    # The JPEG's own pixels as a lossless PNG, with the same orientation: Pillow's path.
    png = encode(Image.open(io.BytesIO(jpeg)), "PNG", exif=exif)
    passes = libvips_passes(monkeypatch)
    through_libvips, through_pillow = (
        prepare(jpeg, max_side=max_side),
        prepare(png, max_side=max_side),
    )
    assert passes == [shrink]
    assert through_libvips.original_dimensions == through_pillow.original_dimensions
    assert through_libvips.new_dimensions == through_pillow.new_dimensions
    assert_close(assert_output(through_libvips), assert_output(through_pillow), tolerance=1.5)


def test_a_truncated_jpeg_is_corrupt_in_the_libvips_pass_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = encode(photo_like((400, 300)), "JPEG", quality=95)
    passes = libvips_passes(monkeypatch)
    with pytest.raises(CorruptImage):
        prepare(data[: len(data) * 2 // 3])
    assert passes == [1]


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
@pytest.mark.parametrize(("size", "max_side"), [((97, 61), 3584), ((1000, 700), 640)])
def test_heic_is_resized_by_libvips_from_the_decoded_pixels_as_pillows_path_would(
    mode: str, size: tuple[int, int], max_side: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = photo_like(size)
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize(size))
    data = heic(image.convert(mode))
    # The decoder's own pixels as a lossless PNG: Pillow's path from the same pixels.
    png = encode(pillow_heif.open_heif(data).to_pillow(), "PNG")
    passes = libvips_passes(monkeypatch)
    through_libvips = prepare(data, max_side=max_side)
    assert passes == ["pixels"]
    through_pillow = prepare(png, max_side=max_side)
    assert through_libvips.original_format == "HEIC"
    assert through_libvips.original_dimensions == through_pillow.original_dimensions == size
    assert through_libvips.new_dimensions == through_pillow.new_dimensions
    assert_close(assert_output(through_libvips), assert_output(through_pillow), tolerance=1.5)


def test_a_heic_whose_pixels_fail_to_decode_is_corrupt() -> None:
    data = heic(Image.effect_noise((96, 64), 50).convert("RGB"))
    cut = data[: len(data) - 200]  # the header intact, the coded pixels cut short
    preprocess._allowed_formats()  # registers the HEIF opener
    with Image.open(io.BytesIO(cut)) as header:
        assert header.size == (96, 64)
    with pytest.raises(CorruptImage, match=r"corrupt image: .*end of file"):
        prepare(cut)


# --- memory admission --------------------------------------------------------------------

MB = 2**20


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "I;16", "1", "L"])
@pytest.mark.parametrize("max_side", [700, 250, 97])
def test_a_png_too_large_to_decode_whole_decodes_in_bands_with_the_same_pixels(
    mode: str, max_side: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = encode(_noisy(mode, (900, 601)), "PNG")
    whole = prepare(data, max_side=max_side)
    monkeypatch.setattr(preprocess, "_STRIP_PIXELS", 5000)  # ~6 rows a band: dozens of seams
    # A budget this small makes the whole decode too large: only bands fit.
    banded = prepare(data, max_side=max_side, memory_budget_bytes=8 * MB)
    assert banded.new_dimensions == whole.new_dimensions
    if mode == "L":  # flat modes reduce whole by a smaller factor first: nearly the same
        assert_close(decoded(banded), decoded(whole))
    else:
        assert banded.image_bytes == whole.image_bytes


def test_a_banded_png_keeps_the_orientation_its_exif_chunk_gives_after_the_pixels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = marked_image((64, 40))
    plain = encode(image, "PNG")
    exif = with_orientation(6).tobytes()
    # eXIf after the IDAT chunks, as some encoders write it.
    data = plain[:-12] + png_chunk(b"eXIf", exif) + plain[-12:]
    monkeypatch.setattr(preprocess, "_STRIP_PIXELS", 300)
    result = prepare(data, memory_budget_bytes=MB // 16)
    assert result.original_dimensions == (40, 64)
    assert_markers(decoded(result), 6, (64, 40))


@pytest.mark.parametrize(
    ("fmt", "save", "detail"),
    [
        ("JPEG", {"progressive": True}, "progressive"),
        ("TIFF", {}, "whole"),
        ("WEBP", {"lossless": True}, "whole"),
    ],
)
def test_an_input_whose_decode_cannot_fit_the_budget_is_refused_naming_the_limit(
    fmt: str, save: dict[str, object], detail: str
) -> None:
    data = encode(Image.new("RGB", (2000, 1500), RED), fmt, **save)
    with pytest.raises(ImageTooLarge) as refused:
        prepare(data, memory_budget_bytes=8 * MB)
    message = refused.value.message
    assert f"a 2000x1500 {fmt} image" in message and detail in message
    assert "above the limit of 8 MB (PREPROCESS_MEMORY_FRACTION" in message
    assert prepare(data).new_dimensions == (2000, 1500)  # the default budget takes it


def test_a_baseline_jpeg_costs_its_streamed_decode_not_its_full_size() -> None:
    """A baseline sRGB JPEG is streamed by libvips: what decides its admission is the rows it
    holds (and the output), not its decoded size; Pillow's path (CMYK) decodes it whole, at
    libjpeg's 1/2 scale."""
    image = Image.new("RGB", (8000, 6000), RED)
    # 48 MP: 192 MB decoded whole; ~96 MB of streamed rows (+ the 3584x2688 output, ~110 MB)
    assert prepare(encode(image, "JPEG"), memory_budget_bytes=260 * MB).new_dimensions == (
        3584,
        2688,
    )
    with pytest.raises(ImageTooLarge, match="streamed at full scale"):
        prepare(encode(image, "JPEG"), memory_budget_bytes=170 * MB)
    cmyk = encode(image.convert("CMYK"), "JPEG")
    assert prepare(cmyk, memory_budget_bytes=170 * MB).new_dimensions == (3584, 2688)
    progressive = encode(image, "JPEG", progressive=True)
    with pytest.raises(ImageTooLarge, match="progressive, streamed at full scale"):
        prepare(progressive, memory_budget_bytes=260 * MB)


def test_the_budget_is_a_share_of_the_workers_memory() -> None:
    limits = PreprocessLimits.from_settings(
        Settings(aws_lambda_function_memory_size=2048, preprocess_memory_fraction=0.5)
    )
    assert limits.memory_budget_bytes == 1024 * MB
    assert LIMITS.memory_budget_bytes == int(1024 * MB * 0.45)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_small_images_are_not_upscaled(fmt: str) -> None:
    result = prepare(encode(Image.new("RGB", (120, 90), RED), fmt))
    assert not result.resized
    assert result.new_dimensions == result.original_dimensions == (120, 90)


def test_jpeg_quality_is_used() -> None:
    noise = Image.effect_noise((256, 256), 60).convert("RGB")
    data = encode(noise, "PNG")
    low = prepare(data, jpeg_quality=30)
    high = prepare(data, jpeg_quality=95)
    assert len(low.image_bytes) < len(high.image_bytes) / 2


def test_params_json() -> None:
    result = prepare(encode(Image.new("RGB", (4000, 10), RED), "PNG"))
    assert result.params_json() == {
        "resized": True,
        "original_dimensions": [4000, 10],
        "submitted_dimensions": [3584, 9],
        "format_converted": True,
        "original_format": "PNG",
    }


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
        random.Random(7).randbytes(4096),
        b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom" + bytes(64),  # an MP4 video
        encode(Image.new("RGB", (16, 16), RED), "ICO"),  # Pillow reads it; we do not
        encode(Image.new("RGB", (16, 16), RED), "TGA"),
        encode(Image.new("RGB", (16, 16), RED), "PDF"),
    ],
    ids=["empty", "pdf", "svg", "random", "mp4", "ico", "tga", "pdf-from-pillow"],
)
def test_unsupported_bytes(data: bytes) -> None:
    with pytest.raises(UnsupportedImage, match="unsupported format"):
        prepare(data)


def test_the_bytes_decide_not_a_name(tmp_path: Path) -> None:
    # A PNG called .jpg is a PNG; a text file called .png is refused.
    (tmp_path / "photo.jpg").write_bytes(encode(Image.new("RGB", (8, 8), RED), "PNG"))
    (tmp_path / "notes.png").write_bytes(b"hello, not an image\n")
    out = StringIO()
    code = preprocess_files(
        [tmp_path / "photo.jpg", tmp_path / "notes.png"], tmp_path / "out", Settings(), out
    )
    assert code == 1
    first, second = out.getvalue().splitlines()
    assert " ok PNG " in first
    assert "unsupported_image: unsupported format" in second


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "HEIF", "TIFF"])
def test_truncated_files_are_corrupt(fmt: str) -> None:
    # Policy: a truncated upload is refused (Pillow's LOAD_TRUNCATED_IMAGES stays off): the
    # model would otherwise "restore" a half-grey photo.
    image = Image.effect_noise((96, 64), 50).convert("RGB")
    data = heic(image) if fmt == "HEIF" else encode(image, fmt)
    with pytest.raises(CorruptImage):
        prepare(data[: len(data) * 2 // 3])


@pytest.mark.parametrize("length", [3, 20, 200])
def test_a_header_cut_short_is_corrupt_not_unsupported(length: int) -> None:
    data = encode(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")
    with pytest.raises(CorruptImage):
        prepare(data[:length])


def test_garbage_after_a_valid_header_is_corrupt() -> None:
    data = bytearray(encode(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG"))
    data[60:200] = bytes(140)
    with pytest.raises(CorruptImage):
        prepare(bytes(data))


def _forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record any pixel decoding (the module maps exceptions, so a raise would be hidden)."""
    calls: list[str] = []

    def refuse(self: ImageFile.ImageFile) -> None:
        calls.append(str(self.format))
        raise AssertionError("decoded a refused image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(HeifImageFile, "load", refuse)
    return calls


@pytest.mark.parametrize(
    ("width", "height"),
    [(50_000, 50_000), (11_000, 11_000)],  # beyond Pillow's own limit; only beyond ours
)
def test_pixel_bomb_is_refused_before_decoding(
    width: int, height: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A few hundred bytes that claim gigapixels: the IDAT is a tiny zlib stream of zeros.
    data = raw_png(width, height, 8, 0, zlib.compress(bytes(100_000), 9))
    assert len(data) < 1000
    decoded_formats = _forbid_decoding(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning leaks either
        with pytest.raises(ImageTooLarge):
            prepare(data)
    assert decoded_formats == []


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "HEIF"])
def test_max_pixels_is_checked_on_the_header(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    image = Image.new("RGB", (100, 80), RED)
    data = heic(image) if fmt == "HEIF" else encode(image, fmt)
    assert prepare(data, max_pixels=8000).new_dimensions == (100, 80)
    decoded_formats = _forbid_decoding(monkeypatch)
    with pytest.raises(ImageTooLarge, match="8000 pixels, above the limit of 7999"):
        prepare(data, max_pixels=7999)
    assert decoded_formats == []


# --- preprocess_files ----------------------------------------------------------------------


def test_preprocess_files_reports_each_file(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(encode(Image.new("RGB", (5000, 2500), RED), "PNG", compress_level=1))
    heif = tmp_path / "phone.heic"
    heif.write_bytes(heic(Image.new("RGB", (40, 30), BLUE)))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(encode(Image.new("RGB", (64, 64), RED), "JPEG")[:300])
    text = tmp_path / "text.jpg"
    text.write_text("not a photo")
    missing = tmp_path / "missing.jpg"
    out_dir = tmp_path / "out"
    out = StringIO()
    settings = Settings(max_side=1000, jpeg_quality=80)

    code = preprocess_files([good, heif, broken, text, missing], out_dir, settings, out)

    assert code == 1
    lines = out.getvalue().splitlines()
    assert len(lines) == 5
    assert lines[0].startswith(f"{good}: ok PNG 5000x2500 -> 1000x500 resized=True converted=True")
    assert lines[0].endswith(f"-> {out_dir / 'good.jpg'}") and " ms " in lines[0]
    assert lines[1].startswith(f"{heif}: ok HEIC 40x30 -> 40x30 resized=False")
    assert lines[2].startswith(f"{broken}: corrupt_image: ")
    assert lines[3].startswith(f"{text}: unsupported_image: unsupported format")
    assert lines[4].startswith(f"{missing}: io_error: ")
    assert "Traceback" not in out.getvalue()
    assert sorted(p.name for p in out_dir.iterdir()) == ["good.jpg", "phone.jpg"]
    with Image.open(out_dir / "good.jpg") as written:
        assert written.size == (1000, 500)


def test_preprocess_files_returns_0_when_all_succeed(tmp_path: Path) -> None:
    photo = tmp_path / "a.bmp"
    photo.write_bytes(encode(Image.new("RGB", (20, 10), RED), "BMP"))
    out = StringIO()
    assert preprocess_files([photo], tmp_path / "new" / "dir", Settings(), out) == 0
    assert (tmp_path / "new" / "dir" / "a.jpg").exists()
    assert len(out.getvalue().splitlines()) == 1


def test_preprocess_files_applies_max_input_pixels(tmp_path: Path) -> None:
    photo = tmp_path / "a.png"
    photo.write_bytes(encode(Image.new("RGB", (200, 100), RED), "PNG"))
    out = StringIO()
    settings = Settings(max_input_pixels=10_000)
    assert preprocess_files([photo], tmp_path, settings, out) == 1
    assert out.getvalue().startswith(f"{photo}: image_too_large: ")


def test_the_committed_sample_photo() -> None:
    data = SAMPLE_PHOTO.read_bytes()
    assert len(data) < 300 * 1024
    with Image.open(io.BytesIO(data)) as sample:
        assert sample.format == "JPEG" and sample.mode == "RGB"
        assert 0x0112 not in sample.getexif()
    result = prepare(data)
    assert result.original_format == "JPEG" and not result.format_converted

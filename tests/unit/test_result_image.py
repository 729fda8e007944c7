"""decode_result: a provider's result counts only once every pixel decoded, within a pixel cap."""

from __future__ import annotations

import io
import zlib

import pytest
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from photo_restore.errors import InvalidProviderResult
from photo_restore.provenance import DIGITAL_SOURCE_TYPE
from photo_restore.result_image import THUMBNAIL_SIDE, RestoredImage, decode_result
from tests.helpers.images import png, raw_png
from tests.helpers.provenance import (
    assert_carries_nothing_of,
    metadata_segments,
    original_with_gps,
    provenance,
    xmp_fields,
)


def encoded(fmt: str, size: tuple[int, int] = (40, 30), mode: str = "RGB", **save: object) -> bytes:
    out = io.BytesIO()
    colour = (200, 100, 50) if mode == "RGB" else 128
    Image.new(mode, size, colour).save(out, format=fmt, **save)
    return out.getvalue()


def decode(data: bytes, max_pixels: int = 25_000_000) -> RestoredImage:
    return decode_result(data, max_pixels=max_pixels, jpeg_quality=90, provenance=provenance())


def test_a_jpeg_keeps_its_quantisation_and_size_and_gains_only_the_marks() -> None:
    data = encoded("JPEG", (64, 48), quality=70, subsampling="4:4:4")
    restored = decode(data)
    assert (restored.width, restored.height, restored.provider_format) == (64, 48, "JPEG")
    with Image.open(io.BytesIO(data)) as sent, Image.open(io.BytesIO(restored.jpeg)) as stored:
        assert isinstance(sent, JpegImageFile) and isinstance(stored, JpegImageFile)
        assert stored.quantization == sent.quantization  # re-quantised with its own tables
        assert stored.layer == sent.layer  # and its own subsampling (4:4:4 here)
    assert metadata_segments(restored.jpeg) == ["APP0:JFIF", "APP1:http://ns.adobe.com/xap/1.0/"]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_the_restoration_and_its_thumbnail_say_they_are_an_ai_edit(fmt: str) -> None:
    restored = decode(encoded(fmt, (1200, 900)))
    for jpeg in (restored.jpeg, restored.thumbnail):
        assert xmp_fields(jpeg) == {
            "Iptc4xmpExt:DigitalSourceType": DIGITAL_SOURCE_TYPE,
            "Iptc4xmpExt:AISystemUsed": "Qwen/Qwen-Image-Edit",
            "xmp:CreatorTool": "photo-restore (Qwen/Qwen-Image-Edit)",
            "xmp:CreateDate": "2026-12-04T18:30:05Z",
            "xmp:MetadataDate": "2026-12-04T18:30:05Z",
        }
    with Image.open(io.BytesIO(restored.thumbnail)) as thumbnail:
        assert thumbnail.size == (THUMBNAIL_SIDE, 384)
    assert restored.provenance == {
        "digital_source_type": DIGITAL_SOURCE_TYPE,
        "model": "Qwen/Qwen-Image-Edit",
        "software_agent": "photo-restore",
        "created_at": "2026-12-04T18:30:05Z",
        "c2pa": False,
    }


def test_metadata_a_provider_echoes_is_not_stored() -> None:
    """A provider that copied the input's EXIF (GPS), ICC, XMP and comment into its answer."""
    restored = decode(original_with_gps())
    for jpeg in (restored.jpeg, restored.thumbnail):
        assert_carries_nothing_of(jpeg)
        assert xmp_fields(jpeg)["Iptc4xmpExt:DigitalSourceType"] == DIGITAL_SOURCE_TYPE


def test_an_exif_orientation_is_applied_to_the_pixels_since_the_exif_goes() -> None:
    """A provider JPEG stored sideways with Orientation 6 (rotate 90 clockwise to view)."""
    sideways = Image.new("RGB", (60, 40), (255, 0, 0))
    sideways.paste((0, 0, 255), (0, 0, 60, 20))  # blue on top as stored: on the right upright
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    sideways.save(out, format="JPEG", quality=95, exif=exif)
    restored = decode(out.getvalue())
    assert (restored.width, restored.height) == (40, 60)
    with Image.open(io.BytesIO(restored.jpeg)) as stored:
        assert stored.size == (40, 60) and not stored.getexif()
        red, _, blue = stored.convert("RGB").getpixel((35, 30))  # type: ignore[misc]
        assert blue > 200 and red < 60
    assert_carries_nothing_of(restored.jpeg)


def test_a_colour_profile_is_applied_to_the_pixels_since_the_profile_goes() -> None:
    """A provider JPEG tagged with a profile whose red and blue primaries are swapped: what it
    shows is blue, and blue is what is stored, untagged (sRGB)."""
    from tests.unit.test_preprocess import SRGB_COLORANTS, matrix_icc

    swapped = matrix_icc([SRGB_COLORANTS[2], SRGB_COLORANTS[1], SRGB_COLORANTS[0]])
    out = io.BytesIO()
    Image.new("RGB", (48, 32), (230, 0, 0)).save(out, "JPEG", quality=95, icc_profile=swapped)
    restored = decode(out.getvalue())
    for jpeg in (restored.jpeg, restored.thumbnail):
        with Image.open(io.BytesIO(jpeg)) as stored:
            red, _, blue = stored.convert("RGB").getpixel((24, 16))  # type: ignore[misc]
        assert blue > 180 and red < 60
        assert_carries_nothing_of(jpeg)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_other_formats_are_stored_as_jpeg(fmt: str) -> None:
    restored = decode(encoded(fmt, (64, 48)))
    with Image.open(io.BytesIO(restored.jpeg)) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (64, 48))
    assert restored.provider_format == fmt


def test_a_pixel_bomb_is_refused_from_its_header_before_any_decoding() -> None:
    """13000x13000 RGBA, as a hostile result of 641 KB would claim: the IDAT here is a few bytes,
    so decoding it would fail differently (truncated), and allocating it would take 676 MB."""
    bomb = raw_png(13_000, 13_000, 8, 6, zlib.compress(b"\x00" * 100))
    with pytest.raises(
        InvalidProviderResult, match="169000000 pixels, above the limit of 25000000"
    ):
        decode(bomb)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_truncated_image_is_refused_not_stored(fmt: str) -> None:
    """`Image.verify()` reads no JPEG scan data: only a full decode sees this."""
    whole = encoded(fmt, (256, 256), quality=95) if fmt == "JPEG" else png((256, 256))
    with pytest.raises(InvalidProviderResult, match="could not be decoded"):
        decode(whole[: len(whole) * 2 // 3])


@pytest.mark.parametrize(
    "data",
    [b"<html>hello</html>", b"", encoded("BMP"), encoded("GIF")],
    ids=["html", "empty", "bmp", "gif"],
)
def test_what_is_not_an_allowed_image_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidProviderResult):
        decode(data)


def test_a_cmyk_jpeg_is_re_encoded_as_rgb() -> None:
    restored = decode(encoded("JPEG", mode="CMYK"))
    with Image.open(io.BytesIO(restored.jpeg)) as image:
        assert image.mode == "RGB"

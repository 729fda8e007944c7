"""decode_result: a provider's result counts only once every pixel decoded, within a pixel cap."""

from __future__ import annotations

import io
import zlib

import pytest
from PIL import Image

from photo_restore.errors import InvalidProviderResult
from photo_restore.result_image import RestoredImage, decode_result
from tests.helpers.images import png, raw_png


def encoded(fmt: str, size: tuple[int, int] = (40, 30), mode: str = "RGB", **save: object) -> bytes:
    out = io.BytesIO()
    colour = (200, 100, 50) if mode == "RGB" else 128
    Image.new(mode, size, colour).save(out, format=fmt, **save)
    return out.getvalue()


def decode(data: bytes, max_pixels: int = 25_000_000) -> RestoredImage:
    return decode_result(data, max_pixels=max_pixels, jpeg_quality=90)


def test_a_baseline_jpeg_is_kept_byte_for_byte_with_its_size() -> None:
    data = encoded("JPEG")
    restored = decode_result(data, max_pixels=10_000, jpeg_quality=90)
    assert (restored.jpeg, restored.width, restored.height) == (data, 40, 30)
    assert restored.provider_format == "JPEG"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_other_formats_are_stored_as_jpeg(fmt: str) -> None:
    restored = decode_result(encoded(fmt, (64, 48)), max_pixels=10_000, jpeg_quality=90)
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
    restored = decode_result(encoded("JPEG", mode="CMYK"), max_pixels=10_000, jpeg_quality=90)
    with Image.open(io.BytesIO(restored.jpeg)) as image:
        assert image.mode == "RGB"

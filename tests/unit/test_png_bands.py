"""Band-wise PNG decoding gives exactly Pillow's pixels, for every filter type and pixel format."""

from __future__ import annotations

import io
import random
import zlib

import pytest
from PIL import Image

from photo_restore.png_bands import iter_bands, png_layout
from tests.helpers.images import png_chunk

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filter(kind: int, row: bytes, above: bytes, bpp: int) -> bytes:
    """The PNG encoder's side of filter `kind` (RFC 2083, 6.3)."""
    out = bytearray()
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = above[i]
        c = above[i - bpp] if i >= bpp else 0
        predictor = [0, a, b, (a + b) // 2, _paeth(a, b, c)][kind]
        out.append((x - predictor) % 256)
    return bytes([kind]) + bytes(out)


def filtered_png(width: int, height: int, depth: int, colour: int, seed: int = 3) -> bytes:
    """Random pixels, each row with a filter type chosen at random: all five are used."""
    rng = random.Random(seed)
    row_bytes = (width * CHANNELS[colour] * depth + 7) // 8
    bpp = max(1, CHANNELS[colour] * depth // 8)
    rows, above = [], bytes(row_bytes)
    for r in range(height):
        row = bytes(rng.randrange(256) for _ in range(row_bytes))
        rows.append(_filter(r % 5 if r < 10 else rng.randrange(5), row, above, bpp))
        above = row
    ihdr = (
        (width).to_bytes(4, "big") + (height).to_bytes(4, "big") + bytes([depth, colour, 0, 0, 0])
    )
    chunks = [png_chunk(b"IHDR", ihdr)]
    if colour == 3:
        chunks.append(png_chunk(b"PLTE", bytes(rng.randrange(256) for _ in range(3 * 256))))
    stream = zlib.compress(b"".join(rows), 9)
    # Several IDAT chunks, as encoders write them.
    chunks += [png_chunk(b"IDAT", stream[i : i + 997]) for i in range(0, len(stream), 997)]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks) + png_chunk(b"IEND", b"")


def joined_bands(data: bytes, rows: int) -> tuple[bytes, int]:
    layout = png_layout(data)
    assert layout is not None and not layout.interlaced
    source = Image.open(io.BytesIO(data))
    bands = list(iter_bands(data, layout, source, rows))
    assert all(b.mode == source.mode and b.width == source.width for b in bands)
    return b"".join(b.tobytes() for b in bands), len(bands)


@pytest.mark.parametrize(
    ("depth", "colour"),
    [(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (8, 2), (16, 2), (2, 3), (4, 3), (8, 3),
     (8, 4), (16, 4), (8, 6), (16, 6)],
)  # fmt: skip
@pytest.mark.parametrize("rows", [1, 7, 64])
def test_bands_hold_exactly_the_pixels_of_a_whole_decode(
    depth: int, colour: int, rows: int
) -> None:
    data = filtered_png(37, 23, depth, colour)
    with Image.open(io.BytesIO(data)) as whole:
        whole.load()
        expected = whole.tobytes()
    pixels, bands = joined_bands(data, rows)
    assert pixels == expected
    assert bands == -(-23 // rows)


def test_a_truncated_stream_is_reported_as_truncated() -> None:
    data = filtered_png(64, 64, 8, 6)
    layout = png_layout(data)
    assert layout is not None
    cut = data[: layout.idat[0][0] + layout.idat[0][1] // 2]  # one IDAT cut short, no more
    short = png_layout(cut + png_chunk(b"IEND", b""))
    source = Image.open(io.BytesIO(data))
    with pytest.raises(OSError, match="truncated"):
        for _ in iter_bands(cut, short or layout, source, 16):
            pass


def test_the_layout_finds_an_exif_chunk_after_the_pixels() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = filtered_png(8, 8, 8, 2)
    at_end = data[:-12] + png_chunk(b"eXIf", exif.tobytes()) + data[-12:]
    layout = png_layout(at_end)
    assert layout is not None and layout.exif == exif.tobytes()


def test_what_is_not_a_png_has_no_layout() -> None:
    assert png_layout(b"\xff\xd8\xff not a png") is None
    assert png_layout(b"\x89PNG\r\n\x1a\n" + b"\x00" * 3) is None

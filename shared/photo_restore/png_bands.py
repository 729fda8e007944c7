"""Decode a non-interlaced PNG a band of rows at a time, so a 120 MP scan never exists in memory
as a whole image (Pillow decodes a PNG into one full-size buffer: 480 MB for 120 MP RGBA).

How: the IDAT stream is inflated incrementally here; each band's filtered rows are handed to
Pillow's own decoder as a small, valid PNG. PNG filters reconstruct a byte from the byte one
pixel to the left (`bpp` bytes back) and the bytes above it, so the band's first row needs the
previous band's last row, unfiltered: it goes first, stored as is (filter type 0).

The band is declared as the 8-bit PNG type with the same bytes per pixel (grey, grey+alpha, RGB,
RGBA for 1-4), whose decoded pixels give back their raw bytes exactly, so the filters apply
unchanged and the raw rows (for the next band's context) come out of Pillow as they went in.
16-bit colour has 6 or 8 bytes a pixel, which no 8-bit type has: its rows are split into planes
of 2- or 4-byte units (each channel's 16 bits, or half a pixel), decoded one by one.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageFile

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by PNG colour type


@dataclass(frozen=True)
class PngLayout:
    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlaced: bool
    idat: tuple[tuple[int, int], ...]  # (offset, length) of each IDAT chunk's payload
    exif: bytes | None  # an eXIf chunk, wherever it sits (often after the pixels)

    @property
    def filter_bytes_per_pixel(self) -> int:
        return max(1, _CHANNELS[self.colour_type] * self.bit_depth // 8)

    @property
    def row_bytes(self) -> int:
        return (self.width * _CHANNELS[self.colour_type] * self.bit_depth + 7) // 8


def png_layout(data: bytes) -> PngLayout | None:
    """The chunk layout of a PNG (no pixel decoded); None for what is not a well-formed PNG."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    position, header, idat, exif = len(PNG_SIGNATURE), None, [], None
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        start = position + 8
        if start + length > len(data):
            return None
        if kind == b"IHDR" and length >= 13:
            header = struct.unpack(">IIBBBBB", data[start : start + 13])
        elif kind == b"IDAT":
            idat.append((start, length))
        elif kind == b"eXIf":
            exif = data[start : start + length]
        elif kind == b"IEND":
            break
        position = start + length + 4  # skip the CRC
    if header is None or not idat or header[3] not in _CHANNELS:
        return None
    width, height, depth, colour, _, _, interlace = header
    return PngLayout(width, height, depth, colour, interlace == 1, tuple(idat), exif)


def iter_bands(
    data: bytes, layout: PngLayout, source: ImageFile.ImageFile, rows: int
) -> Iterator[Image.Image]:
    """The image in bands of `rows` rows (the last may be shorter), in `source`'s mode, with
    its palette and transparency. `source` is the opened (not loaded) image: its header gives
    Pillow's mode and raw mode for these pixels."""
    args = source.tile[0].args if source.tile else None
    rawmode = args if isinstance(args, str) else args[0] if args else source.mode
    row_bytes = layout.row_bytes
    unit, planes = _unit_and_planes(layout.filter_bytes_per_pixel)
    reader = _IdatReader(data, layout.idat)
    previous = b""
    for top in range(0, layout.height, rows):
        count = min(rows, layout.height - top)
        filtered = reader.read(count * (row_bytes + 1))
        if len(filtered) < count * (row_bytes + 1):
            raise OSError("image file is truncated (PNG data ends before its last row)")
        if planes == 1:
            raw = _decode_8bit(filtered, previous, count, row_bytes, unit)
        else:
            raw = _decode_planes(filtered, previous, count, row_bytes, unit, planes)
        previous = raw[-row_bytes:]
        band = Image.frombytes(source.mode, (layout.width, count), raw, "raw", rawmode)
        if source.palette is not None and source.mode == "P":
            band.putpalette(source.palette.tobytes(), source.palette.mode)
        if "transparency" in source.info:
            band.info["transparency"] = source.info["transparency"]
        yield band


class _IdatReader:
    """The inflated IDAT stream, read in exact amounts: at most one 64 KB slice of input is
    ever copied, and no more output is inflated than asked for (a zlib bomb stays small)."""

    SLICE = 64 * 1024

    def __init__(self, data: bytes, idat: tuple[tuple[int, int], ...]) -> None:
        view = memoryview(data)
        self._slices = (
            view[start : min(offset + length, start + self.SLICE)]
            for offset, length in idat
            for start in range(offset, offset + length, self.SLICE)
        )
        self._inflate = zlib.decompressobj()
        self._pending: bytes | memoryview = b""

    def read(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            if not self._pending:
                next_slice = next(self._slices, None)
                if next_slice is None:
                    break
                self._pending = next_slice
            out += self._inflate.decompress(self._pending, size - len(out))
            self._pending = self._inflate.unconsumed_tail
        return bytes(out)


# The 8-bit PNG colour type, and Pillow's mode for it, by bytes per pixel.
_EIGHT_BIT = {1: (0, "L"), 2: (4, "LA"), 3: (2, "RGB"), 4: (6, "RGBA")}
_UNIT_FORMAT: dict[int, Literal["H", "I"]] = {2: "H", 4: "I"}  # 2- and 4-byte units


def _unit_and_planes(bpp: int) -> tuple[int, int]:
    """Bytes per pixel as (unit, planes): one 8-bit-decodable unit, or 16-bit colour's planes."""
    if bpp in _EIGHT_BIT:
        return bpp, 1
    return (2, 3) if bpp == 6 else (4, 2)  # RGB16: R, G, B; RGBA16: RG and BA halves


def _decode_8bit(filtered: bytes, previous: bytes, count: int, row_bytes: int, unit: int) -> bytes:
    """Rows of `unit` bytes a pixel, decoded as that 8-bit type: no per-row work here."""
    context = b"\x00" + previous if previous else b""
    decoded = _decode(context + filtered, row_bytes // unit, count + bool(previous), unit)
    return decoded[row_bytes:] if previous else decoded


def _decode_planes(
    filtered: bytes, previous: bytes, count: int, row_bytes: int, unit: int, planes: int
) -> bytes:
    """16-bit colour: each plane of `unit`-byte groups decoded as its own 8-bit image."""
    kind = _UNIT_FORMAT[unit]
    raw = bytearray(count * row_bytes)
    raw_units = memoryview(raw).cast(kind)
    plane_bytes = row_bytes // planes
    for k in range(planes):
        rows = [b"\x00" + memoryview(previous).cast(kind)[k::planes].tobytes()] if previous else []
        for r in range(count):
            start = r * (row_bytes + 1)
            row = memoryview(filtered)[start + 1 : start + 1 + row_bytes].cast(kind)
            rows.append(filtered[start : start + 1] + row[k::planes].tobytes())
        plane = _decode(b"".join(rows), plane_bytes // unit, count + bool(previous), unit)
        raw_units[k::planes] = memoryview(plane[plane_bytes:] if previous else plane).cast(kind)
    return bytes(raw)


def _decode(filtered_rows: bytes, width: int, height: int, unit: int) -> bytes:
    """Filtered rows of an 8-bit image of `unit` bytes a pixel, as its raw bytes."""
    colour, mode = _EIGHT_BIT[unit]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    stored = zlib.compress(filtered_rows, 0)  # stored, not deflated: Pillow only copies it out
    png = b"".join(
        [PNG_SIGNATURE, *_chunk(b"IHDR", ihdr), *_chunk(b"IDAT", stored), *_chunk(b"IEND", b"")]
    )
    with Image.open(io.BytesIO(png), formats=["PNG"]) as image:
        return image.tobytes("raw", mode)


def _chunk(kind: bytes, payload: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    crc = zlib.crc32(payload, zlib.crc32(kind))
    return struct.pack(">I", len(payload)), kind, payload, struct.pack(">I", crc)

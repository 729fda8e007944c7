"""Images the tests need beyond the tools' generated old photo (no binary fixtures in the repo)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from photo_restore_tools.local.photos import old_photo

__all__ = ["old_photo", "png", "png_chunk", "raw_png", "rotated_jpeg"]


def png(size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def rotated_jpeg(size: tuple[int, int] = (600, 400), orientation: int = 6) -> bytes:
    """A landscape-stored JPEG whose EXIF says to show it rotated (as phones write them)."""
    image = Image.new("RGB", size, (120, 100, 80))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def raw_png(width: int, height: int, depth: int, colour: int, idat: bytes) -> bytes:
    """A PNG whose header says what the arguments say, whatever `idat` holds."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )

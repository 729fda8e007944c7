"""What an uploaded original is, from its bytes: real format by magic bytes, size in pixels
(refused above the limit from the header alone), capture time. Never its location: GPS and
every other EXIF field stay in the original, out of the database. Loads Pillow (the ingest's
imaging layer), never the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from photo_restore.errors import RestoreError, UnsupportedImage
from photo_restore.image_formats import MEDIA_TYPES, sniff_format
from photo_restore.preprocess import check_dimensions, open_image, reported_format

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132
_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Inspection:
    media_type: str
    format: str  # as the existing app's records name it ("HEIC" for HEVC-coded HEIF)
    width: int  # upright, after the EXIF orientation
    height: int
    captured_at: str | None  # EXIF DateTimeOriginal as ISO 8601 (no zone: EXIF has none)

    def metadata(self) -> dict[str, Any]:
        """photos.metadata_json: dimensions, format, capture time when present."""
        found: dict[str, Any] = {"dimensions": [self.width, self.height], "format": self.format}
        if self.captured_at:
            found["captured_at"] = self.captured_at
        return found


def inspect_image(data: bytes, *, max_pixels: int) -> Inspection:
    """Raises UnsupportedImage, CorruptImage or ImageTooLarge with the reason."""
    claimed = sniff_format(data)
    if claimed is None:
        raise UnsupportedImage("not an accepted image format (by its magic bytes)")
    image = open_image(data)
    with image:
        width, height = image.size
        check_dimensions(width, height, max_pixels)
        exif = _exif(image)
        fmt = reported_format(image.format or claimed, data)
    if exif.get(_ORIENTATION) in (5, 6, 7, 8):
        width, height = height, width
    return Inspection(
        media_type=MEDIA_TYPES[claimed],
        format=fmt,
        width=width,
        height=height,
        captured_at=_captured_at(exif),
    )


def _exif(image: Any) -> dict[int, Any]:
    try:
        exif = image.getexif()
        found = dict(exif)
        found.update(exif.get_ifd(_EXIF_IFD))
        return found
    except (RestoreError, MemoryError):
        raise
    except Exception:  # broken EXIF costs only the capture time
        return {}


def _captured_at(exif: dict[int, Any]) -> str | None:
    for tag in (_DATETIME_ORIGINAL, _DATETIME):
        value = exif.get(tag)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if isinstance(value, str):
            try:
                return datetime.strptime(value.strip("\x00 "), "%Y:%m:%d %H:%M:%S").isoformat()
            except ValueError:
                continue
    return None

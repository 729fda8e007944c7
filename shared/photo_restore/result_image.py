"""The restored image as we store it: always a JPEG, whatever format the provider returned."""

from __future__ import annotations

import io

from photo_restore.errors import InvalidProviderResult
from photo_restore.image_formats import sniff_format


def as_jpeg(data: bytes, *, quality: int) -> bytes:
    """JPEG bytes pass through untouched; anything else is re-encoded as 8-bit RGB JPEG."""
    if sniff_format(data) == "JPEG":
        return data
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise InvalidProviderResult(f"the restored image could not be decoded: {error}") from error
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=quality)
    return out.getvalue()

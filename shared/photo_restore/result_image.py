"""The restored image as we store it: decoded in full before it counts, always a JPEG carrying
its provenance marks and no other metadata (photo_restore.provenance), and refused from its
header when it is larger than any plausible result (a pixel bomb)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from photo_restore.errors import InvalidProviderResult
from photo_restore.image_formats import sniff_format
from photo_restore.provenance import Provenance

if TYPE_CHECKING:
    from PIL import Image

# Only formats a result can plausibly be; exotic decoders (EPS runs Ghostscript) stay out of reach.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")


# A restoration's gallery thumbnail: its longest side.
THUMBNAIL_SIDE = 512
_ORIENTATION_TAG = 0x0112  # EXIF Orientation


@dataclass(frozen=True)
class RestoredImage:
    jpeg: bytes
    width: int
    height: int
    provider_format: str  # what the provider sent, before any re-encoding
    thumbnail: bytes  # JPEG, longest side THUMBNAIL_SIDE (never upscaled)
    provenance: dict[str, Any]  # what both carry (Provenance.record), for the attempt's params


def decode_result(
    data: bytes, *, max_pixels: int, jpeg_quality: int, provenance: Provenance
) -> RestoredImage:
    """Check the header's size, decode every pixel (a truncated file fails here, not later in a
    browser), and encode it with `provenance`'s marks and nothing else of the file: an upright
    RGB/grey JPEG with its own tables (no visible loss), anything else at `jpeg_quality`."""
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            # We enforce max_pixels ourselves, below Pillow's own bomb threshold.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise InvalidProviderResult(
                        f"the restored image is {width}x{height} = {width * height} pixels, "
                        f"above the limit of {max_pixels} (RESULT_MAX_PIXELS)"
                    )
                image.load()
                fmt = image.format or "unknown"
                # Its EXIF and ICC profile go, so what they ask for is applied to the pixels:
                # the orientation, and the colours in sRGB (what a browser assumes untagged).
                upright = _orientation(image) == 1
                icc = image.info.get("icc_profile") if image.mode == "RGB" else None
                keep = fmt == "JPEG" and image.mode in ("RGB", "L") and sniff_format(data) == "JPEG"
                plain = upright and not icc
                kept = provenance.save_jpeg(image, quality="keep") if keep and plain else None
                rgb = (image if upright else ImageOps.exif_transpose(image)).convert("RGB")
                rgb = _to_srgb(rgb, icc) if icc else rgb
                width, height = rgb.size
    except InvalidProviderResult:
        raise
    except Exception as error:  # Pillow raises many types (OSError, SyntaxError, bomb errors...)
        raise InvalidProviderResult(f"the restored image could not be decoded: {error}") from error
    thumbnail = provenance.save_jpeg(_thumbnail(rgb), quality=jpeg_quality)
    jpeg = kept if kept is not None else provenance.save_jpeg(rgb, quality=jpeg_quality)
    return RestoredImage(jpeg, width, height, fmt, thumbnail, provenance.record())


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.createProfile("sRGB")
        converted = ImageCms.profileToProfile(image, source, srgb, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image  # an unreadable profile: its pixels as they are, as before
    return converted if converted is not None else image


def _orientation(image: Image.Image) -> int:
    try:
        orientation = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not cost the result: it is dropped anyway
        return 1
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


def _thumbnail(image: Image.Image) -> Image.Image:
    small = image.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # reducing_gap: box-reduce, then resample
    return small

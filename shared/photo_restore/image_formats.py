"""Which image format bytes claim to be, from their magic numbers alone: no decoder involved."""

from __future__ import annotations

JPEG_MAGIC = b"\xff\xd8\xff"
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
_HEIF_BRANDS = _HEIC_BRANDS | {b"mif1", b"msf1"}
_AVIF_BRANDS = frozenset({b"avif", b"avis"})

# The accepted formats, the media type an upload of each has, and its original's extension.
MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
    "HEIF": "image/heic",
    "AVIF": "image/avif",
}
# Other names clients (and browsers' File.type) give those types; an upload is signed with
# the canonical one, which its answer's headers say.
MEDIA_TYPE_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/heif": "image/heic",
    "image/heic-sequence": "image/heic",
    "image/heif-sequence": "image/heic",
}
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/tiff": ".tiff",
    "image/bmp": ".bmp",
    "image/heic": ".heic",
    "image/avif": ".avif",
}


def sniff_format(data: bytes) -> str | None:
    """The accepted format the magic bytes claim, to tell corrupt files from unsupported ones."""
    if data.startswith(JPEG_MAGIC):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:2] == b"BM" and data[14:18] in (
        bytes([n, 0, 0, 0]) for n in (12, 40, 52, 56, 108, 124)
    ):
        return "BMP"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _AVIF_BRANDS:
            return "AVIF"
        if brand in _HEIF_BRANDS:
            return "HEIF"
    return None


def is_hevc_heif(data: bytes) -> bool:
    """HEIF whose brand says HEVC: what the existing app's records call "HEIC"."""
    return data[4:8] == b"ftyp" and data[8:12] in _HEIC_BRANDS


def sniff_media_type(data: bytes) -> str | None:
    """The media type the magic bytes claim; never a file name or a declared type."""
    return MEDIA_TYPES.get(sniff_format(data) or "")

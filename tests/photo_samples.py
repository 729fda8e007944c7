"""Small generated photos for the pipeline tests (no binary fixtures in the repo)."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def old_photo(size: tuple[int, int] = (640, 480), *, fmt: str = "JPEG", **save: object) -> bytes:
    """A sepia picture with scratches: recognisable, cheap to process."""
    image = Image.new("RGB", size, (150, 120, 90))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w // 4, h // 5, 3 * w // 4, 4 * h // 5), fill=(200, 170, 130))
    for x in range(0, w, max(1, w // 12)):
        draw.line((x, 0, x + w // 10, h), fill=(230, 220, 200), width=1)
    out = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    image.save(out, format=fmt, **save)  # type: ignore[arg-type]
    return out.getvalue()


def rotated_jpeg(size: tuple[int, int] = (600, 400), orientation: int = 6) -> bytes:
    """A landscape-stored JPEG whose EXIF says to show it rotated (as phones write them)."""
    image = Image.new("RGB", size, (120, 100, 80))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()

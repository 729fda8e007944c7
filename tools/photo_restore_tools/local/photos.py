"""Photos as the existing app's upload leaves them (S3 original + `photos` row), for tests and
benchmarks that need many at once (the local stack uploads through the real flow, see
direct_upload); plus the sample photo the demo restores."""

from __future__ import annotations

import hashlib
import io
import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageOps
from sqlalchemy import Engine, insert

from photo_restore.image_formats import EXTENSIONS, sniff_media_type
from photo_restore.models import photos
from photo_restore.status import PhotoStatus
from photo_restore.storage import original_key

DEMO_USER_ID = "local-demo-user"
DEMO_USER_EMAIL = "demo@example.com"
SAMPLE_PHOTO = Path(__file__).resolve().parent / "sample_photo.jpg"


class UnsupportedUpload(ValueError):
    """The bytes are empty or not an image type the app accepts."""


@dataclass(frozen=True)
class UploadedPhoto:
    id: uuid.UUID
    owner_id: str
    original_key: str
    mime_type: str
    size_bytes: int

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.mime_type]


def sniff_mime_type(data: bytes) -> str | None:
    """The image type the magic bytes claim (the worker's own sniffing); never a file name."""
    return sniff_media_type(data)


@dataclass(frozen=True)
class StoredPhoto:
    id: uuid.UUID
    owner_id: str
    original_key: str


def add_photo(
    engine: Engine,
    *,
    owner_id: str,
    data: bytes,
    mime_type: str = "image/jpeg",
    status: PhotoStatus = PhotoStatus.UPLOADED,
    s3: Any = None,
    bucket: str | None = None,
    photo_id: uuid.UUID | None = None,
) -> StoredPhoto:
    """A `photos` row as the existing app's upload writes it, and the S3 original when `s3` is
    given (object first: a row must never point at an original that is not there)."""
    photo_id = photo_id or uuid.uuid4()
    key = original_key(owner_id, photo_id, EXTENSIONS.get(mime_type, ".bin"))
    if s3 is not None:
        s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=mime_type)
    with engine.begin() as conn:
        conn.execute(
            insert(photos).values(
                id=photo_id,
                owner_id=owner_id,
                original_key=key,
                status=status.value,
                size_bytes=len(data),
                mime_type=mime_type,
                checksum_sha256=hashlib.sha256(data).hexdigest(),
                metadata_json={},
            )
        )
    return StoredPhoto(id=photo_id, owner_id=owner_id, original_key=key)


def upload_photo(
    engine: Engine, s3: Any, bucket: str, *, owner_id: str, data: bytes
) -> UploadedPhoto:
    """Store an upload at `originals/{owner}/{photo_id}{ext}` with its `uploaded` row; refuses
    what is not an accepted image, as the existing app's upload does."""
    if not data:
        raise UnsupportedUpload("the upload is empty")
    mime_type = sniff_mime_type(data)
    if mime_type is None:
        accepted = ", ".join(sorted(EXTENSIONS))
        raise UnsupportedUpload(f"not an accepted image type (accepted: {accepted})")
    stored = add_photo(
        engine, owner_id=owner_id, data=data, mime_type=mime_type, s3=s3, bucket=bucket
    )
    return UploadedPhoto(
        id=stored.id,
        owner_id=owner_id,
        original_key=stored.original_key,
        mime_type=mime_type,
        size_bytes=len(data),
    )


def sample_photo() -> bytes:
    """The bundled old photo when present, else a generated one."""
    if SAMPLE_PHOTO.is_file():
        return SAMPLE_PHOTO.read_bytes()
    return old_photo((1200, 900))


def old_photo(
    size: tuple[int, int] = (640, 480), *, fmt: str = "JPEG", seed: int = 7, **save: Any
) -> bytes:
    """A faded sepia 'portrait' with scratches and dust: something visibly worth restoring, in
    any format Pillow (with pillow-heif for "HEIF") writes. Deterministic for a seed."""
    rng = random.Random(seed)
    w, h = size
    image = Image.new("L", size, 150)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, int(h * 0.7), w, h), fill=110)  # a floor
    draw.ellipse((w * 0.38, h * 0.18, w * 0.62, h * 0.5), fill=205)  # a face
    draw.rectangle((w * 0.32, h * 0.48, w * 0.68, h * 0.95), fill=70)  # a dark coat
    for eye_x in (0.45, 0.55):
        draw.ellipse((w * eye_x - 9, h * 0.31 - 6, w * eye_x + 9, h * 0.31 + 6), fill=50)
    image = image.filter(ImageFilter.BoxBlur(2))
    draw = ImageDraw.Draw(image)
    for _ in range(14):  # scratches
        x = rng.randrange(w)
        draw.line((x, 0, x + rng.randint(-60, 60), h), fill=235, width=rng.choice((1, 1, 2)))
    for _ in range(400):  # dust
        x, y, r = rng.randrange(w), rng.randrange(h), rng.choice((1, 1, 2, 3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=rng.choice((20, 240)))
    faded = image.point([70 + round(v * 0.55) for v in range(256)])  # lifted blacks, dim whites
    sepia = ImageOps.colorize(faded, black=(60, 40, 25), white=(235, 215, 175))
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    out = io.BytesIO()
    sepia.save(out, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}) | save)
    return out.getvalue()

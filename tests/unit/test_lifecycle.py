"""The photo lifecycle's pure parts: original keys, the checksum header, gallery cursors, upload
requests refused before any database, and what the inspection keeps of an image."""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
from datetime import UTC, datetime

import pytest
from PIL import Image

from photo_restore.errors import (
    ImageTooLarge,
    InvalidRequest,
    UnsupportedImage,
    UnsupportedUploadType,
    UploadTooLarge,
)
from photo_restore.lifecycle.gallery import decode_cursor, encode_cursor
from photo_restore.lifecycle.inspection import inspect_image
from photo_restore.lifecycle.queries import GalleryEntry
from photo_restore.lifecycle.uploads import Uploads, checksum_header
from photo_restore.lifecycle.views import UploadRequestBody
from photo_restore.restore_requests import Caller
from photo_restore.settings import Settings
from photo_restore.status import PhotoStatus
from photo_restore.storage import original_key, photo_id_of_original
from tests.helpers.images import old_photo, png, raw_png


def test_an_original_key_names_its_owner_and_photo_and_other_keys_name_none() -> None:
    photo_id = uuid.uuid4()
    assert photo_id_of_original(original_key("user-1", photo_id, ".heic")) == ("user-1", photo_id)
    for key in ("restored/x/y.jpg", "originals/user-1/not-a-uuid.jpg", f"originals/{photo_id}"):
        assert photo_id_of_original(key) is None
    assert photo_id_of_original(f"originals/a/b/{photo_id}.jpg") is None  # not our layout


def test_the_checksum_header_is_the_digest_in_base64() -> None:
    digest = hashlib.sha256(b"photo")
    assert base64.b64decode(checksum_header(digest.hexdigest())) == digest.digest()


def test_a_gallery_cursor_comes_back_as_the_position_it_names_and_others_are_refused() -> None:
    entry = GalleryEntry(
        id=uuid.uuid4(),
        status=PhotoStatus.READY,
        created_at=datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
        mime_type="image/jpeg",
        size_bytes=1,
        metadata={},
        processed_key=None,
        thumbnail_key=None,
        selected_restore_id=None,
    )
    position = decode_cursor(encode_cursor(entry))
    assert (position.created_at, position.photo_id) == (entry.created_at, entry.id)
    attempts_cursor = base64.urlsafe_b64encode(b'{"t": "2026-01-02T00:00:00+00:00", "id": "x"}')
    for cursor in ("", "!!", attempts_cursor.decode()):
        with pytest.raises(InvalidRequest) as refused:
            decode_cursor(cursor)
        assert refused.value.field == "cursor"


def body(**fields: object) -> UploadRequestBody:
    defaults: dict[str, object] = {
        "content_type": "image/jpeg",
        "size_bytes": 1000,
        "sha256": "a" * 64,
    }
    return UploadRequestBody.model_validate(defaults | fields)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"content_type": "application/pdf"}, UnsupportedUploadType),
        ({"content_type": ""}, UnsupportedUploadType),
        ({"size_bytes": 50 * 1024 * 1024 + 1}, UploadTooLarge),
        ({"sha256": "A" * 63}, InvalidRequest),
        ({"sha256": base64.b64encode(b"x" * 32).decode()}, InvalidRequest),
    ],
)
def test_an_upload_request_is_refused_before_the_database_is_asked(
    fields: dict[str, object], error: type[Exception]
) -> None:
    # No repository at all: a refusal must not need one.
    uploads = Uploads(None, None, Settings())  # type: ignore[arg-type]
    with pytest.raises(error):
        uploads.request_upload(Caller("user-1", None), body(**fields))


def jpeg_with(exif: Image.Exif, size: tuple[int, int] = (300, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (90, 80, 70)).save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_the_inspection_keeps_upright_dimensions_format_and_capture_time_never_gps() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    exif.get_ifd(0x8769)[0x9003] = "1987:06:05 04:03:02"
    exif.get_ifd(0x8825).update({1: "N", 2: (51.0, 30.0, 0.0)})
    found = inspect_image(jpeg_with(exif), max_pixels=10**6)
    assert (found.media_type, found.width, found.height) == ("image/jpeg", 200, 300)
    assert found.metadata() == {
        "dimensions": [200, 300],
        "format": "JPEG",
        "captured_at": "1987-06-05T04:03:02",
    }


def test_an_image_without_a_readable_capture_time_has_none() -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "sometime in June"
    assert "captured_at" not in inspect_image(jpeg_with(exif), max_pixels=10**6).metadata()
    assert inspect_image(png(), max_pixels=10**6).metadata() == {
        "dimensions": [8, 8],
        "format": "PNG",
    }


def test_the_inspection_refuses_by_the_bytes_and_by_the_header() -> None:
    with pytest.raises(UnsupportedImage):
        inspect_image(b"%PDF-1.7 not an image", max_pixels=10**6)
    with pytest.raises(ImageTooLarge):
        inspect_image(old_photo((640, 480)), max_pixels=640 * 480 - 1)
    with pytest.raises(ImageTooLarge):  # 1.6 GP declared, nothing decoded
        inspect_image(raw_png(40_000, 40_000, 8, 2, b""), max_pixels=10**8)

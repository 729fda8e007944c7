"""Direct uploads: a presigned PUT straight to S3 that S3 itself holds to the declared size and
SHA-256, or the user's live photo with that checksum when they have it already."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from photo_restore.errors import (
    InvalidRequest,
    UnsupportedUploadType,
    UploadNotFound,
    UploadTooLarge,
)
from photo_restore.image_formats import EXTENSIONS, MEDIA_TYPE_ALIASES
from photo_restore.lifecycle.queries import LifecycleRepository, UploadRecord, UploadStatus
from photo_restore.lifecycle.views import (
    PresignedUpload,
    UploadLimits,
    UploadRequestBody,
    UploadView,
)
from photo_restore.settings import Settings
from photo_restore.storage import ObjectStorage, original_key

if TYPE_CHECKING:
    from photo_restore.restore_requests import Caller

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# After its URL expired, how long an upload may still be arriving (a PUT begun just before).
EXPIRY_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class UploadAnswer:
    """201 with a presigned upload, or 200 with the photo the user already has."""

    status: int
    body: UploadView


def checksum_header(sha256_hex: str) -> str:
    """x-amz-checksum-sha256 carries the digest in base64."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


class Uploads:
    def __init__(
        self,
        lifecycle: LifecycleRepository,
        storage: ObjectStorage,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._lifecycle = lifecycle
        self._storage = storage
        self._settings = settings
        self._clock = clock

    def request_upload(self, caller: Caller, body: UploadRequestBody) -> UploadAnswer:
        declared = body.content_type.split(";", 1)[0].strip().lower()
        content_type = MEDIA_TYPE_ALIASES.get(declared, declared)
        if content_type not in EXTENSIONS:
            accepted = ", ".join(sorted(EXTENSIONS))
            raise UnsupportedUploadType(f"{content_type or 'no type'} is not accepted ({accepted})")
        limit = self._settings.max_original_bytes
        if body.size_bytes > limit:
            raise UploadTooLarge(f"{body.size_bytes} bytes is above the limit of {limit}")
        sha256 = body.sha256.strip().lower()
        if not _SHA256_HEX.fullmatch(sha256):
            raise InvalidRequest("sha256 must be 64 hexadecimal digits", field="sha256")

        upload_id = uuid.uuid4()
        expires_in = timedelta(seconds=self._settings.upload_url_seconds)
        with self._lifecycle.transaction() as tx:
            if (existing := tx.live_photo_with_checksum(caller.user_id, sha256)) is not None:
                duplicate = UploadView(
                    upload_id=None, status="accepted", photo_id=existing, duplicate=True
                )
                return UploadAnswer(200, duplicate)
            upload = tx.insert_upload(
                upload_id=upload_id,
                owner_id=caller.user_id,
                object_key=original_key(caller.user_id, upload_id, EXTENSIONS[content_type]),
                content_type=content_type,
                size_bytes=body.size_bytes,
                checksum_sha256=sha256,
                expires_in=expires_in,
            )
        url = self._storage.presigned_put_url(
            upload.object_key,
            content_type=content_type,
            size=upload.size_bytes,
            checksum_sha256=checksum_header(sha256),
            expires_seconds=self._settings.upload_url_seconds,
        )
        presigned = PresignedUpload(
            url=url,
            headers={
                "Content-Type": content_type,
                "Content-Length": str(upload.size_bytes),
                "x-amz-checksum-sha256": checksum_header(sha256),
            },
            expires_at=upload.expires_at,
        )
        created = _view(upload).model_copy(update={"upload": presigned, "limits": self.limits()})
        return UploadAnswer(201, created)

    def get_upload(self, caller: Caller, upload_id: uuid.UUID) -> UploadView:
        with self._lifecycle.transaction() as tx:
            upload = tx.upload(upload_id)
        if upload is None or upload.owner_id != caller.user_id:
            raise UploadNotFound("no such upload")
        return _view(upload)

    def expire_stale(self) -> int:
        """Settle uploads never ingested (the sweeper's run): rejected `expired` once a PUT
        begun just before the URL expired has had EXPIRY_GRACE to finish, and whatever object
        one left deleted (its ingest may have died in the DLQ). One still landing later is
        deleted by the ingest, which finds its upload settled."""
        with self._lifecycle.transaction() as tx:
            keys = tx.expire_pending_uploads(
                grace=EXPIRY_GRACE, reason="nothing was ingested before the upload URL expired"
            )
        self._storage.delete_many(keys)
        return len(keys)

    def limits(self) -> UploadLimits:
        return UploadLimits(
            max_bytes=self._settings.max_original_bytes,
            max_pixels=self._settings.max_input_pixels,
            content_types=sorted(EXTENSIONS),
        )


def _view(upload: UploadRecord) -> UploadView:
    pending = upload.status == UploadStatus.PENDING
    return UploadView(
        upload_id=upload.id,
        status=upload.status,
        photo_id=upload.id if pending else upload.photo_id,
        duplicate=upload.photo_id is not None and upload.photo_id != upload.id,
        reason_code=upload.reason_code,
        reason=upload.reason,
        expires_at=upload.expires_at,
    )

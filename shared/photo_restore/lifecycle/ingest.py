"""The ingest of a direct upload: S3 says an object was created; the object is checked and
becomes a `photos` row (`uploaded`), or is deleted with the reason on its upload.

Every notification may come twice and two uploads of one file may race: the photo is made
under a transaction lock on (owner, checksum), after re-reading the upload under its row lock,
so one checksum of one user never makes two live photos, and a second delivery finds the
upload settled and only finishes what the first left (a delete, an event).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum

from photo_restore.errors import DependencyUnavailable, RestoreError
from photo_restore.events import EventPublisher, RestoreEvent
from photo_restore.lifecycle.inspection import Inspection, inspect_image
from photo_restore.lifecycle.queries import LifecycleRepository, UploadRecord, UploadStatus
from photo_restore.settings import Settings
from photo_restore.storage import ObjectStorage, photo_id_of_original

logger = logging.getLogger(__name__)


class IngestOutcome(StrEnum):
    ACCEPTED = "accepted"  # a new photo
    DUPLICATE = "duplicate"  # the user's live photo with this checksum; the object deleted
    REJECTED = "rejected"  # the object deleted, the reason on the upload
    SETTLED = "settled"  # a repeated notification: the upload was settled already
    IGNORED = "ignored"  # not a direct upload's object (the existing app's, a test event)


@dataclass(frozen=True)
class IngestReport:
    outcome: IngestOutcome
    key: str
    upload_id: uuid.UUID | None = None
    photo_id: uuid.UUID | None = None
    reason_code: str | None = None


class _Refused(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Ingest:
    def __init__(
        self,
        lifecycle: LifecycleRepository,
        storage: ObjectStorage,
        publisher: EventPublisher,
        settings: Settings,
    ) -> None:
        self._lifecycle = lifecycle
        self._storage = storage
        self._publisher = publisher
        self._settings = settings

    def object_created(self, key: str) -> IngestReport:
        """Transient failures (S3, the database, the bus) raise, so SQS delivers it again."""
        parsed = photo_id_of_original(key)
        upload = None
        if parsed is not None:
            with self._lifecycle.transaction() as tx:
                upload = tx.upload(parsed[1])
        if upload is None or upload.object_key != key:
            logger.info("not a direct upload's object: %s", key)
            return IngestReport(IngestOutcome.IGNORED, key)
        if upload.status != UploadStatus.PENDING:
            return self._finish_settled(upload)
        try:
            inspection = self._check(upload)
        except _Refused as refused:
            return self._reject(upload, refused)
        return self._accept(upload, inspection)

    def _check(self, upload: UploadRecord) -> Inspection:
        """S3 enforced the signed size and checksum (moto does not: both are checked here too,
        from the bytes), then the bytes say what they are."""
        stored = self._storage.head(upload.object_key)
        if stored is None:
            raise _Refused("original_missing", "the uploaded object is gone")
        limit = self._settings.max_original_bytes
        if stored.size > limit:
            raise _Refused("upload_too_large", f"{stored.size} bytes is above {limit}")
        if stored.size != upload.size_bytes:
            raise _Refused(
                "size_mismatch", f"{stored.size} bytes arrived, {upload.size_bytes} were declared"
            )
        declared = base64.b64encode(bytes.fromhex(upload.checksum_sha256)).decode("ascii")
        if stored.checksum_sha256 is not None and stored.checksum_sha256 != declared:
            raise _Refused("checksum_mismatch", "S3 recorded another SHA-256 than declared")
        data = self._storage.read(upload.object_key, max_bytes=limit)
        if hashlib.sha256(data).hexdigest() != upload.checksum_sha256:
            raise _Refused("checksum_mismatch", "the bytes' SHA-256 is not the one declared")
        try:
            inspection = inspect_image(data, max_pixels=self._settings.max_input_pixels)
        except RestoreError as error:
            if isinstance(error, DependencyUnavailable):
                raise
            raise _Refused(error.code, error.message) from error
        if inspection.media_type != upload.content_type:
            raise _Refused(
                "content_type_mismatch",
                f"declared {upload.content_type}, the bytes are {inspection.media_type}",
            )
        return inspection

    def _reject(self, upload: UploadRecord, refused: _Refused) -> IngestReport:
        # Recorded first, then deleted: a failed delete is redone by the next delivery.
        with self._lifecycle.transaction() as tx:
            tx.settle_upload(
                upload.id,
                status=UploadStatus.REJECTED,
                reason_code=refused.code,
                reason=refused.reason[:500],
            )
        self._storage.delete(upload.object_key)
        logger.info("upload %s rejected: %s", upload.id, refused.reason)
        return IngestReport(
            IngestOutcome.REJECTED, upload.object_key, upload.id, reason_code=refused.code
        )

    def _accept(self, upload: UploadRecord, inspection: Inspection) -> IngestReport:
        existing = None
        with self._lifecycle.transaction() as tx:
            tx.lock_checksum(upload.owner_id, upload.checksum_sha256)
            current = tx.upload(upload.id, for_update=True)
            if current is None or current.status != UploadStatus.PENDING:
                settled = True
            else:
                settled = False
                existing = tx.live_photo_with_checksum(upload.owner_id, upload.checksum_sha256)
                photo_id = existing or upload.id
                if existing is None:
                    tx.insert_uploaded_photo(
                        upload,
                        mime_type=inspection.media_type,
                        size_bytes=upload.size_bytes,
                        metadata=inspection.metadata(),
                    )
                tx.settle_upload(upload.id, status=UploadStatus.ACCEPTED, photo_id=photo_id)
        if settled:  # a concurrent delivery of the same notification got there first
            with self._lifecycle.transaction() as tx:
                again = tx.upload(upload.id)
            assert again is not None
            return self._finish_settled(again)
        if existing is not None:
            self._storage.delete(upload.object_key)
            return IngestReport(IngestOutcome.DUPLICATE, upload.object_key, upload.id, existing)
        self._announce(upload.id, upload.owner_id)
        return IngestReport(IngestOutcome.ACCEPTED, upload.object_key, upload.id, upload.id)

    def _finish_settled(self, upload: UploadRecord) -> IngestReport:
        """What an earlier delivery may have left: the object of a rejected or duplicate
        upload, the event of an accepted one."""
        if upload.status == UploadStatus.REJECTED or upload.photo_id != upload.id:
            self._storage.delete(upload.object_key)
        elif not upload.announced:
            self._announce(upload.id, upload.owner_id)
        return IngestReport(
            IngestOutcome.SETTLED, upload.object_key, upload.id, upload.photo_id, upload.reason_code
        )

    def _announce(self, photo_id: uuid.UUID, owner_id: str) -> None:
        """PhotoUploaded, then recorded: a publish that fails raises, and the redelivery of the
        notification publishes it."""
        self._publisher.publish(RestoreEvent.photo_uploaded(photo_id, owner_id, photo_id))
        with self._lifecycle.transaction() as tx:
            tx.mark_upload_announced(photo_id)

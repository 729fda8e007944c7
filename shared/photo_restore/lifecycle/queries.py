"""This package's SQL, run inside the main repository's transactions so that a photo's status
change commits with the attempt rows it touches (a delete cancels the restoration in flight)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from photo_restore.attempts import PENDING_S3_KEY
from photo_restore.models import jobs, photos, restore_attempts, uploads
from photo_restore.photos import Photo
from photo_restore.repository import SqlRepository, SqlTransaction
from photo_restore.status import (
    ARCHIVABLE_STATUSES,
    LIVE_STATUSES,
    PhotoStatus,
    status_after_unarchive,
)


@dataclass(frozen=True)
class GalleryEntry:
    """One photo as the gallery lists it."""

    id: uuid.UUID
    status: PhotoStatus
    created_at: datetime
    mime_type: str
    size_bytes: int
    metadata: dict[str, Any]
    processed_key: str | None
    thumbnail_key: str | None
    selected_restore_id: uuid.UUID | None


@dataclass(frozen=True)
class GalleryCursor:
    created_at: datetime
    photo_id: uuid.UUID


@dataclass(frozen=True)
class UploadRecord:
    id: uuid.UUID
    owner_id: str
    object_key: str
    content_type: str
    size_bytes: int
    checksum_sha256: str
    status: str
    reason_code: str | None
    reason: str | None
    photo_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime
    announced: bool


class UploadStatus:
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class LifecycleRepository:
    def __init__(self, repository: SqlRepository) -> None:
        self.repository = repository

    @contextmanager
    def transaction(self) -> Iterator[LifecycleTransaction]:
        with self.repository.transaction() as tx:
            yield LifecycleTransaction(tx)


class LifecycleTransaction:
    def __init__(self, tx: SqlTransaction) -> None:
        self.restore = tx  # the restore pipeline's operations, in the same transaction
        # One connection for both: this package's statements commit with the pipeline's.
        self._conn = tx._conn

    # --- photos --------------------------------------------------------------------------

    def locked_photo(self, photo_id: uuid.UUID, owner_id: str | None = None) -> Photo | None:
        """The photo (the owner's, when given), its row locked until the transaction ends:
        a worker's commit on it waits, then finds it no longer processing."""
        statement = select(photos).where(photos.c.id == photo_id)
        if owner_id is not None:
            statement = statement.where(photos.c.owner_id == owner_id)
        row = self._conn.execute(statement.with_for_update()).one_or_none()
        return self.restore.photo(photo_id) if row else None

    def archive(self, photo_id: uuid.UUID) -> Photo | None:
        return self.restore.change_photo_status(
            photo_id, sources=ARCHIVABLE_STATUSES, target=PhotoStatus.ARCHIVED
        )

    def unarchive(self, photo: Photo) -> Photo | None:
        target = status_after_unarchive(has_restoration=photo.processed_key is not None)
        return self.restore.change_photo_status(
            photo.id, sources=[PhotoStatus.ARCHIVED], target=target
        )

    def mark_deleted(self, photo_id: uuid.UUID) -> Photo | None:
        return self.restore.change_photo_status(
            photo_id, sources=[PhotoStatus.ARCHIVED], target=PhotoStatus.DELETED
        )

    def photo_object_keys(self, photo_id: uuid.UUID) -> set[str]:
        """Every key the rows name for the photo: its original, selected restoration and
        thumbnail, and each attempt's stored result (the rest share one prefix in S3); but
        none that another live photo of the owner still names (rows of the existing app may
        share an original)."""
        statement = (
            select(photos.c.original_key, photos.c.processed_key, jobs.c.thumbnail_s3_key)
            .select_from(photos.outerjoin(jobs, jobs.c.id == photos.c.id))
            .where(photos.c.id == photo_id)
        )
        row = self._conn.execute(statement).one_or_none()
        keys = {key for key in (row or ()) if key}
        results = select(restore_attempts.c.s3_key).where(
            restore_attempts.c.job_id == photo_id, restore_attempts.c.s3_key != PENDING_S3_KEY
        )
        keys |= set(self._conn.execute(results).scalars())
        owner = select(photos.c.owner_id).where(photos.c.id == photo_id).scalar_subquery()
        others = select(photos.c.original_key, photos.c.processed_key).where(
            photos.c.owner_id == owner,
            photos.c.id != photo_id,
            photos.c.status.in_([s.value for s in LIVE_STATUSES]),
        )
        still_named = {key for row in self._conn.execute(others) for key in row if key}
        return keys - still_named

    def owner_photo_ids(self, owner_id: str) -> list[uuid.UUID]:
        statement = select(photos.c.id).where(photos.c.owner_id == owner_id)
        return list(self._conn.execute(statement.order_by(photos.c.created_at)).scalars())

    def live_photo_with_checksum(self, owner_id: str, checksum_sha256: str) -> uuid.UUID | None:
        statement = (
            select(photos.c.id)
            .where(
                photos.c.owner_id == owner_id,
                photos.c.checksum_sha256 == checksum_sha256,
                photos.c.status.in_([s.value for s in LIVE_STATUSES]),
            )
            .order_by(photos.c.created_at)
            .limit(1)
        )
        found: uuid.UUID | None = self._conn.execute(statement).scalar_one_or_none()
        return found

    def gallery_page(
        self,
        owner_id: str,
        *,
        statuses: Collection[PhotoStatus],
        limit: int,
        after: GalleryCursor | None,
    ) -> list[GalleryEntry]:
        """Newest first, keyset on (created_at, id): stable while photos are added. It rides
        the existing app's ix_photos_owner_id (no index of ours on its table)."""
        statement = (
            select(
                photos.c.id,
                photos.c.status,
                photos.c.created_at,
                photos.c.mime_type,
                photos.c.size_bytes,
                photos.c.metadata_json,
                photos.c.processed_key,
                jobs.c.thumbnail_s3_key,
                jobs.c.selected_restore_id,
            )
            .select_from(photos.outerjoin(jobs, jobs.c.id == photos.c.id))
            .where(
                photos.c.owner_id == owner_id,
                photos.c.status.in_([s.value for s in statuses]),
            )
        )
        if after is not None:
            position = tuple_(photos.c.created_at, photos.c.id)
            statement = statement.where(position < tuple_(after.created_at, after.photo_id))
        statement = statement.order_by(photos.c.created_at.desc(), photos.c.id.desc())
        return [_gallery_entry(row) for row in self._conn.execute(statement.limit(limit))]

    def insert_uploaded_photo(
        self,
        upload: UploadRecord,
        *,
        mime_type: str,
        size_bytes: int,
        metadata: dict[str, Any],
    ) -> bool:
        """The `photos` row of an accepted upload, as the existing app's upload writes one;
        False when it exists already (a duplicate notification)."""
        statement = (
            insert(photos)
            .values(
                id=upload.id,
                owner_id=upload.owner_id,
                original_key=upload.object_key,
                status=PhotoStatus.UPLOADED.value,
                size_bytes=size_bytes,
                mime_type=mime_type,
                checksum_sha256=upload.checksum_sha256,
                metadata_json=metadata,
            )
            .on_conflict_do_nothing(index_elements=[photos.c.id])
            .returning(photos.c.id)
        )
        return self._conn.execute(statement).one_or_none() is not None

    def lock_checksum(self, owner_id: str, checksum_sha256: str) -> None:
        """Serialise ingests of one user's one checksum until the transaction ends: the
        existing `photos` table has no unique constraint to lean on, and this lock is
        transaction-scoped, so it holds through a transaction-mode pooler."""
        key = func.hashtextextended(literal(f"upload:{owner_id}:{checksum_sha256}"), literal(0))
        self._conn.execute(select(func.pg_advisory_xact_lock(key)))

    # --- uploads -------------------------------------------------------------------------

    def insert_upload(
        self,
        *,
        upload_id: uuid.UUID,
        owner_id: str,
        object_key: str,
        content_type: str,
        size_bytes: int,
        checksum_sha256: str,
        expires_in: timedelta,
    ) -> UploadRecord:
        statement = (
            insert(uploads)
            .values(
                id=upload_id,
                owner_id=owner_id,
                object_key=object_key,
                content_type=content_type,
                size_bytes=size_bytes,
                checksum_sha256=checksum_sha256,
                status=UploadStatus.PENDING,
                expires_at=func.now() + expires_in,
            )
            .returning(*uploads.c)
        )
        return _upload(self._conn.execute(statement).one())

    def upload(self, upload_id: uuid.UUID, *, for_update: bool = False) -> UploadRecord | None:
        statement = select(uploads).where(uploads.c.id == upload_id)
        if for_update:
            statement = statement.with_for_update()
        row = self._conn.execute(statement).one_or_none()
        return _upload(row) if row else None

    def settle_upload(
        self,
        upload_id: uuid.UUID,
        *,
        status: str,
        photo_id: uuid.UUID | None = None,
        reason_code: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """pending -> accepted | rejected; False when it was settled already."""
        statement = (
            update(uploads)
            .where(uploads.c.id == upload_id, uploads.c.status == UploadStatus.PENDING)
            .values(
                status=status,
                photo_id=photo_id,
                reason_code=reason_code,
                reason=reason,
                settled_at=func.now(),
            )
            .returning(uploads.c.id)
        )
        return self._conn.execute(statement).one_or_none() is not None

    def mark_upload_announced(self, upload_id: uuid.UUID) -> None:
        statement = update(uploads).where(uploads.c.id == upload_id)
        self._conn.execute(statement.values(announced_at=func.now()))

    def expire_pending_uploads(self, *, grace: timedelta, reason: str) -> list[str]:
        """Pending uploads whose PUT expired more than `grace` ago: rejected `expired`; their
        object keys (an object may be there: its ingest may have died in the DLQ)."""
        statement = (
            update(uploads)
            .where(
                uploads.c.status == UploadStatus.PENDING,
                uploads.c.expires_at < func.now() - grace,
            )
            .values(
                status=UploadStatus.REJECTED,
                reason_code="expired",
                reason=reason,
                settled_at=func.now(),
            )
            .returning(uploads.c.object_key)
        )
        return list(self._conn.execute(statement).scalars())

    def reject_pending_uploads(self, owner_id: str, *, reason_code: str, reason: str) -> int:
        statement = (
            update(uploads)
            .where(uploads.c.owner_id == owner_id, uploads.c.status == UploadStatus.PENDING)
            .values(
                status=UploadStatus.REJECTED,
                reason_code=reason_code,
                reason=reason,
                settled_at=func.now(),
            )
            .returning(uploads.c.id)
        )
        return len(self._conn.execute(statement).all())


def _gallery_entry(row: Row[Any]) -> GalleryEntry:
    return GalleryEntry(
        id=row.id,
        status=PhotoStatus(row.status),
        created_at=row.created_at,
        mime_type=row.mime_type,
        size_bytes=row.size_bytes,
        metadata=row.metadata_json or {},
        processed_key=row.processed_key,
        thumbnail_key=row.thumbnail_s3_key,
        selected_restore_id=row.selected_restore_id,
    )


def _upload(row: Row[Any]) -> UploadRecord:
    return UploadRecord(
        id=row.id,
        owner_id=row.owner_id,
        object_key=row.object_key,
        content_type=row.content_type,
        size_bytes=row.size_bytes,
        checksum_sha256=row.checksum_sha256,
        status=row.status,
        reason_code=row.reason_code,
        reason=row.reason,
        photo_id=row.photo_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        announced=row.announced_at is not None,
    )

"""Rows as the existing app writes them, and rows read back as the domain's typed values."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine

from photo_restore.attempts import Attempt
from photo_restore.photos import Photo
from photo_restore.repository import SqlRepository
from photo_restore.status import PhotoStatus
from photo_restore_tools.local.photos import StoredPhoto, add_photo


def insert_photo(
    engine: Engine,
    *,
    owner_id: str | None = None,
    status: str = "uploaded",
    original: bytes = b"not read by the API",
    mime_type: str = "image/jpeg",
    s3: Any = None,
    bucket: str | None = None,
    photo_id: uuid.UUID | None = None,
) -> StoredPhoto:
    """A photo of a fresh owner (tests isolate by data), with its S3 original when `s3` is given."""
    return add_photo(
        engine,
        owner_id=owner_id or f"user-{uuid.uuid4()}",
        data=original,
        mime_type=mime_type,
        status=PhotoStatus(status),
        s3=s3,
        bucket=bucket,
        photo_id=photo_id,
    )


def photo(engine: Engine, photo_id: uuid.UUID) -> Photo:
    with SqlRepository(engine).transaction() as tx:
        found = tx.photo(photo_id)
    assert found is not None, f"no photo {photo_id}"
    return found


def attempt(engine: Engine, attempt_id: uuid.UUID) -> Attempt:
    with SqlRepository(engine).transaction() as tx:
        found = tx.attempt(attempt_id)
    assert found is not None, f"no attempt {attempt_id}"
    return found


def attempts_of(engine: Engine, photo_id: uuid.UUID) -> list[Attempt]:
    """Newest first."""
    with SqlRepository(engine).transaction() as tx:
        return tx.attempts(photo_id)

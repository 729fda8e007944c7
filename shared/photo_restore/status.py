"""The photo status machine: the only module that changes `photos.status`.

Every change is one conditional `UPDATE ... WHERE status IN (<expected>) RETURNING`, so two
racing writers can never both win, and no caller reads a status and then writes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, case, func, update

from photo_restore.models import photos


class PhotoStatus(StrEnum):
    UPLOADED = "uploaded"
    PROCESSING = "processing"
    READY = "ready"
    ARCHIVED = "archived"
    DELETED = "deleted"


ALLOWED_TRANSITIONS: frozenset[tuple[PhotoStatus, PhotoStatus]] = frozenset(
    {
        (PhotoStatus.UPLOADED, PhotoStatus.PROCESSING),  # restore requested
        (PhotoStatus.PROCESSING, PhotoStatus.READY),  # restoration stored (or failed re-restore)
        (PhotoStatus.PROCESSING, PhotoStatus.UPLOADED),  # restoration failed: revert
        (PhotoStatus.READY, PhotoStatus.PROCESSING),  # another restore requested
        (PhotoStatus.READY, PhotoStatus.ARCHIVED),  # user archives
        (PhotoStatus.ARCHIVED, PhotoStatus.DELETED),  # user deletes
    }
)

# Statuses from which a restore may be requested, derived from the table above.
RESTORABLE_STATUSES: frozenset[PhotoStatus] = frozenset(
    source for source, target in ALLOWED_TRANSITIONS if target is PhotoStatus.PROCESSING
)


class TransitionNotAllowed(ValueError):
    """A programming error: code asked for a change the status table forbids."""


def is_transition_allowed(source: PhotoStatus, target: PhotoStatus) -> bool:
    return (source, target) in ALLOWED_TRANSITIONS


def _check(sources: Collection[PhotoStatus], targets: Collection[PhotoStatus]) -> None:
    for source in sources:
        for target in targets:
            if not is_transition_allowed(source, target):
                raise TransitionNotAllowed(f"photo status {source} -> {target} is not allowed")


def change_photo_status(
    conn: Connection,
    photo_id: uuid.UUID,
    *,
    sources: Collection[PhotoStatus],
    target: PhotoStatus,
    where: Sequence[ColumnElement[bool]] = (),
    values: Mapping[str, Any] | None = None,
) -> Row[Any] | None:
    """Move a photo from one of `sources` to `target`; None when no row matched.

    `where` adds conditions (ownership, in-flight attempt) to the same statement, and
    `values` sets other columns in the same write.
    """
    _check(sources, [target])
    statement = (
        update(photos)
        .where(photos.c.id == photo_id, photos.c.status.in_([s.value for s in sources]), *where)
        .values(status=target.value, updated_at=func.now(), **(values or {}))
        .returning(*photos.c)
    )
    return conn.execute(statement).one_or_none()


def revert_failed_restore(
    conn: Connection, photo_id: uuid.UUID, *, where: Sequence[ColumnElement[bool]] = ()
) -> Row[Any] | None:
    """`processing -> uploaded`, or `-> ready` when an earlier restoration is still on the photo.

    A failed re-restore must not hide the restoration the user already has.
    """
    _check([PhotoStatus.PROCESSING], [PhotoStatus.UPLOADED, PhotoStatus.READY])
    target = case(
        (photos.c.processed_key.is_(None), PhotoStatus.UPLOADED.value),
        else_=PhotoStatus.READY.value,
    )
    statement = (
        update(photos)
        .where(photos.c.id == photo_id, photos.c.status == PhotoStatus.PROCESSING.value, *where)
        .values(status=target, updated_at=func.now())
        .returning(*photos.c)
    )
    return conn.execute(statement).one_or_none()

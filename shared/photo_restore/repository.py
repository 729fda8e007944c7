"""SQL for photos, jobs and restore attempts; status changes go through `photo_restore.status`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Row,
    cast,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, distinct_on, insert

from photo_restore.models import jobs, photos, restore_attempts
from photo_restore.status import (
    RESTORABLE_STATUSES,
    PhotoStatus,
    change_photo_status,
    revert_failed_restore,
)

PENDING_S3_KEY = "pending"
# params key where the worker keeps the last transient error, for the DLQ handler's message.
LAST_TRANSIENT_ERROR = "last_transient_error"


# A job's attempts, newest first; the first is the one a `processing` photo waits for.
NEWEST_FIRST = (restore_attempts.c.created_at.desc(), restore_attempts.c.id.desc())


class AttemptOutcome(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def attempt_outcome(s3_key: str, params: Mapping[str, Any] | None) -> AttemptOutcome:
    """An attempt succeeded once its image is stored, failed once an error is recorded."""
    if s3_key != PENDING_S3_KEY:
        return AttemptOutcome.SUCCEEDED
    if params and params.get("error"):
        return AttemptOutcome.FAILED
    return AttemptOutcome.PENDING


def _newest_attempt_id_of(job_id: ColumnElement[uuid.UUID]) -> ColumnElement[uuid.UUID]:
    return (
        select(restore_attempts.c.id)
        .where(restore_attempts.c.job_id == job_id)
        .order_by(*NEWEST_FIRST)
        .limit(1)
        .scalar_subquery()
    )


def is_pending() -> ColumnElement[bool]:
    """SQL twin of `attempt_outcome(...) is PENDING`, for conditional writes."""
    return (restore_attempts.c.s3_key == PENDING_S3_KEY) & cast(restore_attempts.c.params, JSONB)[
        "error"
    ].is_(None)


def is_in_flight(attempt_id: uuid.UUID) -> ColumnElement[bool]:
    """The attempt is the one a `processing` photo waits for: its job's newest, still pending.

    Used inside status changes so that late, duplicate or redriven messages of older
    attempts can never settle a newer one.
    """
    newest_pending = (
        select(restore_attempts.c.id)
        .where(restore_attempts.c.id == attempt_id, is_pending())
        .exists()
    )
    return (_newest_attempt_id_of(photos.c.id) == attempt_id) & newest_pending


# --- reads ---------------------------------------------------------------------------------


def find_owned_photo(conn: Connection, photo_id: uuid.UUID, owner_id: str) -> Row[Any] | None:
    statement = select(photos).where(photos.c.id == photo_id, photos.c.owner_id == owner_id)
    return conn.execute(statement).one_or_none()


def find_photo(conn: Connection, photo_id: uuid.UUID) -> Row[Any] | None:
    return conn.execute(select(photos).where(photos.c.id == photo_id)).one_or_none()


def find_attempt(conn: Connection, attempt_id: uuid.UUID) -> Row[Any] | None:
    statement = select(restore_attempts).where(restore_attempts.c.id == attempt_id)
    return conn.execute(statement).one_or_none()


def newest_attempt(conn: Connection, job_id: uuid.UUID) -> Row[Any] | None:
    statement = (
        select(restore_attempts)
        .where(restore_attempts.c.job_id == job_id)
        .order_by(*NEWEST_FIRST)
        .limit(1)
    )
    return conn.execute(statement).one_or_none()


def list_attempts(conn: Connection, job_id: uuid.UUID) -> Sequence[Row[Any]]:
    statement = (
        select(restore_attempts).where(restore_attempts.c.job_id == job_id).order_by(*NEWEST_FIRST)
    )
    return conn.execute(statement).all()


def find_stuck_photo_ids(conn: Connection, claimed_before: datetime) -> Sequence[uuid.UUID]:
    statement = select(photos.c.id).where(
        photos.c.status == PhotoStatus.PROCESSING.value, photos.c.updated_at < claimed_before
    )
    return list(conn.execute(statement).scalars())


def find_failed_newest_attempts(
    conn: Connection,
    *,
    since: datetime,
    codes: Sequence[str] | None = None,
    photo_ids: Sequence[uuid.UUID] | None = None,
) -> Sequence[Row[Any]]:
    """Photos whose newest attempt failed since `since`, optionally narrowed by code or photo."""
    newest = (
        select(restore_attempts)
        .ext(distinct_on(restore_attempts.c.job_id))
        .order_by(restore_attempts.c.job_id, *NEWEST_FIRST)
        .subquery()
    )
    error = cast(newest.c.params, JSONB)["error"]
    statement = (
        select(newest.c.id, newest.c.job_id, photos.c.owner_id, error["code"].astext.label("code"))
        .join(photos, photos.c.id == newest.c.job_id)
        .where(error.is_not(None), newest.c.created_at >= since)
        .order_by(newest.c.created_at)
    )
    if codes:
        statement = statement.where(error["code"].astext.in_(list(codes)))
    if photo_ids:
        statement = statement.where(newest.c.job_id.in_(list(photo_ids)))
    return conn.execute(statement).all()


# --- writes --------------------------------------------------------------------------------


def claim_photo_for_restore(
    conn: Connection, photo_id: uuid.UUID, owner_id: str
) -> Row[Any] | None:
    """`uploaded|ready -> processing` for the owner's photo; None when it cannot be claimed."""
    return change_photo_status(
        conn,
        photo_id,
        sources=RESTORABLE_STATUSES,
        target=PhotoStatus.PROCESSING,
        where=[photos.c.owner_id == owner_id],
    )


def mark_attempt_started(
    conn: Connection, photo_id: uuid.UUID, attempt_id: uuid.UUID
) -> Row[Any] | None:
    """Check the attempt is in flight and restart the sweeper's clock; None when it is not.

    `updated_at` is the photo's heartbeat: the sweeper only settles photos idle for longer
    than the longest pipeline time, so work that was just (re)delivered is never swept.
    """
    statement = (
        update(photos)
        .where(
            photos.c.id == photo_id,
            photos.c.status == PhotoStatus.PROCESSING.value,
            is_in_flight(attempt_id),
        )
        .values(updated_at=func.now())
        .returning(*photos.c)
    )
    return conn.execute(statement).one_or_none()


def ensure_job(conn: Connection, job_id: uuid.UUID, email: str | None) -> None:
    conn.execute(insert(jobs).values(id=job_id, email=email).on_conflict_do_nothing())


def insert_attempt(
    conn: Connection,
    *,
    attempt_id: uuid.UUID,
    job_id: uuid.UUID,
    model: str,
    params: Mapping[str, Any],
) -> Row[Any]:
    statement = (
        restore_attempts.insert()
        .values(
            id=attempt_id,
            job_id=job_id,
            s3_key=PENDING_S3_KEY,
            model=model,
            params=dict(params),
            # clock_timestamp, not now(): attempts order by creation even inside one transaction.
            created_at=func.clock_timestamp(),
        )
        .returning(*restore_attempts.c)
    )
    return conn.execute(statement).one()


def merge_attempt_params(
    conn: Connection,
    attempt_id: uuid.UUID,
    patch: Mapping[str, Any],
    *,
    where: Sequence[ColumnElement[bool]] = (),
    s3_key: str | None = None,
    drop_keys: Sequence[str] = (),
) -> bool:
    """Merge `patch` into `params` (top-level keys) in one statement; False when no row matched."""
    current: ColumnElement[Any] = cast(restore_attempts.c.params, JSONB)
    for key in drop_keys:
        current = current.op("-")(literal(key))
    merged = cast(current.op("||")(literal(dict(patch), JSONB)), JSON)
    values: dict[str, Any] = {"params": merged}
    if s3_key is not None:
        values["s3_key"] = s3_key
    statement = (
        update(restore_attempts)
        .where(restore_attempts.c.id == attempt_id, *where)
        .values(**values)
        .returning(restore_attempts.c.id)
    )
    return conn.execute(statement).one_or_none() is not None


def complete_attempt(
    conn: Connection,
    *,
    photo_id: uuid.UUID,
    attempt_id: uuid.UUID,
    s3_key: str,
    params: Mapping[str, Any],
) -> bool:
    """Settle a successful attempt in the caller's transaction; False when it is not in flight."""
    photo = change_photo_status(
        conn,
        photo_id,
        sources=[PhotoStatus.PROCESSING],
        target=PhotoStatus.READY,
        where=[is_in_flight(attempt_id)],
        values={"processed_key": s3_key},
    )
    if photo is None:
        return False
    # A transient error that a later delivery got past is no longer news.
    merge_attempt_params(conn, attempt_id, params, s3_key=s3_key, drop_keys=[LAST_TRANSIENT_ERROR])
    conn.execute(update(jobs).where(jobs.c.id == photo_id).values(selected_restore_id=attempt_id))
    return True


def fail_attempt(
    conn: Connection,
    *,
    photo_id: uuid.UUID,
    attempt_id: uuid.UUID,
    error: Mapping[str, Any],
    where: Sequence[ColumnElement[bool]] = (),
) -> bool:
    """Revert the photo and record `params.error`, only while the attempt is in flight."""
    photo = revert_failed_restore(conn, photo_id, where=[is_in_flight(attempt_id), *where])
    if photo is None:
        return False
    merge_attempt_params(conn, attempt_id, {"error": dict(error)})
    return True


def idle_since_before(cutoff: datetime) -> ColumnElement[bool]:
    """The photo's heartbeat is older than `cutoff`: re-checked inside the sweeper's revert."""
    return photos.c.updated_at < cutoff


def revert_photo_without_attempt(conn: Connection, photo_id: uuid.UUID, cutoff: datetime) -> bool:
    """A `processing` photo with no attempt at all (another writer's doing): settle it too."""
    newest = _newest_attempt_id_of(photos.c.id)
    row = revert_failed_restore(conn, photo_id, where=[idle_since_before(cutoff), newest.is_(None)])
    return row is not None


def select_restore(
    conn: Connection, *, photo_id: uuid.UUID, attempt_id: uuid.UUID, s3_key: str
) -> None:
    # Photos before jobs, the order complete_attempt locks them in: no deadlock between them.
    conn.execute(update(photos).where(photos.c.id == photo_id).values(processed_key=s3_key))
    conn.execute(update(jobs).where(jobs.c.id == photo_id).values(selected_restore_id=attempt_id))

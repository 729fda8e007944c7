"""The database boundary: one object owns transactions and maps database errors once, and its
methods take and return domain values (ids, times, `Photo`, `Attempt`). No SQL leaves this module.

Every status change is one conditional `UPDATE ... WHERE <expected state> RETURNING`, checked
against the tables in `status` and `attempts`, so no caller reads a state and then writes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    Engine,
    Executable,
    Float,
    Integer,
    Result,
    Row,
    String,
    Uuid,
    case,
    cast,
    delete,
    extract,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, distinct_on, insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from photo_restore.attempts import (
    DELIVERIES,
    ENQUEUED_AT,
    ERROR,
    EVENT_PUBLISHED_AT,
    FINISHED_AT,
    IDEMPOTENCY_KEY,
    LAST_TRANSIENT_ERROR,
    PENDING_S3_KEY,
    PHASE,
    PHASE_STARTED_AT,
    PROVIDER_CALLS,
    STARTED_AT,
    THUMBNAIL_KEY,
    WAITING_FOR_CAPACITY,
    Attempt,
    AttemptState,
    Phase,
    replaces_selection,
)
from photo_restore.errors import NOT_USER_CAUSED_CODES, DependencyUnavailable
from photo_restore.models import (
    INFERENCE_RING_SLOTS,
    inference_slot,
    inference_times,
    jobs,
    owner_requests,
    photos,
    provider_pacing,
    restore_attempts,
    unannounced_events,
)
from photo_restore.photos import Photo
from photo_restore.status import (
    RESTORABLE_STATUSES,
    PhotoStatus,
    check_transitions,
    status_after_failed_restore,
)

# How long an owner's requests stay in `owner_requests`: the longest window read there (the
# quota's and the Idempotency-Key's, 24 h each) with a margin.
OWNER_REQUESTS_KEPT = timedelta(days=2)


@dataclass(frozen=True)
class FailedRestore:
    """A photo whose newest attempt failed: what an operator's re-run needs."""

    photo_id: uuid.UUID
    attempt_id: uuid.UUID
    owner_id: str
    code: str | None


@dataclass(frozen=True)
class QuotaUsage:
    """A user's restore requests that count in the quota's window."""

    counted: int
    seconds_until_oldest_leaves: int  # 0 when none is counted


@dataclass(frozen=True)
class ProviderSlot:
    """A reserved provider call: when it may start, and the database's clock when reserved."""

    starts_at: datetime
    reserved_at: datetime

    @property
    def wait_seconds(self) -> float:
        return max(0.0, (self.starts_at - self.reserved_at).total_seconds())


@dataclass(frozen=True)
class AttemptCursor:
    """Where a page of a photo's attempts (newest first) ended."""

    created_at: datetime
    attempt_id: uuid.UUID


class Transaction(Protocol):
    """One database transaction's operations; None/False means "no row was in that state"."""

    def photo(self, photo_id: uuid.UUID) -> Photo | None: ...
    def owned_photo(self, photo_id: uuid.UUID, owner_id: str) -> Photo | None: ...
    def attempt(self, attempt_id: uuid.UUID) -> Attempt | None: ...
    def newest_attempt(self, photo_id: uuid.UUID) -> Attempt | None: ...
    def attempts(self, photo_id: uuid.UUID) -> list[Attempt]: ...
    def attempts_page(
        self, photo_id: uuid.UUID, *, limit: int, after: AttemptCursor | None = None
    ) -> list[Attempt]: ...
    def selected_restore_id(self, photo_id: uuid.UUID) -> uuid.UUID | None: ...
    def keyed_attempt(self, owner_id: str, key: str, *, window: timedelta) -> Attempt | None: ...
    def quota_usage(self, owner_id: str, *, window: timedelta) -> QuotaUsage: ...
    def inference_seconds_median(self, *, sample: int) -> float | None: ...
    def unannounced_attempts(
        self, *, finished_before: timedelta, window: timedelta
    ) -> list[Attempt]: ...
    def idle_processing_photo_ids(self, idle_before: datetime) -> list[uuid.UUID]: ...
    def failed_newest_attempts(
        self,
        *,
        since: datetime,
        codes: Collection[str] | None = None,
        photo_ids: Collection[uuid.UUID] | None = None,
    ) -> list[FailedRestore]: ...

    def lock_owner(self, owner_id: str) -> None: ...
    def reserve_provider_slot(self, key: str, interval: timedelta) -> ProviderSlot: ...
    def claim_photo(self, photo_id: uuid.UUID, owner_id: str) -> Photo | None: ...
    def ensure_job(self, photo_id: uuid.UUID, email: str | None) -> None: ...
    def insert_attempt(
        self, *, attempt_id: uuid.UUID, photo_id: uuid.UUID, model: str, params: Mapping[str, Any]
    ) -> Attempt: ...
    def start_attempt(
        self, photo_id: uuid.UUID, attempt_id: uuid.UUID, *, count_delivery: bool = True
    ) -> Photo | None: ...
    def complete_attempt(
        self,
        *,
        photo_id: uuid.UUID,
        attempt_id: uuid.UUID,
        s3_key: str,
        params: Mapping[str, Any],
    ) -> bool: ...
    def fail_attempt(
        self,
        *,
        photo_id: uuid.UUID,
        attempt_id: uuid.UUID,
        error: Mapping[str, Any],
        idle_before: datetime | None = None,
    ) -> bool: ...
    def note_transient_error(self, attempt_id: uuid.UUID, record: Mapping[str, Any]) -> bool: ...
    def wait_for_capacity(self, attempt_id: uuid.UUID, hold: Mapping[str, Any]) -> bool: ...
    def record_provider_calls(
        self, attempt_id: uuid.UUID, calls: int, extra: Mapping[str, Any] | None = None
    ) -> bool: ...
    def photos_refused_alike(
        self, refusal: str, *, since: datetime, other_than: uuid.UUID
    ) -> int: ...
    def set_phase(
        self, attempt_id: uuid.UUID, phase: Phase, extra: Mapping[str, Any] | None = None
    ) -> bool: ...
    def cancel_in_flight(
        self, photo_id: uuid.UUID, owner_id: str, error: Mapping[str, Any]
    ) -> Attempt | None: ...
    def mark_event_published(self, attempt_id: uuid.UUID) -> None: ...
    def mark_enqueued(self, attempt_id: uuid.UUID) -> None: ...
    def revert_photo_without_attempt(self, photo_id: uuid.UUID, idle_before: datetime) -> bool: ...
    def select_restore(self, attempt: Attempt) -> None: ...


class Repository(Protocol):
    def transaction(self) -> AbstractContextManager[Transaction]:
        """A transaction committed on exit, rolled back on any exception. Database failures
        raise DependencyUnavailable (retryable); domain errors raised inside pass unchanged."""
        ...


class SqlRepository:
    """The Postgres implementation, on a SQLAlchemy engine (Core, pg8000), or on a function that
    gives the engine to use now (wiring's, which follows a rotated database URL)."""

    def __init__(self, engine: Engine | Callable[[], Engine]) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine if isinstance(self._engine, Engine) else self._engine()

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        try:
            connection = _TransactionConnection(self.engine)
            try:
                yield SqlTransaction(connection)
                connection.commit()
            finally:
                connection.close()  # rolls back unless committed
        except SQLAlchemyError as error:
            raise DependencyUnavailable("the database is unavailable; try again") from error

    def create_schema(self) -> None:
        """The existing app's tables and indexes where missing (empty databases, the local
        stack and tests), and this service's own tables (pacing, and the aggregates of
        `models`): nothing existing is ever altered."""
        from photo_restore.models import app_metadata, service_metadata

        try:
            app_metadata.create_all(self.engine)
            service_metadata.create_all(self.engine)
        except SQLAlchemyError as error:
            raise DependencyUnavailable("the database is unavailable; try again") from error

    def backfill_service_tables(self, *, republish_window: timedelta) -> dict[str, int]:
        """Fill this service's aggregate tables from the rows they summarise, for a database
        whose attempts predate them; idempotent, rows per table. Each is one scan of
        `restore_attempts` (no index serves these reads): `photo-restore db migrate` runs it
        once, never a request."""
        now = func.clock_timestamp()
        params = cast(restore_attempts.c.params, JSONB)
        seconds = params["inference_time_seconds"]
        newest = (
            select(
                restore_attempts.c.id,
                restore_attempts.c.created_at,
                seconds.astext.cast(Float).label("seconds"),
            )
            .where(
                restore_attempts.c.s3_key != PENDING_S3_KEY,
                func.jsonb_typeof(seconds) == "number",
            )
            .order_by(*NEWEST_FIRST)
            .limit(INFERENCE_RING_SLOTS)
            .subquery()
        )
        # Slots 0.. from the oldest, and the sequence set to overwrite the oldest next.
        slot = func.row_number().over(order_by=(newest.c.created_at, newest.c.id)) - 1
        ring = insert(inference_times).from_select(
            ["slot", "attempt_id", "seconds", "recorded_at"],
            select(slot, newest.c.id, newest.c.seconds, newest.c.created_at),
        )
        finished = params[FINISHED_AT].astext.cast(DateTime(timezone=True))
        outbox = insert(unannounced_events).from_select(
            ["attempt_id", "settled_at"],
            select(restore_attempts.c.id, finished).where(
                restore_attempts.c.created_at > now - republish_window,
                params.has_key(FINISHED_AT),
                ~params.has_key(EVENT_PUBLISHED_AT),
            ),
        )
        code = params[ERROR]["code"].astext
        requests = insert(owner_requests).from_select(
            ["attempt_id", "owner_id", "idempotency_key", "created_at", "counted"],
            select(
                restore_attempts.c.id,
                photos.c.owner_id,
                params[IDEMPOTENCY_KEY].astext,
                restore_attempts.c.created_at,
                func.coalesce(code, "").not_in(sorted(NOT_USER_CAUSED_CODES)),
            )
            .join(photos, photos.c.id == restore_attempts.c.job_id)
            .where(restore_attempts.c.created_at > now - OWNER_REQUESTS_KEPT),
        )
        filled: dict[str, int] = {}
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(func.count()).select_from(inference_times)).scalar():
                    filled[inference_times.name] = 0  # the ring is written already: kept
                else:
                    filled[inference_times.name] = conn.execute(ring).rowcount
                    if filled[inference_times.name]:
                        next_slot = literal(filled[inference_times.name])
                        conn.execute(select(func.setval(inference_slot.name, next_slot, False)))
                for table, statement in ((unannounced_events, outbox), (owner_requests, requests)):
                    filled[table.name] = conn.execute(statement.on_conflict_do_nothing()).rowcount
        except SQLAlchemyError as error:
            raise DependencyUnavailable("the database is unavailable; try again") from error
        return filled


class _TransactionConnection:
    """One transaction's connection, found dead at most once.

    A pooled connection may have been closed while the Lambda container was frozen (an idle
    timeout, a pooler restart, a failover). Instead of a ping before every transaction, the
    first statement finds out: the transaction had done nothing yet, so that statement is run
    again, once, on a fresh connection. A connection lost after that is a 503 (its
    transaction's outcome is the database's to say), as is a second loss.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn = engine.connect()
        self._conn.begin()
        self._executed = False

    def execute(self, statement: Executable) -> Result[Any]:
        if self._executed:
            return self._conn.execute(statement)
        self._executed = True
        try:
            return self._conn.execute(statement)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            self._conn.close()
            self._conn = self._engine.connect()
            self._conn.begin()
            return self._conn.execute(statement)

    def commit(self) -> None:
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()


# A photo's attempts, newest first; the first is the one a `processing` photo waits for.
NEWEST_FIRST = (restore_attempts.c.created_at.desc(), restore_attempts.c.id.desc())


def _newest_attempt_id_of(photo_id: ColumnElement[uuid.UUID]) -> ColumnElement[uuid.UUID]:
    return (
        select(restore_attempts.c.id)
        .where(restore_attempts.c.job_id == photo_id)
        .order_by(*NEWEST_FIRST)
        .limit(1)
        .scalar_subquery()
    )


def _is_pending() -> ColumnElement[bool]:
    """SQL twin of `attempt_state(...) is PENDING` (tests/integration ties the two)."""
    error = cast(restore_attempts.c.params, JSONB)[ERROR]
    return (restore_attempts.c.s3_key == PENDING_S3_KEY) & error.is_(None)


def _is_in_flight(attempt_id: uuid.UUID) -> ColumnElement[bool]:
    """The attempt is the one a `processing` photo waits for: its newest, still pending.

    Used inside status changes so that late, duplicate or redriven messages of older
    attempts can never settle a newer one.
    """
    newest_pending = (
        select(restore_attempts.c.id).where(restore_attempts.c.id == attempt_id, _is_pending())
    ).exists()
    return (_newest_attempt_id_of(photos.c.id) == attempt_id) & newest_pending


def _check_kept(window: timedelta) -> None:
    if window > OWNER_REQUESTS_KEPT:
        raise ValueError(f"owner_requests keeps {OWNER_REQUESTS_KEPT}, not {window}")


def _photo(row: Row[Any]) -> Photo:
    return Photo(
        id=row.id,
        owner_id=row.owner_id,
        original_key=row.original_key,
        processed_key=row.processed_key,
        status=PhotoStatus(row.status),
        mime_type=row.mime_type,
        size_bytes=row.size_bytes,
        updated_at=row.updated_at,
    )


def _attempt(row: Row[Any]) -> Attempt:
    return Attempt(
        id=row.id,
        photo_id=row.job_id,
        s3_key=row.s3_key,
        model=row.model,
        params=row.params or {},
        created_at=row.created_at,
    )


class SqlTransaction:
    def __init__(self, conn: _TransactionConnection) -> None:
        self._conn = conn

    # --- reads -----------------------------------------------------------------------------

    def photo(self, photo_id: uuid.UUID) -> Photo | None:
        row = self._conn.execute(select(photos).where(photos.c.id == photo_id)).one_or_none()
        return _photo(row) if row else None

    def owned_photo(self, photo_id: uuid.UUID, owner_id: str) -> Photo | None:
        statement = select(photos).where(photos.c.id == photo_id, photos.c.owner_id == owner_id)
        row = self._conn.execute(statement).one_or_none()
        return _photo(row) if row else None

    def attempt(self, attempt_id: uuid.UUID) -> Attempt | None:
        statement = select(restore_attempts).where(restore_attempts.c.id == attempt_id)
        row = self._conn.execute(statement).one_or_none()
        return _attempt(row) if row else None

    def newest_attempt(self, photo_id: uuid.UUID) -> Attempt | None:
        statement = (
            select(restore_attempts)
            .where(restore_attempts.c.job_id == photo_id)
            .order_by(*NEWEST_FIRST)
            .limit(1)
        )
        row = self._conn.execute(statement).one_or_none()
        return _attempt(row) if row else None

    def attempts(self, photo_id: uuid.UUID) -> list[Attempt]:
        statement = (
            select(restore_attempts)
            .where(restore_attempts.c.job_id == photo_id)
            .order_by(*NEWEST_FIRST)
        )
        return [_attempt(row) for row in self._conn.execute(statement)]

    def attempts_page(
        self, photo_id: uuid.UUID, *, limit: int, after: AttemptCursor | None = None
    ) -> list[Attempt]:
        """Up to `limit` attempts, newest first, after `after` (keyset: stable under inserts)."""
        statement = select(restore_attempts).where(restore_attempts.c.job_id == photo_id)
        if after is not None:
            position = tuple_(restore_attempts.c.created_at, restore_attempts.c.id)
            statement = statement.where(position < tuple_(after.created_at, after.attempt_id))
        statement = statement.order_by(*NEWEST_FIRST).limit(limit)
        return [_attempt(row) for row in self._conn.execute(statement)]

    def selected_restore_id(self, photo_id: uuid.UUID) -> uuid.UUID | None:
        statement = select(jobs.c.selected_restore_id).where(jobs.c.id == photo_id)
        selected: uuid.UUID | None = self._conn.execute(statement).scalar_one_or_none()
        return selected

    def keyed_attempt(self, owner_id: str, key: str, *, window: timedelta) -> Attempt | None:
        """The newest attempt of the owner's photos made under this Idempotency-Key within
        `window`. The key is recorded with the owner's request (`owner_requests`), in the same
        transaction as the claim it answers for."""
        _check_kept(window)
        statement = (
            select(restore_attempts)
            .join(owner_requests, owner_requests.c.attempt_id == restore_attempts.c.id)
            .where(
                owner_requests.c.owner_id == owner_id,
                owner_requests.c.created_at > func.clock_timestamp() - window,
                owner_requests.c.idempotency_key == key,
            )
            .order_by(owner_requests.c.created_at.desc(), owner_requests.c.attempt_id.desc())
            .limit(1)
        )
        row = self._conn.execute(statement).one_or_none()
        return _attempt(row) if row else None

    def quota_usage(self, owner_id: str, *, window: timedelta) -> QuotaUsage:
        """The owner's attempts within `window` that count: all but those that failed for a
        provider or system reason (errors.NOT_USER_CAUSED_CODES): the owner's requests of the
        window in `owner_requests` still `counted`."""
        _check_kept(window)
        oldest = func.min(owner_requests.c.created_at)
        # The clock now, not the transaction's start: it may have waited on the owner's lock
        # while the attempts it counts were created.
        now = func.clock_timestamp()
        statement = (
            select(
                func.count().label("counted"),
                extract("epoch", oldest + window - now).label("seconds_left"),
            )
            .select_from(owner_requests)
            .where(
                owner_requests.c.owner_id == owner_id,
                owner_requests.c.created_at > now - window,
                owner_requests.c.counted,
            )
        )
        row = self._conn.execute(statement).one()
        left = row.seconds_left
        return QuotaUsage(row.counted, max(0, int(-(-float(left) // 1))) if left else 0)

    def inference_seconds_median(self, *, sample: int) -> float | None:
        """The median `inference_time_seconds` of the newest `sample` succeeded attempts (at
        most INFERENCE_RING_SLOTS: the ring `complete_attempt` writes keeps no more)."""
        recent = (
            select(inference_times.c.seconds)
            .order_by(inference_times.c.recorded_at.desc())
            .limit(sample)
            .subquery()
        )
        statement = select(func.percentile_cont(0.5).within_group(recent.c.seconds))
        median = self._conn.execute(statement).scalar_one_or_none()
        return float(median) if median is not None else None

    def unannounced_attempts(
        self, *, finished_before: timedelta, window: timedelta
    ) -> list[Attempt]:
        """Attempts settled within `window` (and longer than `finished_before` ago) whose final
        event was never published: the publish after their commit failed. They are found
        through the outbox `unannounced_events` (whose rows older than `window` are dropped
        here: they are past republishing), the conditions checked on the attempts themselves."""
        outbox = unannounced_events
        self._conn.execute(delete(outbox).where(outbox.c.settled_at < func.now() - window))
        params = cast(restore_attempts.c.params, JSONB)
        finished = params[FINISHED_AT].astext.cast(DateTime(timezone=True))
        statement = (
            select(restore_attempts)
            .join(outbox, outbox.c.attempt_id == restore_attempts.c.id)
            .where(
                restore_attempts.c.created_at > func.now() - window,
                params.has_key(FINISHED_AT),
                ~params.has_key(EVENT_PUBLISHED_AT),
                finished < func.now() - finished_before,
            )
            .order_by(restore_attempts.c.created_at)
        )
        return [_attempt(row) for row in self._conn.execute(statement)]

    def idle_processing_photo_ids(self, idle_before: datetime) -> list[uuid.UUID]:
        statement = select(photos.c.id).where(
            photos.c.status == PhotoStatus.PROCESSING.value, photos.c.updated_at < idle_before
        )
        return list(self._conn.execute(statement).scalars())

    def failed_newest_attempts(
        self,
        *,
        since: datetime,
        codes: Collection[str] | None = None,
        photo_ids: Collection[uuid.UUID] | None = None,
    ) -> list[FailedRestore]:
        """Photos whose newest attempt failed since `since`, optionally by code or photo.

        Only attempts since `since` are sorted: a photo's newest attempt is among them exactly
        when it was made since then (an operator's command: still one scan of the table)."""
        newest = (
            select(restore_attempts)
            .where(restore_attempts.c.created_at >= since)
            .ext(distinct_on(restore_attempts.c.job_id))
            .order_by(restore_attempts.c.job_id, *NEWEST_FIRST)
            .subquery()
        )
        error = cast(newest.c.params, JSONB)[ERROR]
        statement = (
            select(
                newest.c.id, newest.c.job_id, photos.c.owner_id, error["code"].astext.label("code")
            )
            .join(photos, photos.c.id == newest.c.job_id)
            .where(error.is_not(None), newest.c.created_at >= since)
            .order_by(newest.c.created_at)
        )
        if codes:
            statement = statement.where(error["code"].astext.in_(list(codes)))
        if photo_ids:
            statement = statement.where(newest.c.job_id.in_(list(photo_ids)))
        return [
            FailedRestore(photo_id=r.job_id, attempt_id=r.id, owner_id=r.owner_id, code=r.code)
            for r in self._conn.execute(statement)
        ]

    # --- photo status ----------------------------------------------------------------------

    def change_photo_status(
        self,
        photo_id: uuid.UUID,
        *,
        sources: Collection[PhotoStatus],
        target: PhotoStatus,
        conditions: Sequence[ColumnElement[bool]] = (),
        values: Mapping[str, Any] | None = None,
    ) -> Photo | None:
        """Move a photo from one of `sources` to `target` (the table must allow each pair);
        None when no row matched. `conditions` and `values` stay inside this module."""
        check_transitions(sources, [target])
        statement = (
            update(photos)
            .where(
                photos.c.id == photo_id,
                photos.c.status.in_([s.value for s in sources]),
                *conditions,
            )
            .values(status=target.value, updated_at=func.now(), **(values or {}))
            .returning(*photos.c)
        )
        row = self._conn.execute(statement).one_or_none()
        return _photo(row) if row else None

    def revert_failed_restore(
        self, photo_id: uuid.UUID, *, conditions: Sequence[ColumnElement[bool]] = ()
    ) -> Photo | None:
        """`processing -> uploaded`, or `-> ready` when it keeps an earlier restoration."""
        target = case(
            (
                photos.c.processed_key.is_(None),
                status_after_failed_restore(has_restoration=False).value,
            ),
            else_=status_after_failed_restore(has_restoration=True).value,
        )
        statement = (
            update(photos)
            .where(
                photos.c.id == photo_id,
                photos.c.status == PhotoStatus.PROCESSING.value,
                *conditions,
            )
            .values(status=target, updated_at=func.now())
            .returning(*photos.c)
        )
        row = self._conn.execute(statement).one_or_none()
        return _photo(row) if row else None

    def lock_owner(self, owner_id: str) -> None:
        """Serialise this owner's restore requests until the transaction ends (quota and
        idempotency checks then see each other's commits). Transaction-scoped, so it holds
        through a transaction-mode pooler, and other users never wait."""
        key = func.hashtextextended(literal(owner_id), literal(0))
        self._conn.execute(select(func.pg_advisory_xact_lock(key)))

    def reserve_provider_slot(self, key: str, interval: timedelta) -> ProviderSlot:
        """The next free provider slot of `key`, reserved: one statement, so concurrent
        workers queue on the row, each leaving the next `interval` later (a shared token
        bucket of one token). Its own transaction, committed at once by the caller."""
        now = func.clock_timestamp()
        table = provider_pacing
        first = insert(table).values(key=key, next_free_at=now + interval)
        statement = first.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={"next_free_at": func.greatest(table.c.next_free_at, now) + interval},
        ).returning((table.c.next_free_at - interval).label("starts_at"), now.label("now"))
        row = self._conn.execute(statement).one()
        return ProviderSlot(starts_at=row.starts_at, reserved_at=row.now)

    def claim_photo(self, photo_id: uuid.UUID, owner_id: str) -> Photo | None:
        """`uploaded|ready -> processing` for the owner's photo; None when it cannot be claimed."""
        return self.change_photo_status(
            photo_id,
            sources=RESTORABLE_STATUSES,
            target=PhotoStatus.PROCESSING,
            conditions=[photos.c.owner_id == owner_id],
        )

    # --- attempts --------------------------------------------------------------------------

    def ensure_job(self, photo_id: uuid.UUID, email: str | None) -> None:
        statement = insert(jobs).values(id=photo_id, email=email).on_conflict_do_nothing()
        self._conn.execute(statement)

    def insert_attempt(
        self, *, attempt_id: uuid.UUID, photo_id: uuid.UUID, model: str, params: Mapping[str, Any]
    ) -> Attempt:
        statement = (
            restore_attempts.insert()
            .values(
                id=attempt_id,
                job_id=photo_id,
                s3_key=PENDING_S3_KEY,
                model=model,
                params=dict(params),
                # clock_timestamp, not now(): attempts order by creation even in one transaction.
                created_at=func.clock_timestamp(),
            )
            .returning(*restore_attempts.c)
        )
        attempt = _attempt(self._conn.execute(statement).one())
        self._record_owner_request(attempt)
        return attempt

    def _record_owner_request(self, attempt: Attempt) -> None:
        """The attempt under its photo's owner (and Idempotency-Key) in `owner_requests`, and
        that owner's requests older than OWNER_REQUESTS_KEPT dropped (the same index serves)."""
        key = attempt.params.get(IDEMPOTENCY_KEY)
        row = select(
            cast(literal(attempt.id), Uuid),
            photos.c.owner_id,
            cast(literal(key if isinstance(key, str) else None), String),
            cast(literal(attempt.created_at), DateTime(timezone=True)),
        ).where(photos.c.id == attempt.photo_id)
        columns = ["attempt_id", "owner_id", "idempotency_key", "created_at"]
        recorded = insert(owner_requests).from_select(columns, row)
        owner = self._conn.execute(recorded.returning(owner_requests.c.owner_id)).scalar()
        if owner is None:
            return  # no such photo: another writer's attempt, nobody's request
        self._conn.execute(
            delete(owner_requests).where(
                owner_requests.c.owner_id == owner,
                owner_requests.c.created_at < func.clock_timestamp() - OWNER_REQUESTS_KEPT,
            )
        )

    def start_attempt(
        self, photo_id: uuid.UUID, attempt_id: uuid.UUID, *, count_delivery: bool = True
    ) -> Photo | None:
        """Check the attempt is in flight, restart the sweeper's clock and count the delivery
        (not a held one's, which only keeps its work alive); None when it is not in flight.

        `updated_at` is the photo's heartbeat: the sweeper only settles photos idle for longer
        than any delivery can take, so work that was just (re)delivered is never swept.
        """
        statement = (
            update(photos)
            .where(
                photos.c.id == photo_id,
                photos.c.status == PhotoStatus.PROCESSING.value,
                _is_in_flight(attempt_id),
            )
            .values(updated_at=func.now())
            .returning(*photos.c)
        )
        row = self._conn.execute(statement).one_or_none()
        if row is None or not count_delivery:
            return _photo(row) if row else None
        params = cast(restore_attempts.c.params, JSONB)
        counted = func.coalesce(params[DELIVERIES].astext.cast(Integer), 0) + 1
        now = func.to_jsonb(func.clock_timestamp())
        started = func.jsonb_build_object(
            DELIVERIES,
            counted,
            PHASE,
            Phase.PREPROCESSING.value,
            PHASE_STARTED_AT,
            now,
            STARTED_AT,
            func.coalesce(params[STARTED_AT], now),  # the first delivery's, kept
        )
        # A hold that this delivery got past is over.
        unheld = params.op("-")(literal(WAITING_FOR_CAPACITY))
        self._conn.execute(
            update(restore_attempts)
            .where(restore_attempts.c.id == attempt_id)
            .values(params=cast(unheld.op("||")(started), JSON))
        )
        return _photo(row)

    def complete_attempt(
        self,
        *,
        photo_id: uuid.UUID,
        attempt_id: uuid.UUID,
        s3_key: str,
        params: Mapping[str, Any],
    ) -> bool:
        """pending -> succeeded and the photo ready with it selected (unless it drifted from
        its photo and a faithful one is selected); False when not in flight."""
        selects = replaces_selection(params, lambda: self._selected_attempt(photo_id))
        photo = self.change_photo_status(
            photo_id,
            sources=[PhotoStatus.PROCESSING],
            target=PhotoStatus.READY,
            conditions=[_is_in_flight(attempt_id)],
            values={"processed_key": s3_key} if selects else {},
        )
        if photo is None:
            return False
        # A transient error or a hold that a later delivery got past is no longer news.
        self._merge_params(
            attempt_id,
            params,
            s3_key=s3_key,
            drop_keys=[LAST_TRANSIENT_ERROR, WAITING_FOR_CAPACITY],
            stamps=[FINISHED_AT],
        )
        if selects:
            self._select(photo_id, attempt_id, params.get(THUMBNAIL_KEY))
        self._record_inference_time(attempt_id, params.get("inference_time_seconds"))
        return True

    def _record_inference_time(self, attempt_id: uuid.UUID, seconds: object) -> None:
        """Into the ring the estimate's median reads: the next slot, overwriting its oldest."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            return
        statement = insert(inference_times).values(
            slot=inference_slot.next_value() % INFERENCE_RING_SLOTS,
            attempt_id=attempt_id,
            seconds=float(seconds),
            recorded_at=func.clock_timestamp(),
        )
        replaced = {
            name: statement.excluded[name] for name in ("attempt_id", "seconds", "recorded_at")
        }
        self._conn.execute(
            statement.on_conflict_do_update(index_elements=[inference_times.c.slot], set_=replaced)
        )

    def fail_attempt(
        self,
        *,
        photo_id: uuid.UUID,
        attempt_id: uuid.UUID,
        error: Mapping[str, Any],
        idle_before: datetime | None = None,
    ) -> bool:
        """pending -> failed and the photo reverted, only while the attempt is in flight (and,
        with `idle_before`, only if the photo's heartbeat is older: re-checked in the write)."""
        conditions = [_is_in_flight(attempt_id)]
        if idle_before is not None:
            conditions.append(photos.c.updated_at < idle_before)
        if self.revert_failed_restore(photo_id, conditions=conditions) is None:
            return False
        self._merge_params(attempt_id, {ERROR: dict(error)}, stamps=[FINISHED_AT])
        return True

    def cancel_in_flight(
        self, photo_id: uuid.UUID, owner_id: str, error: Mapping[str, Any]
    ) -> Attempt | None:
        """The owner's in-flight attempt of the photo ends with `error` (canceled) and the photo
        goes back to what it was before the claim; None when nothing is in flight.

        The photo row is updated first, as the worker's commit does: the two serialise on it,
        and whichever comes second finds the attempt no longer in flight."""
        newest = self.newest_attempt(photo_id)
        if newest is None or newest.state is not AttemptState.PENDING:
            return None
        conditions = [photos.c.owner_id == owner_id, _is_in_flight(newest.id)]
        if self.revert_failed_restore(photo_id, conditions=conditions) is None:
            return None
        self._merge_params(newest.id, {ERROR: dict(error)}, stamps=[FINISHED_AT])
        return self.attempt(newest.id)

    def set_phase(
        self, attempt_id: uuid.UUID, phase: Phase, extra: Mapping[str, Any] | None = None
    ) -> bool:
        """Record where a pending attempt is (and `extra` params); False once it is settled,
        canceled included: the worker stops there."""
        patch = {PHASE: phase.value, **(extra or {})}
        return self._merge_params(
            attempt_id, patch, conditions=[_is_pending()], stamps=[PHASE_STARTED_AT]
        )

    def mark_event_published(self, attempt_id: uuid.UUID) -> None:
        self._merge_params(attempt_id, {}, stamps=[EVENT_PUBLISHED_AT])

    def mark_enqueued(self, attempt_id: uuid.UUID) -> None:
        self._merge_params(attempt_id, {}, stamps=[ENQUEUED_AT])

    def note_transient_error(self, attempt_id: uuid.UUID, record: Mapping[str, Any]) -> bool:
        """Keep the last transient error on a pending attempt; False when it is settled."""
        return self._merge_params(
            attempt_id, {LAST_TRANSIENT_ERROR: dict(record)}, conditions=[_is_pending()]
        )

    def wait_for_capacity(self, attempt_id: uuid.UUID, hold: Mapping[str, Any]) -> bool:
        """Record the daily cap holding a pending attempt; False when it is settled."""
        return self._merge_params(
            attempt_id, {WAITING_FOR_CAPACITY: dict(hold)}, conditions=[_is_pending()]
        )

    def record_provider_calls(
        self, attempt_id: uuid.UUID, calls: int, extra: Mapping[str, Any] | None = None
    ) -> bool:
        """Add `calls` to the attempt's provider calls (and merge `extra`, e.g. the answer) in
        one statement, whatever its state: a call made is counted; False if no row."""
        params = cast(restore_attempts.c.params, JSONB)
        counted = func.coalesce(params[PROVIDER_CALLS].astext.cast(Integer), 0) + calls
        merged = params.op("||")(literal(dict(extra or {}), JSONB))
        merged = merged.op("||")(func.jsonb_build_object(PROVIDER_CALLS, counted))
        statement = (
            update(restore_attempts)
            .where(restore_attempts.c.id == attempt_id)
            .values(params=cast(merged, JSON))
            .returning(restore_attempts.c.id)
        )
        return self._conn.execute(statement).one_or_none() is not None

    def photos_refused_alike(self, refusal: str, *, since: datetime, other_than: uuid.UUID) -> int:
        """How many other photos have an attempt created since `since` that the provider
        refused with these words (`params.error.refusal`). Runs only on a refusal."""
        refused = cast(restore_attempts.c.params, JSONB)[ERROR]["refusal"].astext
        statement = select(func.count(func.distinct(restore_attempts.c.job_id))).where(
            restore_attempts.c.created_at >= since,
            restore_attempts.c.job_id != other_than,
            refused == refusal,
        )
        return int(self._conn.execute(statement).scalar_one())

    def revert_photo_without_attempt(self, photo_id: uuid.UUID, idle_before: datetime) -> bool:
        """A `processing` photo with no attempt at all (another writer's doing): settle it too."""
        conditions = [
            photos.c.updated_at < idle_before,
            _newest_attempt_id_of(photos.c.id).is_(None),
        ]
        return self.revert_failed_restore(photo_id, conditions=conditions) is not None

    def _selected_attempt(self, photo_id: uuid.UUID) -> Attempt | None:
        selected = self.selected_restore_id(photo_id)
        return self.attempt(selected) if selected else None

    def select_restore(self, attempt: Attempt) -> None:
        """Make a succeeded attempt the photo's restoration (its image and thumbnail)."""
        if attempt.restored_key is None:
            raise ValueError("only a succeeded attempt can be selected")
        # Photos before jobs, the order complete_attempt locks them in: no deadlock between them.
        self._conn.execute(
            update(photos)
            .where(photos.c.id == attempt.photo_id)
            .values(processed_key=attempt.restored_key)
        )
        self._select(attempt.photo_id, attempt.id, attempt.thumbnail_key)

    def _select(
        self, photo_id: uuid.UUID, attempt_id: uuid.UUID, thumbnail_key: str | None
    ) -> None:
        statement = (
            update(jobs)
            .where(jobs.c.id == photo_id)
            .values(selected_restore_id=attempt_id, thumbnail_s3_key=thumbnail_key)
        )
        self._conn.execute(statement)

    def _merge_params(
        self,
        attempt_id: uuid.UUID,
        patch: Mapping[str, Any],
        *,
        conditions: Sequence[ColumnElement[bool]] = (),
        s3_key: str | None = None,
        drop_keys: Sequence[str] = (),
        stamps: Sequence[str] = (),
    ) -> bool:
        """Merge `patch` into `params` (top-level keys) in one statement, with each of `stamps`
        set to the database's clock (ISO 8601); False if no row."""
        current: ColumnElement[Any] = cast(restore_attempts.c.params, JSONB)
        for key in drop_keys:
            current = current.op("-")(literal(key))
        merged_jsonb = current.op("||")(literal(dict(patch), JSONB))
        if stamps:
            now = func.to_jsonb(func.clock_timestamp())
            pairs = [part for key in stamps for part in (literal(key), now)]
            merged_jsonb = merged_jsonb.op("||")(func.jsonb_build_object(*pairs))
        merged = cast(merged_jsonb, JSON)
        values: dict[str, Any] = {"params": merged}
        if s3_key is not None:
            values["s3_key"] = s3_key
        statement = (
            update(restore_attempts)
            .where(restore_attempts.c.id == attempt_id, *conditions)
            .values(**values)
            .returning(restore_attempts.c.id)
        )
        if self._conn.execute(statement).one_or_none() is None:
            return False
        error = patch.get(ERROR)
        if isinstance(error, Mapping) and error.get("code") in NOT_USER_CAUSED_CODES:
            # Not the user's doing: the request no longer counts in their quota.
            self._conn.execute(
                update(owner_requests)
                .where(owner_requests.c.attempt_id == attempt_id)
                .values(counted=False)
            )
        # The outbox follows the stamps, in the same commit: settled means "to announce".
        outbox = unannounced_events
        if FINISHED_AT in stamps:
            settled = insert(outbox).values(attempt_id=attempt_id, settled_at=func.now())
            self._conn.execute(settled.on_conflict_do_nothing())
        if EVENT_PUBLISHED_AT in stamps:
            self._conn.execute(delete(outbox).where(outbox.c.attempt_id == attempt_id))
        return True

"""One contract for both repositories: every test runs on the in-memory fake the unit tests use
(tests/helpers/fakes.py) and on SqlRepository over Postgres, so a unit test cannot pass on
behaviour that Postgres would not give. Postgres is the truth: where they disagree, the fake
is wrong.

The tests go through the Repository protocol only; seeding a photo row (the existing app's
upload) and moving an attempt back in time (the window checks) are the two things each store
does its own way. Postgres is reached directly: the statements are the same through PgBouncer,
which tests/integration/test_repository.py covers."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest
from sqlalchemy import Engine, update

from photo_restore.attempts import (
    CANCELED_CODE,
    IDEMPOTENCY_KEY,
    LAST_TRANSIENT_ERROR,
    PENDING_S3_KEY,
    PHASE,
    STARTED_AT,
    THUMBNAIL_KEY,
    WAITING_FOR_CAPACITY,
    Attempt,
    AttemptState,
    Phase,
)
from photo_restore.errors import DependencyUnavailable
from photo_restore.models import owner_requests, restore_attempts
from photo_restore.photos import Photo
from photo_restore.repository import (
    AttemptCursor,
    QuotaUsage,
    Repository,
    SqlRepository,
)
from photo_restore.status import PhotoStatus
from tests.helpers import records
from tests.helpers.fakes import FakeRepository

HOUR = timedelta(hours=1)
# An idle check's cut-off this far from now: every heartbeat is before (or after) it, however
# long the test took.
FAR = timedelta(minutes=10)


class Store(Protocol):
    repository: Repository

    def add_photo(self, status: PhotoStatus = PhotoStatus.UPLOADED) -> Photo:
        """A photo of a fresh owner, as the existing app's upload writes it."""
        ...

    def backdate_attempt(self, attempt_id: uuid.UUID, by: timedelta) -> None:
        """The attempt was created `by` earlier than it was."""
        ...

    def now(self) -> datetime:
        """The store's clock."""
        ...


class FakeStore:
    def __init__(self) -> None:
        self.fake = FakeRepository()
        self.repository: Repository = self.fake

    def add_photo(self, status: PhotoStatus = PhotoStatus.UPLOADED) -> Photo:
        return self.fake.add_photo(status=status)

    def backdate_attempt(self, attempt_id: uuid.UUID, by: timedelta) -> None:
        attempt = self.fake.tables.attempts[attempt_id]
        moved = dataclasses.replace(attempt, created_at=attempt.created_at - by)
        self.fake.tables.attempts[attempt_id] = moved

    def now(self) -> datetime:
        return self.fake.clock.now


class PostgresStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.repository: Repository = SqlRepository(engine)

    def add_photo(self, status: PhotoStatus = PhotoStatus.UPLOADED) -> Photo:
        return records.photo(self.engine, records.insert_photo(self.engine, status=status).id)

    def backdate_attempt(self, attempt_id: uuid.UUID, by: timedelta) -> None:
        """The attempt and its request (the service's record of when it was asked for)."""
        with self.engine.begin() as conn:
            for table in (restore_attempts, owner_requests):
                key = table.c.id if table is restore_attempts else table.c.attempt_id
                conn.execute(
                    update(table)
                    .where(key == attempt_id)
                    .values(created_at=table.c.created_at - by)
                )

    def now(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture(params=["fake", "postgres"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "fake":
        return FakeStore()
    return PostgresStore(request.getfixturevalue("engine"))


# --- steps, as the use cases take them ------------------------------------------------------


def claimed(store: Store, photo: Photo, params: dict[str, Any] | None = None) -> Attempt:
    """A restore requested: the photo claimed and its attempt made, in one transaction."""
    with store.repository.transaction() as tx:
        assert tx.claim_photo(photo.id, photo.owner_id) is not None
        tx.ensure_job(photo.id, "ada@example.com")
        return tx.insert_attempt(
            attempt_id=uuid.uuid4(), photo_id=photo.id, model="m", params=params or {}
        )


def complete(store: Store, attempt: Attempt, **params: Any) -> bool:
    with store.repository.transaction() as tx:
        return tx.complete_attempt(
            photo_id=attempt.photo_id,
            attempt_id=attempt.id,
            s3_key=f"restored/{attempt.photo_id}/{attempt.id}.jpg",
            params=params,
        )


def fail(store: Store, attempt: Attempt, code: str = "provider_rejected") -> bool:
    with store.repository.transaction() as tx:
        return tx.fail_attempt(
            photo_id=attempt.photo_id, attempt_id=attempt.id, error={"code": code}
        )


def restored(store: Store, **params: Any) -> tuple[Photo, Attempt]:
    """A photo with one succeeded restoration."""
    photo = store.add_photo()
    attempt = claimed(store, photo)
    assert complete(store, attempt, **params)
    return photo, attempt_of(store, attempt.id)


def photo_of(store: Store, photo_id: uuid.UUID) -> Photo:
    with store.repository.transaction() as tx:
        found = tx.photo(photo_id)
    assert found is not None
    return found


def attempt_of(store: Store, attempt_id: uuid.UUID) -> Attempt:
    with store.repository.transaction() as tx:
        found = tx.attempt(attempt_id)
    assert found is not None
    return found


# --- claims and the status table ------------------------------------------------------------


@pytest.mark.parametrize("status", [PhotoStatus.UPLOADED, PhotoStatus.READY])
def test_a_restorable_photo_is_claimed_by_its_owner(store: Store, status: PhotoStatus) -> None:
    photo = store.add_photo(status)
    with store.repository.transaction() as tx:
        assert tx.claim_photo(photo.id, "someone-else") is None
        claimed_photo = tx.claim_photo(photo.id, photo.owner_id)
    assert claimed_photo is not None and claimed_photo.status is PhotoStatus.PROCESSING
    assert photo_of(store, photo.id).status is PhotoStatus.PROCESSING


@pytest.mark.parametrize(
    "status", [PhotoStatus.PROCESSING, PhotoStatus.ARCHIVED, PhotoStatus.DELETED]
)
def test_a_photo_that_is_not_restorable_is_not_claimed(store: Store, status: PhotoStatus) -> None:
    photo = store.add_photo(status)
    with store.repository.transaction() as tx:
        assert tx.claim_photo(photo.id, photo.owner_id) is None
        assert tx.claim_photo(uuid.uuid4(), photo.owner_id) is None
    assert photo_of(store, photo.id).status is status


def test_owned_photo_is_the_owners_only(store: Store) -> None:
    photo = store.add_photo()
    with store.repository.transaction() as tx:
        assert tx.owned_photo(photo.id, photo.owner_id) == tx.photo(photo.id)
        assert tx.owned_photo(photo.id, "someone-else") is None
        assert tx.photo(uuid.uuid4()) is None


def test_an_exception_rolls_the_whole_transaction_back(store: Store) -> None:
    photo = store.add_photo()
    with pytest.raises(RuntimeError), store.repository.transaction() as tx:
        tx.claim_photo(photo.id, photo.owner_id)
        tx.ensure_job(photo.id, None)
        tx.insert_attempt(attempt_id=uuid.uuid4(), photo_id=photo.id, model="m", params={})
        raise RuntimeError("the use case failed after its writes")
    assert photo_of(store, photo.id).status is PhotoStatus.UPLOADED
    with store.repository.transaction() as tx:
        assert tx.attempts(photo.id) == []


# --- the attempt lifecycle ------------------------------------------------------------------


def test_a_new_attempt_is_pending_and_in_flight(store: Store) -> None:
    photo = store.add_photo()
    attempt = claimed(store, photo, {"prompt": "restore"})
    assert attempt.state is AttemptState.PENDING and attempt.s3_key == PENDING_S3_KEY
    assert attempt.params == {"prompt": "restore"} and attempt.photo_id == photo.id
    with store.repository.transaction() as tx:
        assert tx.newest_attempt(photo.id) == attempt == tx.attempt(attempt.id)
        assert tx.selected_restore_id(photo.id) is None
        assert tx.attempt(uuid.uuid4()) is None
        assert tx.newest_attempt(uuid.uuid4()) is None


def test_starting_counts_deliveries_and_keeps_the_first_start(store: Store) -> None:
    photo = store.add_photo()
    attempt = claimed(store, photo)
    with store.repository.transaction() as tx:
        assert tx.wait_for_capacity(attempt.id, {"limit": "IPD", "until": "x"})
        started = tx.start_attempt(photo.id, attempt.id)
    assert started is not None and started.status is PhotoStatus.PROCESSING
    first = attempt_of(store, attempt.id)
    assert first.deliveries == 1 and first.phase is Phase.PREPROCESSING
    assert first.started_at is not None and first.waiting_for_capacity is None
    assert WAITING_FOR_CAPACITY not in first.params

    with store.repository.transaction() as tx:
        assert tx.start_attempt(photo.id, attempt.id) is not None
        assert tx.start_attempt(photo.id, attempt.id, count_delivery=False) is not None
    again = attempt_of(store, attempt.id)
    assert again.deliveries == 2 and again.params[STARTED_AT] == first.params[STARTED_AT]


def test_only_the_newest_pending_attempt_of_a_processing_photo_starts(store: Store) -> None:
    photo = store.add_photo()
    older = claimed(store, photo)
    assert fail(store, older)
    newer = claimed(store, photo)
    with store.repository.transaction() as tx:
        assert tx.start_attempt(photo.id, older.id) is None
        assert tx.start_attempt(photo.id, newer.id) is not None
        assert tx.start_attempt(uuid.uuid4(), newer.id) is None
    assert complete(store, newer)
    with store.repository.transaction() as tx:  # settled: the photo is no longer processing
        assert tx.start_attempt(photo.id, newer.id) is None


def test_completing_makes_the_photo_ready_with_the_restoration_selected(store: Store) -> None:
    photo = store.add_photo()
    attempt = claimed(store, photo, {"prompt": "restore"})
    with store.repository.transaction() as tx:
        assert tx.note_transient_error(attempt.id, {"code": "provider_unavailable"})
        assert tx.wait_for_capacity(attempt.id, {"limit": "IPD"})
    assert complete(store, attempt, seed=7, **{THUMBNAIL_KEY: "thumbs/t.jpg"})

    done = attempt_of(store, attempt.id)
    assert done.state is AttemptState.SUCCEEDED and done.phase is Phase.SUCCEEDED
    assert done.restored_key == f"restored/{photo.id}/{attempt.id}.jpg"
    assert done.thumbnail_key == "thumbs/t.jpg" and done.finished_at is not None
    assert done.params["prompt"] == "restore" and done.params["seed"] == 7
    assert LAST_TRANSIENT_ERROR not in done.params and WAITING_FOR_CAPACITY not in done.params
    ready = photo_of(store, photo.id)
    assert ready.status is PhotoStatus.READY and ready.processed_key == done.restored_key
    with store.repository.transaction() as tx:
        assert tx.selected_restore_id(photo.id) == attempt.id
    assert not complete(store, attempt)  # settled once
    assert not fail(store, attempt)


def test_a_failed_first_restore_reverts_the_photo_to_uploaded(store: Store) -> None:
    photo = store.add_photo()
    attempt = claimed(store, photo)
    assert fail(store, attempt, "provider_rejected")
    failed = attempt_of(store, attempt.id)
    assert failed.state is AttemptState.FAILED and failed.error == {"code": "provider_rejected"}
    assert failed.finished_at is not None and failed.restored_key is None
    assert photo_of(store, photo.id).status is PhotoStatus.UPLOADED
    assert not fail(store, attempt) and not complete(store, attempt)


def test_a_failed_re_restore_keeps_the_earlier_restoration(store: Store) -> None:
    photo, first = restored(store)
    second = claimed(store, photo)
    assert fail(store, second)
    kept = photo_of(store, photo.id)
    assert kept.status is PhotoStatus.READY and kept.processed_key == first.restored_key
    with store.repository.transaction() as tx:
        assert tx.selected_restore_id(photo.id) == first.id


def test_the_sweepers_fail_only_settles_a_photo_idle_since_before_the_cut_off(
    store: Store,
) -> None:
    photo = store.add_photo()
    attempt = claimed(store, photo)
    with store.repository.transaction() as tx:
        touched_since = tx.fail_attempt(
            photo_id=photo.id,
            attempt_id=attempt.id,
            error={"code": "stuck_in_processing"},
            idle_before=store.now() - FAR,
        )
        assert not touched_since
        assert tx.fail_attempt(
            photo_id=photo.id,
            attempt_id=attempt.id,
            error={"code": "stuck_in_processing"},
            idle_before=store.now() + FAR,
        )


def test_a_delivery_starting_after_the_sweepers_cut_off_keeps_its_photo(store: Store) -> None:
    photo = store.add_photo()
    attempt = claimed(store, photo)
    cut_off = store.now()  # the sweeper found the photo idle since before this
    with store.repository.transaction() as tx:
        assert tx.start_attempt(photo.id, attempt.id) is not None  # its heartbeat
    with store.repository.transaction() as tx:
        assert photo.id not in tx.idle_processing_photo_ids(cut_off)
        assert not tx.fail_attempt(
            photo_id=photo.id,
            attempt_id=attempt.id,
            error={"code": "stuck_in_processing"},
            idle_before=cut_off,
        )
    assert photo_of(store, photo.id).status is PhotoStatus.PROCESSING


def test_canceling_ends_the_owners_attempt_in_flight(store: Store) -> None:
    photo = store.add_photo()
    attempt = claimed(store, photo)
    error = {"code": CANCELED_CODE}
    with store.repository.transaction() as tx:
        assert tx.cancel_in_flight(photo.id, "someone-else", error) is None
        canceled = tx.cancel_in_flight(photo.id, photo.owner_id, error)
    assert canceled is not None and canceled.id == attempt.id
    assert canceled.state is AttemptState.CANCELED and canceled.finished_at is not None
    assert photo_of(store, photo.id).status is PhotoStatus.UPLOADED
    with store.repository.transaction() as tx:
        assert tx.cancel_in_flight(photo.id, photo.owner_id, error) is None  # nothing in flight
        assert tx.cancel_in_flight(uuid.uuid4(), photo.owner_id, error) is None


def test_pending_only_records_refuse_a_settled_attempt(store: Store) -> None:
    photo = store.add_photo()
    attempt = claimed(store, photo)
    with store.repository.transaction() as tx:
        assert tx.set_phase(attempt.id, Phase.GENERATING, {"before_key": "b.jpg"})
        assert tx.note_transient_error(attempt.id, {"code": "provider_unavailable"})
        assert tx.wait_for_capacity(attempt.id, {"limit": "IPD"})
    pending = attempt_of(store, attempt.id)
    assert pending.params[PHASE] == Phase.GENERATING.value and pending.params["before_key"]
    assert pending.last_transient_error == {"code": "provider_unavailable"}
    assert pending.waiting_for_capacity == {"limit": "IPD"}
    assert pending.phase is Phase.WAITING_FOR_CAPACITY

    assert fail(store, attempt)
    with store.repository.transaction() as tx:
        assert not tx.set_phase(attempt.id, Phase.STORING)
        assert not tx.note_transient_error(attempt.id, {"code": "x"})
        assert not tx.wait_for_capacity(attempt.id, {"limit": "IPD"})
        unknown = uuid.uuid4()
        assert not tx.set_phase(unknown, Phase.STORING)
        assert not tx.note_transient_error(unknown, {"code": "x"})
        assert not tx.wait_for_capacity(unknown, {"limit": "IPD"})
    assert attempt_of(store, attempt.id).phase is Phase.FAILED


def test_marks_are_recorded_on_any_attempt(store: Store) -> None:
    photo = store.add_photo()
    attempt = claimed(store, photo)
    with store.repository.transaction() as tx:
        tx.mark_enqueued(attempt.id)
    assert attempt_of(store, attempt.id).enqueued
    assert fail(store, attempt)
    with store.repository.transaction() as tx:
        tx.mark_event_published(attempt.id)
    marked = attempt_of(store, attempt.id)
    assert marked.event_published and marked.state is AttemptState.FAILED


def test_marks_of_an_unknown_attempt_change_nothing(store: Store) -> None:
    with store.repository.transaction() as tx:
        tx.mark_enqueued(uuid.uuid4())
        tx.mark_event_published(uuid.uuid4())
        assert tx.selected_restore_id(uuid.uuid4()) is None


def test_selecting_an_earlier_restoration(store: Store) -> None:
    photo, first = restored(store, **{THUMBNAIL_KEY: "thumbs/1.jpg"})
    second_claim = claimed(store, photo)
    assert complete(store, second_claim)
    with store.repository.transaction() as tx:
        tx.select_restore(first)
        assert tx.selected_restore_id(photo.id) == first.id
    assert photo_of(store, photo.id).processed_key == first.restored_key

    third = claimed(store, photo)
    assert fail(store, third)
    with pytest.raises(ValueError), store.repository.transaction() as tx:
        tx.select_restore(attempt_of(store, third.id))
    with store.repository.transaction() as tx:
        assert tx.selected_restore_id(photo.id) == first.id


def test_revert_of_a_processing_photo_without_any_attempt(store: Store) -> None:
    lone = store.add_photo(PhotoStatus.PROCESSING)
    photo = store.add_photo()
    claimed(store, photo)
    with store.repository.transaction() as tx:
        assert not tx.revert_photo_without_attempt(lone.id, store.now() - FAR)  # not idle
        assert not tx.revert_photo_without_attempt(photo.id, store.now() + FAR)  # has one
        assert tx.revert_photo_without_attempt(lone.id, store.now() + FAR)
        assert not tx.revert_photo_without_attempt(lone.id, store.now() + FAR)  # done
    assert photo_of(store, lone.id).status is PhotoStatus.UPLOADED


# --- reads over several attempts --------------------------------------------------------------


def test_attempts_are_listed_and_paged_newest_first(store: Store) -> None:
    photo = store.add_photo()
    made = []
    for _ in range(5):
        attempt = claimed(store, photo)
        assert fail(store, attempt)
        made.append(attempt.id)
    newest_first = made[::-1]
    with store.repository.transaction() as tx:
        assert [a.id for a in tx.attempts(photo.id)] == newest_first
        first = tx.attempts_page(photo.id, limit=2)
        assert [a.id for a in first] == newest_first[:2]
        cursor = AttemptCursor(first[-1].created_at, first[-1].id)
        second = tx.attempts_page(photo.id, limit=10, after=cursor)
        assert [a.id for a in second] == newest_first[2:]
        assert tx.attempts(uuid.uuid4()) == []


def test_an_idempotency_key_finds_the_owners_newest_attempt_in_its_window(
    store: Store,
) -> None:
    photo = store.add_photo()
    older = claimed(store, photo, {IDEMPOTENCY_KEY: "k-1"})
    assert fail(store, older)
    newer = claimed(store, photo, {IDEMPOTENCY_KEY: "k-1"})
    other = store.add_photo()
    claimed(store, other, {IDEMPOTENCY_KEY: "k-1"})
    with store.repository.transaction() as tx:
        found = tx.keyed_attempt(photo.owner_id, "k-1", window=HOUR)
        assert found is not None and found.id == newer.id
        assert tx.keyed_attempt(photo.owner_id, "k-2", window=HOUR) is None
    store.backdate_attempt(older.id, 2 * HOUR)
    store.backdate_attempt(newer.id, 2 * HOUR)
    with store.repository.transaction() as tx:
        assert tx.keyed_attempt(photo.owner_id, "k-1", window=HOUR) is None


def test_the_quota_counts_the_owners_attempts_but_not_failures_of_ours(store: Store) -> None:
    photo = store.add_photo()
    with store.repository.transaction() as tx:
        assert tx.quota_usage(photo.owner_id, window=HOUR) == QuotaUsage(0, 0)
    refused = claimed(store, photo)
    assert fail(store, refused, "provider_rejected")  # the user's image: counts
    ours = claimed(store, photo)
    assert fail(store, ours, "provider_unavailable")  # the provider's fault: does not
    canceled = claimed(store, photo)
    assert fail(store, canceled, CANCELED_CODE)  # counts
    pending = claimed(store, photo)
    store.backdate_attempt(refused.id, timedelta(minutes=10))
    store.backdate_attempt(pending.id, 2 * HOUR)  # out of the window
    with store.repository.transaction() as tx:
        tx.lock_owner(photo.owner_id)  # as a restore request does before it counts
        usage = tx.quota_usage(photo.owner_id, window=HOUR)
        assert usage == QuotaUsage(2, 50 * 60)  # the oldest counted leaves in 50 minutes
        assert tx.quota_usage("someone-else", window=HOUR) == QuotaUsage(0, 0)


def test_the_median_inference_time_of_the_newest_succeeded_attempts(store: Store) -> None:
    """Global: the newest attempts of the database are this test's own."""
    for seconds in (10.0, 40.0, 20.0, 30.0):
        restored(store, inference_time_seconds=seconds)
    failed = claimed(store, store.add_photo(), {"inference_time_seconds": 99.0})
    assert fail(store, failed)  # not a succeeded one
    with store.repository.transaction() as tx:
        assert tx.inference_seconds_median(sample=3) == 30.0  # of 40, 20, 30
        assert tx.inference_seconds_median(sample=2) == 25.0  # of 20, 30
    restored(store)  # newest, without a time: not in the sample
    restored(store, inference_time_seconds="fast")
    with store.repository.transaction() as tx:
        assert tx.inference_seconds_median(sample=2) == 25.0


def test_failed_newest_attempts_by_code_photo_and_time(store: Store) -> None:
    since = store.now() - FAR
    failed_photo = store.add_photo()
    assert fail(store, claimed(store, failed_photo), "provider_rejected")
    failed = attempt_of(store, claimed(store, failed_photo).id)
    assert fail(store, failed, "retries_exhausted")
    recovered = store.add_photo()
    assert fail(store, claimed(store, recovered), "retries_exhausted")
    assert complete(store, claimed(store, recovered))
    mine = {failed_photo.id, recovered.id}

    def found(**filters: Any) -> list[tuple[uuid.UUID, uuid.UUID, str, str | None]]:
        with store.repository.transaction() as tx:
            rows = tx.failed_newest_attempts(**filters)
        return [(r.photo_id, r.attempt_id, r.owner_id, r.code) for r in rows if r.photo_id in mine]

    expected = [(failed_photo.id, failed.id, failed_photo.owner_id, "retries_exhausted")]
    assert found(since=since) == expected
    # Oldest failure first, whichever photo came first.
    earlier_photo = store.add_photo()
    earlier = claimed(store, earlier_photo)
    assert fail(store, earlier, "provider_rejected")
    store.backdate_attempt(earlier.id, timedelta(minutes=2))
    mine.add(earlier_photo.id)
    first = (earlier_photo.id, earlier.id, earlier_photo.owner_id, "provider_rejected")
    assert found(since=since) == [first, *expected]
    mine.remove(earlier_photo.id)
    assert found(since=since) == expected
    assert found(since=since, codes=["retries_exhausted"]) == expected
    assert found(since=since, codes=["provider_rejected"]) == []
    assert found(since=since, photo_ids=[failed_photo.id]) == expected
    assert found(since=since, photo_ids=[recovered.id]) == []
    assert found(since=store.now() + FAR) == []


def test_unannounced_attempts_are_settled_ones_whose_event_was_not_published(
    store: Store,
) -> None:
    photo = store.add_photo()
    announced = claimed(store, photo)
    assert fail(store, announced)
    with store.repository.transaction() as tx:
        tx.mark_event_published(announced.id)
    earlier = claimed(store, photo)
    assert fail(store, earlier)
    store.backdate_attempt(earlier.id, timedelta(minutes=30))  # listed first: oldest first
    old = claimed(store, photo)
    assert fail(store, old)
    store.backdate_attempt(old.id, 2 * HOUR)  # out of the window
    pending = claimed(store, photo)
    later = store.add_photo()
    unannounced = claimed(store, later)
    assert fail(store, unannounced)  # just now: the next transaction sees it finished
    mine = {announced.id, earlier.id, old.id, pending.id, unannounced.id}

    def found(finished_before: timedelta) -> list[uuid.UUID]:
        with store.repository.transaction() as tx:
            listed = tx.unannounced_attempts(finished_before=finished_before, window=HOUR)
        return [a.id for a in listed if a.id in mine]

    assert found(timedelta(0)) == [earlier.id, unannounced.id]
    assert found(FAR) == []  # they finished less than that ago: a publish may be under way


def test_idle_processing_photos(store: Store) -> None:
    processing = store.add_photo()
    claimed(store, processing)
    uploaded = store.add_photo()
    with store.repository.transaction() as tx:
        idle = set(tx.idle_processing_photo_ids(store.now() + FAR))
        assert processing.id in idle and uploaded.id not in idle
        assert processing.id not in tx.idle_processing_photo_ids(store.now() - FAR)


# --- pacing -----------------------------------------------------------------------------------


def test_provider_slots_are_one_interval_apart_from_now(store: Store) -> None:
    key, interval = f"model-{uuid.uuid4()}", timedelta(seconds=30)
    with store.repository.transaction() as tx:
        first = tx.reserve_provider_slot(key, interval)
        second = tx.reserve_provider_slot(key, interval)
        other = tx.reserve_provider_slot(f"other-{key}", interval)
    # Postgres reads its clock once per call in the statement: the slot's, then the reply's.
    assert first.starts_at <= first.reserved_at and first.wait_seconds == 0
    assert second.starts_at == first.starts_at + interval
    assert 0 < second.wait_seconds <= interval.total_seconds()
    assert other.wait_seconds == 0


def test_an_unavailable_database_is_dependency_unavailable(store: Store) -> None:
    if isinstance(store, FakeStore):
        store.fake.unavailable = True
    else:
        from photo_restore.db import create_db_engine

        # Port 9 (discard) on loopback: nothing listens, the connect is refused at once.
        unreachable = "postgresql+pg8000://u@127.0.0.1:9/db"
        store.repository = SqlRepository(create_db_engine(unreachable, ssl_mode="disable"))
    with pytest.raises(DependencyUnavailable), store.repository.transaction() as tx:
        tx.photo(uuid.uuid4())

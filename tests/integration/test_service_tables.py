"""This service's aggregate tables (issue 17) kept in step by the repository's own writes: the
estimate's ring of inference times, the owners' recent requests, the unannounced-events outbox.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, text

from photo_restore.errors import NOT_USER_CAUSED_CODES
from photo_restore.models import INFERENCE_RING_SLOTS, inference_times, owner_requests
from photo_restore.repository import OWNER_REQUESTS_KEPT, SqlRepository
from tests.helpers import records
from tests.helpers.records import insert_photo

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)


def claim(
    repository: SqlRepository, photo_id: uuid.UUID, owner_id: str, **params: object
) -> uuid.UUID:
    attempt_id = uuid.uuid4()
    with repository.transaction() as tx:
        assert tx.claim_photo(photo_id, owner_id) is not None
        tx.ensure_job(photo_id, None)
        tx.insert_attempt(attempt_id=attempt_id, photo_id=photo_id, model="m", params=params)
    return attempt_id


def complete(
    repository: SqlRepository, photo_id: uuid.UUID, attempt_id: uuid.UUID, seconds: float
) -> None:
    with repository.transaction() as tx:
        assert tx.complete_attempt(
            photo_id=photo_id,
            attempt_id=attempt_id,
            s3_key=f"restored/{photo_id}/{attempt_id}.jpg",
            params={"inference_time_seconds": seconds},
        )


def test_the_estimates_ring_keeps_the_newest_inference_times_only(
    engine: Engine, repository: SqlRepository
) -> None:
    photo = insert_photo(engine)
    oldest = claim(repository, photo.id, photo.owner_id)
    complete(repository, photo.id, oldest, 1000.0)
    for _ in range(INFERENCE_RING_SLOTS):
        complete(repository, photo.id, claim(repository, photo.id, photo.owner_id), 5.0)
    with engine.connect() as conn:
        kept = conn.execute(select(inference_times.c.attempt_id)).scalars().all()
    assert len(kept) == INFERENCE_RING_SLOTS and oldest not in kept
    with repository.transaction() as tx:
        assert tx.inference_seconds_median(sample=INFERENCE_RING_SLOTS * 2) == 5.0


def test_a_success_without_a_numeric_inference_time_is_not_in_the_ring(
    engine: Engine, repository: SqlRepository
) -> None:
    photo = insert_photo(engine)
    for value in ("12", True, None):
        attempt_id = claim(repository, photo.id, photo.owner_id)
        with repository.transaction() as tx:
            tx.complete_attempt(
                photo_id=photo.id,
                attempt_id=attempt_id,
                s3_key=f"restored/{photo.id}/{attempt_id}.jpg",
                params={"inference_time_seconds": value},
            )
        with engine.connect() as conn:
            ring = select(inference_times).where(inference_times.c.attempt_id == attempt_id)
            assert conn.execute(ring).first() is None, value


def test_an_owners_requests_past_the_kept_time_are_dropped_at_their_next_request(
    engine: Engine, repository: SqlRepository
) -> None:
    first = insert_photo(engine)
    old = claim(repository, first.id, first.owner_id, idempotency_key="k-old")
    with engine.begin() as conn:  # three days later
        conn.execute(
            text(
                "UPDATE photo_restore_owner_requests "
                "SET created_at = created_at - interval '3 days' WHERE attempt_id = :id"
            ),
            {"id": old},
        )
    second = insert_photo(engine, owner_id=first.owner_id)
    new = claim(repository, second.id, first.owner_id, idempotency_key="k-new")
    with engine.connect() as conn:
        mine = select(owner_requests.c.attempt_id).where(
            owner_requests.c.owner_id == first.owner_id
        )
        assert conn.execute(mine).scalars().all() == [new]
    with repository.transaction() as tx:
        assert tx.quota_usage(first.owner_id, window=timedelta(hours=24)).counted == 1
        keyed = tx.keyed_attempt(first.owner_id, "k-new", window=timedelta(hours=24))
        assert keyed is not None and keyed.id == new
        assert tx.keyed_attempt(first.owner_id, "k-old", window=OWNER_REQUESTS_KEPT) is None


def test_a_window_longer_than_the_requests_kept_is_refused(repository: SqlRepository) -> None:
    longer = OWNER_REQUESTS_KEPT + timedelta(hours=1)
    with repository.transaction() as tx, pytest.raises(ValueError, match="keeps"):
        tx.quota_usage("anyone", window=longer)
    with repository.transaction() as tx, pytest.raises(ValueError, match="keeps"):
        tx.keyed_attempt("anyone", "key", window=longer)


def test_an_unannounced_event_leaves_the_outbox_when_published_or_past_the_window(
    engine: Engine, repository: SqlRepository
) -> None:
    photo = insert_photo(engine)
    published = claim(repository, photo.id, photo.owner_id)

    def outbox() -> set[uuid.UUID]:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT attempt_id FROM photo_restore_unannounced_events"))
            return set(rows.scalars())

    with repository.transaction() as tx:
        tx.fail_attempt(photo_id=photo.id, attempt_id=published, error={"code": "corrupt_image"})
    assert published in outbox()
    with repository.transaction() as tx:
        tx.mark_event_published(published)
    assert published not in outbox()

    forgotten = claim(repository, photo.id, photo.owner_id)
    with repository.transaction() as tx:
        tx.cancel_in_flight(photo.id, photo.owner_id, {"code": "canceled"})
    assert records.attempt(engine, forgotten).state.value == "canceled"
    assert forgotten in outbox()
    with engine.begin() as conn:  # three days later, never published
        conn.execute(
            text(
                "UPDATE photo_restore_unannounced_events "
                "SET settled_at = settled_at - interval '3 days' WHERE attempt_id = :id"
            ),
            {"id": forgotten},
        )
    with repository.transaction() as tx:
        tx.unannounced_attempts(finished_before=timedelta(minutes=5), window=timedelta(days=2))
    assert forgotten not in outbox()


def test_a_failure_not_of_the_users_doing_leaves_the_quota_and_theirs_stays_in_it(
    engine: Engine, repository: SqlRepository
) -> None:
    photo = insert_photo(engine)
    for code in ("provider_unavailable", "corrupt_image"):
        attempt_id = claim(repository, photo.id, photo.owner_id)
        with repository.transaction() as tx:
            assert tx.fail_attempt(photo_id=photo.id, attempt_id=attempt_id, error={"code": code})
    assert "provider_unavailable" in NOT_USER_CAUSED_CODES
    assert "corrupt_image" not in NOT_USER_CAUSED_CODES
    with repository.transaction() as tx:
        assert tx.quota_usage(photo.owner_id, window=timedelta(hours=24)).counted == 1

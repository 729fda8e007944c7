"""The repository on Postgres: the status table executed exhaustively, and the SQL twin of the
attempt lifecycle agreeing with its Python derivation."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text, update

from photo_restore.attempts import ERROR, AttemptState, attempt_state
from photo_restore.errors import DependencyUnavailable
from photo_restore.http_errors import answered_status
from photo_restore.models import photos, restore_attempts
from photo_restore.repository import SqlRepository
from photo_restore.settings import Settings
from photo_restore.status import (
    ALLOWED_TRANSITIONS,
    PhotoStatus,
    TransitionNotAllowed,
)
from tests.helpers import records
from tests.helpers.handlers import use_settings
from tests.helpers.records import insert_photo

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)

ALL_PAIRS = list(itertools.product(PhotoStatus, PhotoStatus))


@pytest.mark.parametrize(("source", "target"), ALL_PAIRS, ids=lambda s: str(s))
def test_every_pair_is_allowed_or_refused_as_the_table_says(
    engine: Engine, repository: SqlRepository, source: PhotoStatus, target: PhotoStatus
) -> None:
    photo = insert_photo(engine, status=source.value)
    allowed = (source, target) in ALLOWED_TRANSITIONS
    with repository.transaction() as tx:
        if allowed:
            changed = tx.change_photo_status(photo.id, sources=[source], target=target)
            assert changed is not None
            assert changed.status is target
        else:
            with pytest.raises(TransitionNotAllowed):
                tx.change_photo_status(photo.id, sources=[source], target=target)
    assert records.photo(engine, photo.id).status is (target if allowed else source)


def test_a_change_from_the_wrong_current_status_matches_nothing(
    engine: Engine, repository: SqlRepository
) -> None:

    photo = insert_photo(engine, status="ready")
    with repository.transaction() as tx:
        changed = tx.change_photo_status(
            photo.id, sources=[PhotoStatus.UPLOADED], target=PhotoStatus.PROCESSING
        )
    assert changed is None


def test_failed_first_restore_reverts_to_uploaded(
    engine: Engine, repository: SqlRepository
) -> None:
    photo = insert_photo(engine, status="processing")
    with repository.transaction() as tx:
        reverted = tx.revert_failed_restore(photo.id)
    assert reverted is not None and reverted.status is PhotoStatus.UPLOADED


def test_failed_re_restore_keeps_the_earlier_restoration_ready(
    engine: Engine, repository: SqlRepository
) -> None:
    photo = insert_photo(engine, status="ready")
    with engine.begin() as conn:
        conn.execute(
            update(photos).where(photos.c.id == photo.id).values(processed_key="restored/x.jpg")
        )
    with repository.transaction() as tx:
        tx.change_photo_status(photo.id, sources=[PhotoStatus.READY], target=PhotoStatus.PROCESSING)
        reverted = tx.revert_failed_restore(photo.id)
    assert reverted is not None and reverted.status is PhotoStatus.READY


def test_revert_only_applies_to_processing_photos(
    engine: Engine, repository: SqlRepository
) -> None:
    photo = insert_photo(engine, status="uploaded")
    with repository.transaction() as tx:
        assert tx.revert_failed_restore(photo.id) is None


@pytest.mark.parametrize(
    ("s3_key", "params"),
    [
        ("pending", {}),
        ("pending", {"last_transient_error": {"code": "x"}}),
        ("pending", {ERROR: {"code": "provider_rejected"}}),
        ("restored/p/1.jpg", {}),
        ("restored/p/1.jpg", {ERROR: {"code": "queue_unavailable"}}),
    ],
)
def test_the_sql_pending_check_agrees_with_the_lifecycle(
    engine: Engine, repository: SqlRepository, s3_key: str, params: dict[str, object]
) -> None:
    """The in-flight check (SQL) must say "pending" exactly when `attempt_state` does."""
    photo = insert_photo(engine, status="processing")
    attempt_id = uuid.uuid4()
    with repository.transaction() as tx:
        tx.ensure_job(photo.id, None)
        tx.insert_attempt(attempt_id=attempt_id, photo_id=photo.id, model="m", params=params)
    with engine.begin() as conn:
        conn.execute(
            update(restore_attempts)
            .where(restore_attempts.c.id == attempt_id)
            .values(s3_key=s3_key)
        )
    with repository.transaction() as tx:
        in_flight = tx.start_attempt(photo.id, attempt_id) is not None
    assert in_flight == (attempt_state(s3_key, params) is AttemptState.PENDING)


def test_the_sweepers_idle_check_is_repeated_inside_the_revert(
    engine: Engine, repository: SqlRepository
) -> None:
    """A delivery that starts between the sweeper's query and its revert keeps its photo."""
    photo = insert_photo(engine, status="processing")
    attempt_id = uuid.uuid4()
    with repository.transaction() as tx:
        tx.ensure_job(photo.id, None)
        tx.insert_attempt(attempt_id=attempt_id, photo_id=photo.id, model="m", params={})
    idle_before = datetime.now(UTC) - timedelta(seconds=60)  # the photo was touched just now
    with repository.transaction() as tx:
        reverted = tx.fail_attempt(
            photo_id=photo.id,
            attempt_id=attempt_id,
            error={"code": "stuck_in_processing"},
            idle_before=idle_before,
        )
    assert not reverted
    assert records.photo(engine, photo.id).status is PhotoStatus.PROCESSING


def test_a_database_error_is_dependency_unavailable_in_every_transaction() -> None:
    from photo_restore.db import create_db_engine

    # Port 9 (discard) on loopback: nothing listens, the connect is refused at once.
    unreachable = SqlRepository(
        create_db_engine("postgresql+pg8000://u@127.0.0.1:9/db", ssl_mode="disable")
    )
    with pytest.raises(DependencyUnavailable) as raised, unreachable.transaction() as tx:
        tx.photo(uuid.uuid4())
    assert answered_status(raised.value) == 503


def test_a_rotated_database_url_is_used_without_a_redeploy(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, engine: Engine
) -> None:
    """The URL comes from SSM through Powertools' 5-minute cache; when the cached value
    changes, the next transaction connects with the new URL."""
    from photo_restore import wiring

    current = {"url": str(settings.database_url.get_secret_value())}
    monkeypatch.setattr(wiring, "_parameter", lambda name: current["url"])
    use_settings(settings.model_copy(update={"database_url_parameter": "/photo-restore/db-url"}))

    def application_name() -> str:
        with wiring.repository().engine.connect() as conn:
            return str(conn.execute(text("SELECT current_setting('application_name')")).scalar())

    before = application_name()
    first_engine = wiring.repository().engine
    # What an operator's new URL would be.
    current["url"] += ("&" if "?" in current["url"] else "?") + "application_name=rotated"
    assert application_name() == "rotated" != before
    assert wiring.repository().engine is not first_engine
    wiring.reset()


def claimed_attempt(engine: Engine, repository: SqlRepository, **params: object) -> uuid.UUID:
    photo = insert_photo(engine)
    attempt_id = uuid.uuid4()
    with repository.transaction() as tx:
        tx.claim_photo(photo.id, photo.owner_id)
        tx.ensure_job(photo.id, None)
        tx.insert_attempt(
            attempt_id=attempt_id, photo_id=photo.id, model="Qwen/Qwen-Image-Edit", params=params
        )
    return attempt_id


def test_times_recorded_by_the_database_read_back_as_aware_datetimes(
    engine: Engine, repository: SqlRepository
) -> None:
    attempt_id = claimed_attempt(engine, repository)
    attempt = records.attempt(engine, attempt_id)
    with repository.transaction() as tx:
        assert tx.start_attempt(attempt.photo_id, attempt_id) is not None
        first_start = tx.attempt(attempt_id)
        assert tx.start_attempt(attempt.photo_id, attempt_id) is not None  # a redelivery
    started = records.attempt(engine, attempt_id)
    assert first_start is not None and first_start.started_at is not None
    assert started.started_at == first_start.started_at  # the first delivery's, kept
    assert started.phase.value == "preprocessing" and started.deliveries == 2
    assert started.started_at.tzinfo is not None
    assert abs(started.started_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_events_whose_publish_failed_are_found_until_marked_published(
    engine: Engine, repository: SqlRepository
) -> None:
    attempt_id = claimed_attempt(engine, repository)
    attempt = records.attempt(engine, attempt_id)
    with repository.transaction() as tx:
        tx.fail_attempt(
            photo_id=attempt.photo_id, attempt_id=attempt_id, error={"code": "corrupt_image"}
        )

    def unannounced() -> set[uuid.UUID]:
        with repository.transaction() as tx:
            found = tx.unannounced_attempts(
                finished_before=timedelta(minutes=5), window=timedelta(days=2)
            )
        return {a.id for a in found}

    assert attempt_id not in unannounced()  # too fresh: its publisher may be at work
    with engine.begin() as conn:  # ten minutes later
        conn.execute(
            text(
                "UPDATE restore_attempts SET params = (params::jsonb || jsonb_build_object("
                "'finished_at', to_jsonb(clock_timestamp() - interval '10 minutes')))::json "
                "WHERE id = :id"
            ),
            {"id": attempt_id},
        )
    assert attempt_id in unannounced()
    with repository.transaction() as tx:
        tx.mark_event_published(attempt_id)
    assert attempt_id not in unannounced()


def test_the_inference_median_reads_recent_successes_only(
    engine: Engine, repository: SqlRepository
) -> None:
    for seconds in (4.0, 8.0, 100.0):
        attempt_id = claimed_attempt(engine, repository)
        attempt = records.attempt(engine, attempt_id)
        with repository.transaction() as tx:
            tx.complete_attempt(
                photo_id=attempt.photo_id,
                attempt_id=attempt_id,
                s3_key=f"restored/{attempt.photo_id}/x.jpg",
                params={"inference_time_seconds": seconds},
            )
    claimed_attempt(engine, repository, inference_time_seconds="not a number")
    with repository.transaction() as tx:
        assert tx.inference_seconds_median(sample=3) == 8.0  # the newest three
        assert tx.inference_seconds_median(sample=1) == 100.0

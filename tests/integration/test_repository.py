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
    assert raised.value.http_status == 503


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
    current["url"] += "&application_name=rotated"  # what an operator's new URL would be
    assert application_name() == "rotated" != before
    assert wiring.repository().engine is not first_engine
    wiring.reset()

"""Injected faults at each failure point: nothing stuck in processing, nothing orphaned or lost."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from sqlalchemy import Engine, text, update

from photo_restore.errors import DependencyUnavailable, QueueUnavailable
from photo_restore.http_errors import answered_status
from photo_restore.models import photos
from photo_restore.queue import RestoreMessage, RestoreQueue
from photo_restore.repository import SqlRepository
from photo_restore.restore_giveup import GiveUpOutcome, RestoreGiveUp
from photo_restore.restore_requests import Caller, RestoreRequests
from photo_restore.settings import Settings
from photo_restore.storage import ObjectStorage, restored_key
from photo_restore.worker_wiring import build_restore_run
from photo_restore_tools.local.event_source import LocalLambdaContext
from photo_restore_tools.local.photos import StoredPhoto
from photo_restore_tools.local.siliconflow_standin import Behaviour
from tests.helpers import records
from tests.helpers.handlers import call_api, load_handler
from tests.helpers.images import old_photo
from tests.helpers.pipeline import Pipeline, queue_size
from tests.helpers.records import insert_photo

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)


class SimulatedCrash(BaseException):
    """The process dying: no `except Exception` in our code may catch it."""


class CrashingQueue(RestoreQueue):
    def send(self, message: RestoreMessage, *, delay_seconds: int = 0) -> str:
        raise SimulatedCrash


class CrashAfterStoringRestored(ObjectStorage):
    """Stores the before image, the restoration and its thumbnail (the last write), then 'dies'
    before the database commit."""

    def write_jpeg(self, key: str, data: bytes) -> None:
        super().write_jpeg(key, data)
        if key.endswith(".thumb.jpg"):
            raise SimulatedCrash


def photo_status(engine: Engine, photo_id: uuid.UUID) -> str:
    return records.photo(engine, photo_id).status.value


def requests_with(settings: Settings, engine: Engine, queue: RestoreQueue) -> RestoreRequests:
    storage = ObjectStorage(boto3.client("s3"), settings.bucket_name)
    return RestoreRequests(SqlRepository(engine), queue, storage, settings)


def giveup_in_the_future(settings: Settings, engine: Engine, seconds: int) -> RestoreGiveUp:
    storage = ObjectStorage(boto3.client("s3"), settings.bucket_name)
    later = datetime.now(UTC) + timedelta(seconds=seconds)
    return RestoreGiveUp(
        repository=SqlRepository(engine), storage=storage, settings=settings, clock=lambda: later
    )


# --- API: claim, commit, enqueue ------------------------------------------------------------


def test_a_database_error_inside_the_claim_rolls_everything_back(
    engine: Engine, settings: Settings, sqs: Any
) -> None:
    """A real Postgres error on the attempt insert, after the claim's UPDATE ran."""
    faulty = settings.model_copy(update={"restore_prompt": "fault/injected"})
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION refuse_injected_fault() RETURNS trigger AS $$ "
                "BEGIN IF NEW.params->>'prompt' = 'fault/injected' THEN "
                "RAISE EXCEPTION 'injected'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(text("DROP TRIGGER IF EXISTS injected_fault ON restore_attempts"))
        conn.execute(
            text(
                "CREATE TRIGGER injected_fault BEFORE INSERT ON restore_attempts "
                "FOR EACH ROW EXECUTE FUNCTION refuse_injected_fault()"
            )
        )
    photo = insert_photo(engine)
    requests = requests_with(faulty, engine, RestoreQueue(sqs, settings.queue_url))

    with pytest.raises(DependencyUnavailable) as raised:
        requests.request_restore(Caller(photo.owner_id, None), photo.id)

    assert answered_status(raised.value) == 503
    assert photo_status(engine, photo.id) == "uploaded"
    assert records.attempts_of(engine, photo.id) == []
    assert queue_size(sqs, settings.queue_url) == 0


def test_an_sqs_error_after_commit_undoes_the_claim_and_answers_503(
    engine: Engine, settings: Settings, sqs: Any
) -> None:
    missing_queue = settings.queue_url + "-does-not-exist"
    photo = insert_photo(engine)
    requests = requests_with(settings, engine, RestoreQueue(sqs, missing_queue))

    with pytest.raises(QueueUnavailable) as raised:
        requests.request_restore(Caller(photo.owner_id, None), photo.id)

    assert answered_status(raised.value) == 503
    assert photo_status(engine, photo.id) == "uploaded"
    [attempt] = records.attempts_of(engine, photo.id)
    assert attempt.params["error"]["code"] == "queue_unavailable"
    # The client may simply try again.
    retry = requests_with(settings, engine, RestoreQueue(sqs, settings.queue_url))
    assert retry.request_restore(Caller(photo.owner_id, None), photo.id).body.status == "processing"


def test_a_crash_between_commit_and_enqueue_is_settled_by_the_sweeper(
    engine: Engine, settings: Settings, sqs: Any
) -> None:
    photo = insert_photo(engine)
    requests = requests_with(settings, engine, CrashingQueue(sqs, settings.queue_url))
    with pytest.raises(SimulatedCrash):
        requests.request_restore(Caller(photo.owner_id, None), photo.id)
    assert photo_status(engine, photo.id) == "processing"
    assert queue_size(sqs, settings.queue_url) == 0

    # Not before the longest pipeline time has passed: the work might still be running.
    early = giveup_in_the_future(settings, engine, settings.stuck_after_seconds - 60)
    assert photo.id not in [r.photo_id for r in early.sweep_stuck_photos()]
    late = giveup_in_the_future(settings, engine, settings.stuck_after_seconds + 60)
    reports = [r for r in late.sweep_stuck_photos() if r.photo_id == photo.id]

    assert [r.outcome for r in reports] == [GiveUpOutcome.REVERTED]
    assert photo_status(engine, photo.id) == "uploaded"
    [attempt] = records.attempts_of(engine, photo.id)
    assert attempt.params["error"]["code"] == "stuck_in_processing"


def test_the_api_answers_503_with_a_reason_when_sqs_is_down(
    settings: Settings, engine: Engine
) -> None:
    broken = settings.model_copy(update={"queue_url": settings.queue_url + "-gone"})
    api = load_handler("api", broken)
    photo = insert_photo(engine)
    path = f"/photos/{photo.id}/restore"
    status, body = call_api(api, "POST", path, claims={"sub": photo.owner_id})
    assert status == 503
    assert body["error"] == "queue_unavailable"
    assert photo_status(engine, photo.id) == "uploaded"


# --- Worker: stored in S3, not yet committed -------------------------------------------------


def crashing_run(pipeline: Pipeline) -> Any:
    settings = pipeline.settings
    return build_restore_run(
        settings,
        repository=SqlRepository(pipeline.engine),
        storage=CrashAfterStoringRestored(pipeline.s3, settings.bucket_name),
        queue=RestoreQueue(pipeline.sqs, settings.queue_url),
        api_key="test-key",
    )


def crash_after_storing(pipeline: Pipeline) -> tuple[StoredPhoto, uuid.UUID, RestoreMessage]:
    """A restore whose first delivery stored its image and died before committing."""
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    message = RestoreMessage(photo_id=photo.id, restore_attempt_id=attempt_id)
    with pytest.raises(SimulatedCrash):
        crashing_run(pipeline).run(message)
    return photo, attempt_id, message


def test_a_crash_between_storing_and_committing_is_retried_without_orphans(
    pipeline: Pipeline,
) -> None:
    photo, attempt_id, _ = crash_after_storing(pipeline)
    stored_before_crash = sorted(pipeline.restored_keys(photo.id))
    assert len(stored_before_crash) == 3  # before image, restoration, thumbnail
    assert pipeline.photo(photo.id).status == "processing"

    pipeline.drain()  # SQS redelivers the message the crashed invocation never deleted

    attempt = pipeline.attempt(attempt_id)
    assert pipeline.photo(photo.id).status == "ready"
    assert attempt.s3_key in stored_before_crash
    assert pipeline.keys_of(attempt) == stored_before_crash
    assert pipeline.restored_keys(photo.id) == stored_before_crash  # overwritten


def test_a_stored_image_whose_retries_all_fail_is_deleted_by_the_dlq_handler(
    pipeline: Pipeline,
) -> None:
    photo, attempt_id, message = crash_after_storing(pipeline)
    assert len(pipeline.restored_keys(photo.id)) == 3

    report = pipeline.dlq.wiring.restore_giveup().settle_dead_message(message.model_dump_json())

    assert report.outcome is GiveUpOutcome.REVERTED
    assert pipeline.restored_keys(photo.id) == []
    assert pipeline.photo(photo.id).status == "uploaded"
    assert pipeline.attempt(attempt_id).params["error"]["code"] == "retries_exhausted"


# --- Sweeper ---------------------------------------------------------------------------------


def _age_claim(engine: Engine, photo: StoredPhoto, seconds: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(photos)
            .where(photos.c.id == photo.id)
            .values(updated_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


def test_the_sweeper_settles_only_photos_idle_past_the_longest_pipeline_time(
    pipeline: Pipeline,
) -> None:
    lost = pipeline.add_photo(old_photo())
    lost_attempt = pipeline.request_restore(lost)
    pipeline.sqs.purge_queue(QueueUrl=pipeline.settings.queue_url)  # the message is lost
    busy = pipeline.add_photo(old_photo())
    pipeline.request_restore(busy)
    _age_claim(pipeline.engine, lost, pipeline.settings.stuck_after_seconds + 5)
    _age_claim(pipeline.engine, busy, pipeline.settings.stuck_after_seconds - 120)

    sweeper = load_handler("sweeper", pipeline.settings)
    result = sweeper.lambda_handler({"source": "aws.events"}, LocalLambdaContext("sweeper"))

    assert str(lost.id) in result["settled"]
    assert str(busy.id) not in result["settled"]
    assert pipeline.photo(lost.id).status == "uploaded"
    assert pipeline.photo(busy.id).status == "processing"
    assert pipeline.attempt(lost_attempt).params["error"]["code"] == "stuck_in_processing"


def test_a_worker_delivery_restarts_the_sweeper_clock(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    pipeline.request_restore(photo)
    _age_claim(pipeline.engine, photo, pipeline.settings.stuck_after_seconds + 5)
    pipeline.standin.enqueue(Behaviour.error(503), Behaviour.error(503))
    assert pipeline.worker_source.poll_once().failed == 1  # transient: message kept

    giveup = pipeline.dlq.wiring.restore_giveup()
    assert photo.id not in [r.photo_id for r in giveup.sweep_stuck_photos()]


def test_an_unreachable_database_is_a_503_for_every_use_case(settings: Settings, sqs: Any) -> None:
    from photo_restore.db import create_db_engine

    # Port 9 (discard) on loopback: nothing listens, the connect is refused at once.
    unreachable = create_db_engine("postgresql+pg8000://u@127.0.0.1:9/db", ssl_mode="disable")
    requests = requests_with(settings, unreachable, RestoreQueue(sqs, settings.queue_url))
    giveup = RestoreGiveUp(
        repository=SqlRepository(unreachable),
        storage=ObjectStorage(boto3.client("s3"), settings.bucket_name),
        settings=settings,
    )
    caller, photo_id = Caller("someone", None), uuid.uuid4()
    calls: list[Callable[[], object]] = [
        lambda: requests.request_restore(caller, photo_id).body,
        lambda: requests.get_photo(caller, photo_id),
        lambda: requests.list_restores(caller, photo_id),
        lambda: requests.select_restore(caller, photo_id, uuid.uuid4()),
        # The give-up path too (it had no mapping before the repository owned it).
        lambda: giveup.sweep_stuck_photos(),
        lambda: giveup.settle_dead_message(
            RestoreMessage(photo_id=photo_id, restore_attempt_id=uuid.uuid4()).model_dump_json()
        ),
    ]
    for call in calls:
        with pytest.raises(DependencyUnavailable) as raised:
            call()
        assert answered_status(raised.value) == 503
    assert queue_size(sqs, settings.queue_url) == 0


def test_a_stored_image_is_deleted_when_the_retry_fails_permanently(pipeline: Pipeline) -> None:
    photo, attempt_id, _ = crash_after_storing(pipeline)
    assert len(pipeline.restored_keys(photo.id)) == 3
    # Without its recorded answer (as if its URL had expired) the retry calls the provider again
    # (else it would
    # resume at the download: tests/integration/test_pay_once.py).
    with pipeline.engine.begin() as conn:
        conn.execute(
            text("UPDATE restore_attempts SET params = (params::jsonb - 'provider_answer')::json "
                 "WHERE id = :id"),
            {"id": attempt_id},
        )  # fmt: skip

    pipeline.standin.enqueue(Behaviour.error(400, "refused on the retry"))
    pipeline.drain()

    assert pipeline.attempt(attempt_id).params["error"]["code"] == "provider_rejected"
    assert pipeline.photo(photo.id).status == "uploaded"
    assert pipeline.restored_keys(photo.id) == []


def test_a_late_message_of_a_failed_attempt_removes_what_a_dead_delivery_left(
    pipeline: Pipeline,
) -> None:
    photo, attempt_id, message = crash_after_storing(pipeline)
    giveup = pipeline.dlq.wiring.restore_giveup()
    # The give-up failed the attempt; pretend its delete was lost, and a copy arrives later.
    giveup.settle_dead_message(message.model_dump_json())
    key = restored_key_of(pipeline, attempt_id)
    pipeline.s3.put_object(Bucket=pipeline.settings.bucket_name, Key=key, Body=b"left over")

    pipeline.sqs.send_message(
        QueueUrl=pipeline.settings.queue_url, MessageBody=message.model_dump_json()
    )
    pipeline.drain()

    assert pipeline.restored_keys(photo.id) == []
    assert pipeline.photo(photo.id).status == "uploaded"


def restored_key_of(pipeline: Pipeline, attempt_id: uuid.UUID) -> str:
    return restored_key(pipeline.attempt(attempt_id))


def test_the_sweeper_settles_a_processing_photo_that_has_no_attempt(
    engine: Engine, settings: Settings
) -> None:
    photo = insert_photo(engine, status="processing")
    _age_claim(engine, photo, settings.stuck_after_seconds + 5)
    giveup = giveup_in_the_future(settings, engine, 0)
    reports = [r for r in giveup.sweep_stuck_photos() if r.photo_id == photo.id]
    assert [r.outcome for r in reports] == [GiveUpOutcome.REVERTED]
    assert photo_status(engine, photo.id) == "uploaded"


def test_an_unexpected_worker_error_is_retried_and_named_for_the_dlq(pipeline: Pipeline) -> None:
    from photo_restore.restore_runs import RestoreRun

    def broken_preprocess(data: bytes) -> Any:
        raise RuntimeError("a bug with SELECT secrets FROM somewhere in its message")

    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    settings = pipeline.settings
    run = RestoreRun(
        repository=SqlRepository(pipeline.engine),
        storage=ObjectStorage(pipeline.s3, settings.bucket_name),
        queue=RestoreQueue(pipeline.sqs, settings.queue_url),
        editor=None,  # type: ignore[arg-type]
        preprocess=broken_preprocess,
        fetch_result=lambda url: b"",
        settings=settings,
    )
    message = RestoreMessage(photo_id=photo.id, restore_attempt_id=attempt_id)
    with pytest.raises(RuntimeError):
        run.run(message)

    noted = pipeline.attempt(attempt_id).params["last_transient_error"]
    assert noted["code"] == "unexpected_error"
    assert noted["message"] == "RuntimeError"  # never the details
    report = pipeline.dlq.wiring.restore_giveup().settle_dead_message(message.model_dump_json())
    assert report.outcome is GiveUpOutcome.REVERTED
    assert "RuntimeError" in pipeline.attempt(attempt_id).params["error"]["message"]

"""The restore API a frontend ships on, end to end on Postgres, moto (S3, SQS, EventBridge) and the
stand-in: before/after, Idempotency-Key, cancel, progress, events, quota, errors, pagination."""

from __future__ import annotations

import io
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import httpx
import pytest
from PIL import Image
from sqlalchemy import Engine, delete, select

from photo_restore.errors import IdempotencyInProgress, QuotaExceeded, RestoreError
from photo_restore.events import EventBridgePublisher, RestoreEvent
from photo_restore.http_errors import answered_status
from photo_restore.models import inference_times, jobs
from photo_restore.queue import RestoreQueue
from photo_restore.repository import SqlRepository
from photo_restore.restore_requests import Acceptance, Caller, RestoreRequests
from photo_restore.settings import Settings
from photo_restore.storage import ObjectStorage
from photo_restore_tools.local.services import LocalResources
from photo_restore_tools.local.siliconflow_standin import Behaviour
from tests.helpers import records
from tests.helpers.handlers import load_handler
from tests.helpers.images import old_photo
from tests.helpers.pipeline import Pipeline

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)

CONCURRENT = 32


def fetch_jpeg(url: str) -> tuple[int, int]:
    """GET a presigned URL as a browser would (moto serves it) and decode it."""
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    with Image.open(io.BytesIO(answer.content)) as image:
        assert image.format == "JPEG"
        return image.size


def test_a_restored_photo_shows_before_and_after_a_browser_can_display(
    pipeline: Pipeline,
) -> None:

    photo = pipeline.add_photo(old_photo((800, 600), fmt="HEIF"), mime_type="image/heic")
    attempt_id = pipeline.request_restore(photo)
    pipeline.drain()

    status, body = pipeline.call_api("GET", f"/photos/{photo.id}", photo.owner_id)
    assert status == 200 and body["selected_restore_id"] == str(attempt_id)
    before, after = body["before"], body["after"]
    # The HEIC original is shown as the upright JPEG the model saw, at its size.
    assert fetch_jpeg(before["url"]) == (before["width"], before["height"]) == (800, 600)
    assert fetch_jpeg(after["url"]) == (after["width"], after["height"])
    assert body["urls_expire_at"] and body["estimated_seconds_remaining"] is None
    latest = body["latest_attempt"]
    assert latest["phase"] == "succeeded" and latest["after"] == after
    assert latest["started_at"] <= latest["finished_at"]
    assert max(fetch_jpeg(latest["thumbnail_url"])) == 512  # the result is near 1 MP
    with pipeline.engine.connect() as conn:
        thumbnail = conn.execute(
            select(jobs.c.thumbnail_s3_key).where(jobs.c.id == photo.id)
        ).scalar_one()
    assert thumbnail == pipeline.attempt(attempt_id).thumbnail_key


def test_the_same_idempotency_key_replays_the_first_202_even_once_ready(
    pipeline: Pipeline, resources: LocalResources
) -> None:
    photo = pipeline.add_photo(old_photo())
    path = f"/photos/{photo.id}/restore"
    headers = {"Idempotency-Key": "tap-1f2e"}
    status, first_headers, first = pipeline.call_api_with_headers(
        "POST", path, photo.owner_id, headers=headers
    )
    assert status == 202 and "idempotent-replayed" not in first_headers
    pipeline.drain()
    assert pipeline.photo(photo.id).status == "ready"

    status, again_headers, again = pipeline.call_api_with_headers(
        "POST", path, photo.owner_id, headers=headers
    )
    assert (status, again) == (202, first)
    assert again_headers["idempotent-replayed"] == "true"
    assert len(records.attempts_of(pipeline.engine, photo.id)) == 1
    assert len(pipeline.standin.requests) == 1  # no second message was sent

    other = pipeline.add_photo(old_photo(), owner_id=photo.owner_id)
    status, reused = pipeline.call_api(
        "POST", f"/photos/{other.id}/restore", photo.owner_id, headers=headers
    )
    assert (status, reused["error"]) == (422, "idempotency_key_reused")
    status, invalid = pipeline.call_api(
        "POST", path, photo.owner_id, headers={"Idempotency-Key": "x" * 256}
    )
    assert (status, invalid["error"], invalid["field"]) == (
        422,
        "invalid_request",
        "Idempotency-Key",
    )


def requests_on(settings: Settings, engine: Engine, sqs: Any, **overrides: Any) -> RestoreRequests:
    settings = settings.model_copy(update=overrides)
    return RestoreRequests(
        SqlRepository(engine),
        RestoreQueue(sqs, settings.queue_url),
        ObjectStorage(boto3.client("s3"), settings.bucket_name),
        settings,
    )


def race(call: Any, arguments: list[Any]) -> list[Acceptance | RestoreError]:
    """One thread per argument, each on its own pooled connection, released at one instant."""
    start = threading.Barrier(len(arguments))

    def one(argument: Any) -> Acceptance | RestoreError:
        start.wait()
        try:
            result: Acceptance = call(argument)
            return result
        except RestoreError as error:
            return error

    with ThreadPoolExecutor(len(arguments)) as pool:
        return list(pool.map(one, arguments))


def sent_messages(sqs: Any, queue_url: str) -> list[str]:
    bodies = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60
    ).get("Messages"):
        bodies += [m["Body"] for m in batch]
    return bodies


def test_32_concurrent_requests_with_one_key_make_one_attempt_and_one_message(
    engine: Engine, settings: Settings, sqs: Any
) -> None:
    requests = requests_on(settings, engine, sqs)
    photo = records.insert_photo(engine, status="uploaded")
    caller = Caller(photo.owner_id, None)
    outcomes = race(
        lambda _: requests.request_restore(caller, photo.id, idempotency_key="one-tap"),
        list(range(CONCURRENT)),
    )

    accepted = [o for o in outcomes if isinstance(o, Acceptance)]
    waiting = [o for o in outcomes if isinstance(o, IdempotencyInProgress)]
    assert len(accepted) + len(waiting) == CONCURRENT  # nothing else: no 409 already_processing
    assert [a.replayed for a in accepted].count(False) == 1
    assert len({a.body.restore_attempt_id for a in accepted}) == 1
    assert len(records.attempts_of(engine, photo.id)) == 1
    assert len(sent_messages(sqs, settings.queue_url)) == 1
    # Once accepted, every retry is a replay.
    later = requests.request_restore(caller, photo.id, idempotency_key="one-tap")
    assert later.replayed and later.body == accepted[0].body


def test_32_concurrent_requests_on_32_photos_with_a_quota_of_5_accept_exactly_5(
    engine: Engine, settings: Settings, sqs: Any
) -> None:
    requests = requests_on(settings, engine, sqs, daily_restores_per_user=5)
    owner = f"user-{uuid.uuid4()}"
    photos = [records.insert_photo(engine, owner_id=owner) for _ in range(CONCURRENT)]
    caller = Caller(owner, None)
    outcomes = race(lambda photo: requests.request_restore(caller, photo.id), photos)

    accepted = [o for o in outcomes if isinstance(o, Acceptance)]
    refused = [o for o in outcomes if isinstance(o, QuotaExceeded)]
    assert (len(accepted), len(refused)) == (5, CONCURRENT - 5)
    assert all(0 < r.retry_after_seconds <= 86_400 for r in refused)
    assert len(sent_messages(sqs, settings.queue_url)) == 5
    statuses = [records.photo(engine, p.id).status.value for p in photos]
    assert statuses.count("processing") == 5 and statuses.count("uploaded") == CONCURRENT - 5


def test_over_the_quota_is_a_429_with_retry_after(pipeline: Pipeline) -> None:
    pipeline.api = load_handler(
        "api", pipeline.settings.model_copy(update={"daily_restores_per_user": 1})
    )
    first = pipeline.add_photo(old_photo())
    second = pipeline.add_photo(old_photo(), owner_id=first.owner_id)
    pipeline.request_restore(first)
    status, headers, body = pipeline.call_api_with_headers(
        "POST", f"/photos/{second.id}/restore", first.owner_id
    )
    assert (status, body["error"]) == (429, "quota_exceeded")
    assert int(headers["retry-after"]) == body["retry_after_seconds"] > 86_000
    assert set(body) == {"error", "message", "retryable", "retry_after_seconds"}


def test_cancel_puts_the_photo_back_and_the_worker_stores_nothing(
    pipeline: Pipeline, resources: LocalResources
) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    status, view = pipeline.call_api("DELETE", f"/photos/{photo.id}/restore", photo.owner_id)
    assert status == 200 and view["status"] == "uploaded"
    assert view["latest_attempt"]["phase"] == "canceled"
    assert view["latest_attempt"]["error"]["code"] == "canceled"

    pipeline.drain()  # its message arrives after the cancel
    assert pipeline.photo(photo.id).status == "uploaded"
    assert pipeline.standin.requests == [] and pipeline.restored_keys(photo.id) == []
    [event] = pipeline.published_events(resources.events_queue_url)
    assert event["source"] == "photo-restore" and event["detail-type"] == "RestoreCanceled"
    assert event["detail"]["restore_attempt_id"] == str(attempt_id)

    status, body = pipeline.call_api("DELETE", f"/photos/{photo.id}/restore", photo.owner_id)
    assert (status, body["error"]) == (409, "not_processing")
    status, body = pipeline.call_api("DELETE", f"/photos/{photo.id}/restore", "someone-else")
    assert (status, body["error"]) == (404, "photo_not_found")


def test_a_cancel_while_the_provider_runs_leaves_no_orphan(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    # The provider's answer is held until the cancel is in: no race with a delay's length.
    pipeline.standin.enqueue(Behaviour.held())
    worker = threading.Thread(target=pipeline.drain)
    worker.start()
    try:
        assert pipeline.standin.wait_for_held(1), "the worker never reached the provider"
        status, body = pipeline.call_api("GET", f"/photos/{photo.id}", photo.owner_id)
        assert body["latest_attempt"]["phase"] == "generating"
        status, _ = pipeline.call_api("DELETE", f"/photos/{photo.id}/restore", photo.owner_id)
        assert status == 200
    finally:
        pipeline.standin.release_held()
        worker.join()

    assert len(pipeline.standin.requests) == 1  # made, and not refundable
    assert pipeline.restored_keys(photo.id) == []
    assert pipeline.photo(photo.id).status == "uploaded"
    assert pipeline.attempt(attempt_id).state.value == "canceled"


def test_each_ending_is_published_to_the_bus_after_its_commit(
    pipeline: Pipeline, resources: LocalResources
) -> None:
    done = pipeline.add_photo(old_photo())
    done_attempt = pipeline.request_restore(done)
    pipeline.drain()
    refused = pipeline.add_photo(old_photo())
    pipeline.request_restore(refused)
    pipeline.standin.enqueue(Behaviour.content_refused())
    pipeline.drain()

    events = {
        e["detail"]["photo_id"]: e for e in pipeline.published_events(resources.events_queue_url)
    }
    succeeded, failed = events[str(done.id)], events[str(refused.id)]
    attempt = pipeline.attempt(done_attempt)
    assert succeeded["detail-type"] == "RestoreSucceeded"
    # The bus delivers the detail exactly as built (its fields: tests/unit/test_restore_runs.py).
    assert succeeded["detail"] == RestoreEvent.ended(attempt, done.owner_id).detail
    assert succeeded["detail"]["result_keys"]["restored"] == attempt.s3_key
    assert failed["detail-type"] == "RestoreFailed"
    assert failed["detail"]["error_code"] == "provider_rejected"
    assert len(events) == 2


def test_a_bus_that_refuses_never_loses_the_restoration_and_the_redelivery_publishes(
    pipeline: Pipeline, resources: LocalResources
) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    pipeline.reload_worker(event_bus_name="no-such-bus")
    assert pipeline.worker_source.poll_once().failed == 1  # raised: SQS redelivers it
    assert pipeline.photo(photo.id).status == "ready"
    assert not pipeline.attempt(attempt_id).event_published

    pipeline.reload_worker(event_bus_name=resources.event_bus_name)
    pipeline.drain()
    [event] = pipeline.published_events(resources.events_queue_url)
    assert event["detail-type"] == "RestoreSucceeded"
    assert pipeline.attempt(attempt_id).event_published
    assert len(pipeline.standin.requests) == 1  # the restoration was not redone


def test_the_dlq_handler_publishes_the_failure_it_records(
    pipeline: Pipeline, resources: LocalResources
) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    pipeline.standin.enqueue(*[Behaviour.error(503)] * 6)
    pipeline.drain()
    pipeline.drain(pipeline.dlq_source)
    [event] = pipeline.published_events(resources.events_queue_url)
    assert (event["detail-type"], event["detail"]["error_code"]) == (
        "RestoreFailed",
        "retries_exhausted",
    )
    assert event["detail"]["restore_attempt_id"] == str(attempt_id)


def test_the_bus_publisher_reports_a_refusal_as_retryable(resources: LocalResources) -> None:
    from photo_restore.events import EventPublishFailed

    publisher = EventBridgePublisher(boto3.client("events"), "no-such-bus")
    with pytest.raises(EventPublishFailed) as refused:
        publisher.publish(RestoreEvent("RestoreSucceeded", {"photo_id": "p"}))
    assert answered_status(refused.value) == 503


def test_the_estimate_comes_from_recent_inference_times(pipeline: Pipeline) -> None:
    # The sample is global (the newest times of the whole service): other tests' slow answers
    # must not be in it. A test of the estimate starts it empty.
    with pipeline.engine.begin() as conn:
        conn.execute(delete(inference_times))
    photo = pipeline.add_photo(old_photo())
    for _ in range(3):
        pipeline.request_restore(photo)
        pipeline.drain()
    pipeline.request_restore(photo)
    status, body = pipeline.call_api("GET", f"/photos/{photo.id}", photo.owner_id)
    assert status == 200 and body["latest_attempt"]["phase"] == "queued"
    assert body["estimated_seconds_remaining"] == 1  # the stand-in answers in about 0.5 s


def test_restores_are_paginated_through_the_api(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    made = []
    for _ in range(3):
        made.append(str(pipeline.request_restore(photo)))
        pipeline.drain()
    path = f"/photos/{photo.id}/restores"
    status, first = pipeline.call_api("GET", path, photo.owner_id, raw_query="limit=2")
    assert status == 200 and [r["restore_attempt_id"] for r in first["restores"]] == made[:0:-1]
    assert first["selected_restore_id"] == made[-1]
    query = f"limit=2&cursor={first['next_cursor']}"
    status, second = pipeline.call_api("GET", path, photo.owner_id, raw_query=query)
    assert [r["restore_attempt_id"] for r in second["restores"]] == made[:1]
    assert second["next_cursor"] is None

    for query, field in (("limit=0", "limit"), ("limit=101", "limit"), ("cursor=zzz", "cursor")):
        status, body = pipeline.call_api("GET", path, photo.owner_id, raw_query=query)
        assert (status, body["error"], body["field"]) == (422, "invalid_request", field)


def test_a_json_body_sent_as_a_form_is_read_as_json(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    pipeline.drain()
    path = f"/photos/{photo.id}/selected-restore"
    form = {"content-type": "application/x-www-form-urlencoded"}
    body = f'{{"restore_attempt_id": "{attempt_id}"}}'.encode()
    status, selected = pipeline.call_api("PUT", path, photo.owner_id, body=body, headers=form)
    assert status == 200 and selected["selected_restore_id"] == str(attempt_id)
    status, refused = pipeline.call_api("PUT", path, photo.owner_id, body=b"a=b", headers=form)
    assert (status, refused["error"]) == (400, "unreadable_body")
    assert "extra_forbidden" not in refused["message"]


def test_a_failed_attempt_shows_a_message_for_the_user_and_keeps_the_detail(
    pipeline: Pipeline,
) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    pipeline.standin.enqueue(Behaviour.content_refused())
    pipeline.drain()
    status, body = pipeline.call_api("GET", f"/photos/{photo.id}/restores", photo.owner_id)
    assert status == 200
    error = body["restores"][0]["error"]
    assert set(error) == {"code", "retryable", "message"}
    assert error["code"] == "provider_rejected" and error["retryable"] is False
    recorded = pipeline.attempt(attempt_id).params["error"]
    assert recorded["provider_trace_id"] not in str(body)
    assert recorded["message"] not in str(body)

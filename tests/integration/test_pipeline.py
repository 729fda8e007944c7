"""Whole-pipeline behaviour: API -> SQS -> worker -> SiliconFlow stand-in -> S3 -> Postgres."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest
from PIL import Image

from photo_restore_tools.local.siliconflow_standin import Behaviour
from tests.helpers.images import old_photo, rotated_jpeg
from tests.helpers.pipeline import Pipeline, queue_size

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)


def test_a_restore_request_ends_with_a_stored_restoration_and_a_ready_photo(
    pipeline: Pipeline,
) -> None:

    photo = pipeline.add_photo(old_photo((4000, 3000)))
    attempt_id = pipeline.request_restore(photo)
    pipeline.drain()

    settled = pipeline.photo(photo.id)
    attempt = pipeline.attempt(attempt_id)
    assert settled.status == "ready"
    assert attempt.s3_key.startswith(f"restored/{photo.id}/")
    assert attempt.s3_key.endswith(".jpg")
    assert settled.processed_key == attempt.s3_key
    assert pipeline.restored_keys(photo.id) == pipeline.keys_of(attempt)
    assert len(pipeline.keys_of(attempt)) == 3
    stored = pipeline.s3.get_object(Bucket=pipeline.settings.bucket_name, Key=attempt.s3_key)
    assert Image.open(io.BytesIO(stored["Body"].read())).format == "JPEG"

    params = attempt.params
    # The seed's fields, plus the model (set with the attempt), the provider's trace id, the
    # progress times, the images beside the restoration, and the event's bookkeeping.
    assert set(params) == {
        "phase",
        "phase_started_at",
        "started_at",
        "finished_at",
        "before_key",
        "thumbnail_key",
        "event_published_at",
        "provider",
        "model",
        "prompt",
        "num_inference_steps",
        "guidance_scale",
        "guidance_field",
        "inference_time_seconds",
        "seed",
        "preprocessed",
        "provider_trace_id",
        "result_dimensions",
        "result_bytes",
        "provenance",
        "deliveries",
        # What the provider answered, kept the moment it arrived, and the calls it cost.
        "provider_answer",
        "provider_calls",
        "faithfulness",
    }
    assert params["provider"] == "siliconflow"
    assert params["prompt"] == pipeline.settings.restore_prompt
    assert params["num_inference_steps"] == 20
    # The guidance strength of the run, and the field that carried it (Qwen-Image: cfg).
    assert (params["guidance_scale"], params["guidance_field"]) == (4.0, "cfg")
    # What came back: smaller than the submission, the stand-in's ~1 MP, never assumed.
    assert params["result_dimensions"] == [1184, 896]
    stored_bytes = pipeline.s3.head_object(Bucket=pipeline.settings.bucket_name, Key=attempt.s3_key)
    assert params["result_bytes"] == stored_bytes["ContentLength"]
    assert isinstance(params["inference_time_seconds"], float)
    assert isinstance(params["seed"], int)
    assert params["preprocessed"] == {
        "resized": True,
        "original_dimensions": [4000, 3000],
        "submitted_dimensions": [3584, 2688],
        "format_converted": False,
        "original_format": "JPEG",
    }
    assert params["provider_trace_id"]
    assert params["deliveries"] == 1
    assert "error" not in params

    sent = pipeline.standin.requests[-1]
    assert sent["model"] == "Qwen/Qwen-Image-Edit"
    assert sent["cfg"] == 4.0
    assert "image_size" not in sent and "guidance_scale" not in sent
    # Beside the restoration: the upright JPEG the model saw (the "before" view)...
    assert attempt.before_key
    before = pipeline.s3.get_object(Bucket=pipeline.settings.bucket_name, Key=attempt.before_key)
    with Image.open(io.BytesIO(before["Body"].read())) as before_image:
        assert (before_image.format, before_image.size) == ("JPEG", (3584, 2688))
    # ...and the gallery thumbnail, longest side 512.
    assert attempt.thumbnail_key
    thumb = pipeline.s3.get_object(Bucket=pipeline.settings.bucket_name, Key=attempt.thumbnail_key)
    with Image.open(io.BytesIO(thumb["Body"].read())) as thumbnail:
        assert thumbnail.format == "JPEG" and max(thumbnail.size) == 512

    status, body = pipeline.call_api("GET", f"/photos/{photo.id}", photo.owner_id)
    assert status == 200
    assert body["status"] == "ready"
    assert body["latest_attempt"]["outcome"] == "succeeded"
    assert attempt.s3_key in body["restored_image_url"]


def test_the_original_is_never_modified(pipeline: Pipeline) -> None:
    original = old_photo()
    photo = pipeline.add_photo(original)
    pipeline.request_restore(photo)
    pipeline.drain()
    stored = pipeline.s3.get_object(Bucket=pipeline.settings.bucket_name, Key=photo.original_key)
    assert stored["Body"].read() == original


def test_heic_originals_are_converted(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo((800, 600), fmt="HEIF"), mime_type="image/heic")
    attempt_id = pipeline.request_restore(photo)
    pipeline.drain()
    preprocessed = pipeline.attempt(attempt_id).params["preprocessed"]
    assert pipeline.photo(photo.id).status == "ready"
    assert preprocessed["original_format"] == "HEIC"
    assert preprocessed["format_converted"] is True


def test_exif_rotated_originals_are_submitted_upright(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(rotated_jpeg((600, 400), orientation=6))
    attempt_id = pipeline.request_restore(photo)
    pipeline.drain()
    preprocessed = pipeline.attempt(attempt_id).params["preprocessed"]
    assert preprocessed["original_dimensions"] == [400, 600]
    assert preprocessed["submitted_dimensions"] == [400, 600]


def test_data_uri_transport_needs_no_reachable_bucket(pipeline: Pipeline) -> None:
    pipeline.reload_worker(image_transport="data_uri")
    photo = pipeline.add_photo(old_photo())
    pipeline.request_restore(photo)
    pipeline.drain()
    assert pipeline.photo(photo.id).status == "ready"
    assert pipeline.standin.requests[-1]["image"].startswith("data:image/jpeg;base64,")


def test_a_duplicate_delivery_changes_nothing(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    body = pipeline.sqs.receive_message(QueueUrl=pipeline.settings.queue_url)["Messages"][0]
    pipeline.sqs.change_message_visibility(
        QueueUrl=pipeline.settings.queue_url,
        ReceiptHandle=body["ReceiptHandle"],
        VisibilityTimeout=0,
    )
    pipeline.sqs.send_message(QueueUrl=pipeline.settings.queue_url, MessageBody=body["Body"])
    pipeline.drain()
    first = pipeline.attempt(attempt_id)

    # ...and a late copy arriving after the photo is ready again changes nothing either.
    pipeline.sqs.send_message(QueueUrl=pipeline.settings.queue_url, MessageBody=body["Body"])
    pipeline.drain()

    assert len(pipeline.standin.requests) == 1
    assert pipeline.attempt(attempt_id) == first
    assert pipeline.photo(photo.id).status == "ready"
    assert pipeline.restored_keys(photo.id) == pipeline.keys_of(first)


def test_a_message_for_an_older_attempt_cannot_settle_the_newer_one(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    old_attempt = pipeline.request_restore(photo)
    pipeline.drain()
    new_attempt = pipeline.request_restore(photo)
    stale = {"photo_id": str(photo.id), "restore_attempt_id": str(old_attempt)}
    pipeline.sqs.send_message(QueueUrl=pipeline.settings.queue_url, MessageBody=_json(stale))
    pipeline.drain()
    assert pipeline.photo(photo.id).processed_key == pipeline.attempt(new_attempt).s3_key
    assert pipeline.restored_keys(photo.id) == pipeline.keys_of(
        pipeline.attempt(old_attempt), pipeline.attempt(new_attempt)
    )


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        (Behaviour.error(400, "image is too small"), "provider_rejected"),
        (Behaviour.model_not_found(), "provider_misconfigured"),
        (
            Behaviour.invalid_parameter("cfg must be a number in [0.1, 20]"),
            "provider_misconfigured",
        ),
        # Its words name the image: this photo's refusal (no keyword decides the class).
        (Behaviour.content_refused(), "provider_rejected"),
        (Behaviour.error(401, "invalid api key"), "provider_auth_failed"),
        (Behaviour.error(403, "account not verified"), "provider_auth_failed"),
        (Behaviour.error(404), "provider_misconfigured"),
        (Behaviour.empty_images(), "invalid_provider_result"),
        (Behaviour.malformed_body(), "invalid_provider_result"),
        (Behaviour.not_an_image_result(), "invalid_provider_result"),
    ],
    ids=[
        "400",
        "400-20012",
        "400-parameter",
        "400-content",
        "401",
        "403",
        "404",
        "empty-images",
        "malformed-body",
        "not-an-image",
    ],
)
def test_permanent_provider_failures_fail_the_attempt_at_once(
    pipeline: Pipeline, behaviour: Behaviour, code: str
) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    pipeline.standin.enqueue(behaviour)
    pipeline.drain()

    error = pipeline.attempt(attempt_id).params["error"]
    assert error["code"] == code
    assert error["kind"] == "permanent"
    assert error["message"]
    assert pipeline.photo(photo.id).status == "uploaded"
    assert len(pipeline.standin.requests) == 1  # no retry of a permanent failure
    assert queue_size(pipeline.sqs, pipeline.settings.dlq_url) == 0
    assert pipeline.restored_keys(photo.id) == []


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        (Behaviour.error(401, "invalid api key"), "provider_auth_failed"),
        (Behaviour.model_not_found(), "provider_misconfigured"),
    ],
    ids=["refused-key", "unknown-model"],
)
def test_a_configuration_error_emits_the_metric_its_alarm_watches(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], behaviour: Behaviour, code: str
) -> None:
    photo = pipeline.add_photo(old_photo())
    pipeline.request_restore(photo)
    pipeline.standin.enqueue(behaviour)
    capsys.readouterr()
    pipeline.drain()
    emitted = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith('{"_aws"')
    ]
    [metrics] = [m for m in emitted if f"RestoreFailed_{code}" in m]
    # Not the photo's fault: it goes back to uploaded, so its user may simply ask again.
    assert pipeline.photo(photo.id).status == "uploaded"
    assert metrics["service"] == "photo-restore-worker"
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]


def test_the_provider_message_and_trace_id_are_kept_on_the_attempt(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    pipeline.standin.enqueue(Behaviour.error(400, "image is too small"))
    pipeline.drain()
    error = pipeline.attempt(attempt_id).params["error"]
    assert "image is too small" in error["message"]
    assert error["provider_trace_id"]


@pytest.mark.parametrize(
    ("original", "code"),
    [
        (b"%PDF-1.7 not a photo", "unsupported_image"),
        (b"", "unsupported_image"),
        (old_photo()[:2000], "corrupt_image"),
    ],
    ids=["pdf", "empty", "truncated-jpeg"],
)
def test_bad_originals_fail_with_a_classified_error(
    pipeline: Pipeline, original: bytes, code: str
) -> None:
    photo = pipeline.add_photo(original)
    attempt_id = pipeline.request_restore(photo)
    pipeline.drain()
    assert pipeline.attempt(attempt_id).params["error"]["code"] == code
    assert pipeline.photo(photo.id).status == "uploaded"
    assert pipeline.standin.requests == []


def test_a_missing_original_fails_the_attempt(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    pipeline.s3.delete_object(Bucket=pipeline.settings.bucket_name, Key=photo.original_key)
    attempt_id = pipeline.request_restore(photo)
    pipeline.drain()
    assert pipeline.attempt(attempt_id).params["error"]["code"] == "original_missing"
    assert pipeline.photo(photo.id).status == "uploaded"


def test_provider_5xx_is_retried_by_sqs_and_then_succeeds(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    # Two 503s use up the client's own retry (1); SQS redelivers; the third call succeeds.
    pipeline.standin.enqueue(Behaviour.error(503), Behaviour.error(503))
    pipeline.drain()
    assert pipeline.photo(photo.id).status == "ready"
    params = pipeline.attempt(attempt_id).params
    assert "error" not in params
    assert "last_transient_error" not in params  # history the success made moot
    assert len(pipeline.standin.requests) == 3


def test_rate_limits_defer_without_using_up_the_message_receives(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    limit = pipeline.settings.max_receive_count + 2
    pipeline.standin.enqueue(*[Behaviour.rate_limited(retry_after=1) for _ in range(limit)])
    pipeline.drain(timeout=60)
    assert pipeline.photo(photo.id).status == "ready"
    assert "error" not in pipeline.attempt(attempt_id).params
    assert len(pipeline.standin.requests) == limit + 1
    assert queue_size(pipeline.sqs, pipeline.settings.dlq_url) == 0


def test_endless_rate_limiting_ends_in_a_classified_failure(pipeline: Pipeline) -> None:
    pipeline.reload_worker(max_rate_limit_deferrals=1)
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    pipeline.standin.enqueue(*[Behaviour.rate_limited(retry_after=1) for _ in range(3)])
    pipeline.drain(timeout=30)
    assert pipeline.attempt(attempt_id).params["error"]["code"] == "provider_rate_limited"
    assert pipeline.photo(photo.id).status == "uploaded"


def test_work_that_keeps_failing_goes_to_the_dlq_and_the_dlq_handler_reverts_the_photo(
    pipeline: Pipeline,
) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    pipeline.standin.enqueue(*[Behaviour.error(500, "boom") for _ in range(20)])
    pipeline.drain()
    assert pipeline.photo(photo.id).status == "processing"  # SQS gave up; DLQ not yet run
    assert queue_size(pipeline.sqs, pipeline.settings.dlq_url) == 1

    pipeline.drain(pipeline.dlq_source)

    error = pipeline.attempt(attempt_id).params["error"]
    assert error["code"] == "retries_exhausted"
    assert "boom" in error["message"]
    # The restore queue's deliveries, whatever the DLQ's own receive count says.
    assert "after 3 deliveries" in error["message"]
    assert pipeline.photo(photo.id).status == "uploaded"


def test_the_dlq_handler_acknowledges_malformed_and_unknown_messages(pipeline: Pipeline) -> None:
    for body in ("not json", '{"photo_id": 1}', _json(_unknown_message())):
        pipeline.sqs.send_message(QueueUrl=pipeline.settings.dlq_url, MessageBody=body)
    pipeline.drain(pipeline.dlq_source)
    assert queue_size(pipeline.sqs, pipeline.settings.dlq_url) == 0


def test_the_dlq_handler_is_idempotent(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    pipeline.drain()  # succeeds
    message = {"photo_id": str(photo.id), "restore_attempt_id": str(attempt_id)}
    pipeline.sqs.send_message(QueueUrl=pipeline.settings.dlq_url, MessageBody=_json(message))
    pipeline.drain(pipeline.dlq_source)
    assert pipeline.photo(photo.id).status == "ready"
    assert "error" not in pipeline.attempt(attempt_id).params
    assert pipeline.restored_keys(photo.id) == pipeline.keys_of(pipeline.attempt(attempt_id))


def test_the_worker_acknowledges_messages_that_are_not_restore_messages(
    pipeline: Pipeline,
) -> None:
    pipeline.sqs.send_message(QueueUrl=pipeline.settings.queue_url, MessageBody="{}")
    pipeline.drain()
    assert queue_size(pipeline.sqs, pipeline.settings.dlq_url) == 0


def test_a_message_whose_attempt_is_not_visible_is_retried_not_dropped(
    pipeline: Pipeline,
) -> None:
    message = _unknown_message()
    pipeline.sqs.send_message(QueueUrl=pipeline.settings.queue_url, MessageBody=_json(message))
    stats = pipeline.worker_source.poll_once()
    assert stats.failed == 1
    pipeline.drain()
    # After max receives it is dead-lettered, where the DLQ handler logs and drops it.
    assert queue_size(pipeline.sqs, pipeline.settings.dlq_url) == 1


def test_one_bad_message_does_not_make_its_batch_run_again(pipeline: Pipeline) -> None:
    photos = [pipeline.add_photo(old_photo()) for _ in range(3)]
    for photo in photos:
        pipeline.request_restore(photo)
    pipeline.sqs.send_message(
        QueueUrl=pipeline.settings.queue_url, MessageBody=_json(_unknown_message())
    )
    stats = pipeline.worker_source.poll_once()
    while stats.received < 4:
        more = pipeline.worker_source.poll_once()
        stats.received += more.received
        stats.succeeded += more.succeeded
        stats.failed += more.failed
    assert (stats.succeeded, stats.failed) == (3, 1)
    assert len(pipeline.standin.requests) == 3
    assert all(pipeline.photo(p.id).status == "ready" for p in photos)


def _unknown_message() -> dict[str, str]:
    return {"photo_id": str(uuid.uuid4()), "restore_attempt_id": str(uuid.uuid4())}


def _json(value: Any) -> str:
    return json.dumps(value)


def test_restores_are_listed_newest_first_and_any_succeeded_one_can_be_selected(
    pipeline: Pipeline,
) -> None:
    photo = pipeline.add_photo(old_photo())
    first = pipeline.request_restore(photo)
    pipeline.drain()
    second = pipeline.request_restore(photo)
    pipeline.drain()
    third = pipeline.request_restore(photo)
    pipeline.standin.enqueue(Behaviour.error(400, "no"))
    pipeline.drain()
    assert pipeline.photo(photo.id).status == "ready"  # a failed re-restore keeps the last one

    status, listing = pipeline.call_api("GET", f"/photos/{photo.id}/restores", photo.owner_id)
    assert status == 200
    restores = listing["restores"]
    assert [r["restore_attempt_id"] for r in restores] == [str(third), str(second), str(first)]
    assert [r["outcome"] for r in restores] == ["failed", "succeeded", "succeeded"]
    assert restores[0]["image_url"] is None
    assert restores[0]["error"]["code"] == "provider_rejected"
    assert all(r["image_url"] for r in restores[1:])

    path = f"/photos/{photo.id}/selected-restore"
    status, body = pipeline.call_api(
        "PUT", path, photo.owner_id, json_body={"restore_attempt_id": str(first)}
    )
    assert status == 200
    assert body == {"photo_id": str(photo.id), "selected_restore_id": str(first)}
    assert pipeline.photo(photo.id).processed_key == pipeline.attempt(first).s3_key

    failed = pipeline.call_api(
        "PUT", path, photo.owner_id, json_body={"restore_attempt_id": str(third)}
    )
    assert failed[0] == 409 and failed[1]["error"] == "restore_not_succeeded"
    other = pipeline.add_photo(old_photo(), owner_id=photo.owner_id)
    foreign = pipeline.call_api(
        "PUT",
        f"/photos/{other.id}/selected-restore",
        photo.owner_id,
        json_body={"restore_attempt_id": str(first)},
    )
    assert foreign[0] == 404


def test_provider_timeouts_are_transient_and_retried(pipeline: Pipeline) -> None:
    # A short read timeout only for answers the stand-in holds until the client gives up, so
    # nothing races it; the redelivery runs in a container with the production timeout, so
    # the real answer is never raced against a short one on a loaded machine either.
    pipeline.reload_worker(siliconflow_read_timeout_seconds=0.5)
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    pipeline.standin.enqueue(Behaviour.held(), Behaviour.held())
    assert pipeline.worker_source.poll_once().failed == 1
    assert pipeline.standin.wait_for_abandoned(2)  # both client tries timed out
    assert "provider_unavailable" in str(pipeline.attempt(attempt_id).params)
    pipeline.reload_worker()
    pipeline.drain()
    assert pipeline.photo(photo.id).status == "ready"
    params = pipeline.attempt(attempt_id).params
    assert "error" not in params
    assert "last_transient_error" not in params  # history the success made moot


def test_a_daily_cap_holds_the_photo_processing_instead_of_failing_it(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    pipeline.standin.enqueue(Behaviour.rate_limited(limit="IPD"))
    assert pipeline.worker_source.poll_once().succeeded == 1  # acknowledged: re-sent instead

    attempt = pipeline.attempt(attempt_id)
    assert attempt.waiting_for_capacity is not None
    assert attempt.waiting_for_capacity["limit"] == "IPD"
    assert pipeline.photo(photo.id).status == "processing"
    delayed = pipeline.sqs.get_queue_attributes(
        QueueUrl=pipeline.settings.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert delayed["ApproximateNumberOfMessagesDelayed"] == "1"  # back within 15 minutes
    assert queue_size(pipeline.sqs, pipeline.settings.dlq_url) == 0

    # The same message once the provider's day has ended: it runs, from the start.
    pipeline.sqs.purge_queue(QueueUrl=pipeline.settings.queue_url)
    resumed = {
        "photo_id": str(photo.id),
        "restore_attempt_id": str(attempt_id),
        "held_until": "2026-01-01T16:00:00+00:00",
        "held_since": "2026-01-01T09:00:00+00:00",
    }
    pipeline.sqs.send_message(QueueUrl=pipeline.settings.queue_url, MessageBody=_json(resumed))
    pipeline.drain()
    assert pipeline.photo(photo.id).status == "ready"
    assert pipeline.attempt(attempt_id).waiting_for_capacity is None

"""A restoration is paid for once: a failure at any step after the provider answered (the
result download, the S3 put, the commit, the worker process itself) resumes at the download
from the answer committed on the attempt, and never calls the provider again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from photo_restore.attempts import Attempt
from photo_restore.errors import DependencyUnavailable
from photo_restore.queue import RestoreMessage, RestoreQueue
from photo_restore.repository import SqlRepository
from photo_restore.storage import ObjectStorage, restored_key
from photo_restore.worker_wiring import build_restore_run
from photo_restore_tools.local.faults import attempt_commit_fails_once
from photo_restore_tools.local.siliconflow_standin import Behaviour
from tests.helpers.images import old_photo
from tests.helpers.pipeline import Pipeline

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def start_restore(pipeline: Pipeline) -> tuple[uuid.UUID, uuid.UUID]:
    photo = pipeline.add_photo(old_photo())
    return photo.id, pipeline.request_restore(photo)


def assert_ready_after_one_call(
    pipeline: Pipeline, photo_id: uuid.UUID, attempt_id: uuid.UUID
) -> Attempt:
    attempt = pipeline.attempt(attempt_id)
    assert pipeline.photo(photo_id).status == "ready"
    assert attempt.params["provider_calls"] == 1
    assert len(pipeline.standin.requests) == 1  # what the provider saw
    assert attempt.params["deliveries"] == 2  # the failed delivery, and the one that resumed
    return attempt


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Until `condition` holds (an event, not a time margin: the timeout only stops a hang)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def test_a_result_download_answering_5xx_resumes_at_the_download(pipeline: Pipeline) -> None:
    pipeline.standin.enqueue(Behaviour.result_error(503))
    photo_id, attempt_id = start_restore(pipeline)

    pipeline.drain()

    attempt = assert_ready_after_one_call(pipeline, photo_id, attempt_id)
    assert pipeline.standin.result_downloads == 2
    # What the provider answered, as it answered it, with the request fields sent.
    answer = attempt.params["provider_answer"]
    assert answer["seed"] == attempt.params["seed"]
    assert answer["trace_id"] == attempt.params["provider_trace_id"]
    assert answer["request"]["model"] == attempt.params["model"]
    assert answer["request"]["image"] in ("url", "data_uri")  # never the image itself


def test_a_result_download_timing_out_resumes_at_the_download(pipeline: Pipeline) -> None:
    pipeline.reload_worker(result_download_timeout_seconds=5)
    pipeline.standin.enqueue(Behaviour.slow_result(120))
    photo_id, attempt_id = start_restore(pipeline)

    pipeline.drain(timeout=60)

    assert_ready_after_one_call(pipeline, photo_id, attempt_id)
    noted = pipeline.attempt(attempt_id).params
    assert "last_transient_error" not in noted  # dropped by the commit that succeeded


class FirstRestoredPutFails(ObjectStorage):
    """The restoration's first put goes to a bucket that does not exist: moto's own error."""

    def __init__(self, s3: Any, bucket: str, restored: str) -> None:
        super().__init__(s3, bucket)
        self.restored = restored
        self.failed = False

    def write_jpeg(self, key: str, data: bytes) -> None:
        if key == self.restored and not self.failed:
            self.failed = True
            ObjectStorage(self._s3, self.bucket + "-missing").write_jpeg(key, data)
        super().write_jpeg(key, data)


def test_an_s3_put_error_after_the_download_resumes_at_the_download(pipeline: Pipeline) -> None:
    photo_id, attempt_id = start_restore(pipeline)
    settings = pipeline.settings
    restored = restored_key(pipeline.attempt(attempt_id))
    storage = FirstRestoredPutFails(pipeline.s3, settings.bucket_name, restored)
    first_delivery = build_restore_run(
        settings,
        repository=SqlRepository(pipeline.engine),
        storage=storage,
        queue=RestoreQueue(pipeline.sqs, settings.queue_url),
        api_key="test-key",
    )
    message = RestoreMessage(photo_id=photo_id, restore_attempt_id=attempt_id)
    with pytest.raises(DependencyUnavailable):
        first_delivery.run(message)
    assert storage.failed
    assert pipeline.attempt(attempt_id).params["provider_calls"] == 1
    assert pipeline.photo(photo_id).status == "processing"

    pipeline.drain()  # the message the failed delivery never deleted

    assert_ready_after_one_call(pipeline, photo_id, attempt_id)


def test_a_commit_error_after_storing_resumes_at_the_download(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)

    with attempt_commit_fails_once(pipeline.engine, attempt_id):  # a real Postgres error, once
        pipeline.drain()

    attempt = assert_ready_after_one_call(pipeline, photo.id, attempt_id)
    assert attempt.s3_key == restored_key(attempt)
    assert pipeline.restored_keys(photo.id) == pipeline.keys_of(attempt)  # nothing orphaned


def test_a_worker_killed_during_the_download_costs_no_second_image(pipeline: Pipeline) -> None:
    """A real worker process, SIGKILLed while the result download is under way."""
    pipeline.standin.enqueue(Behaviour.slow_result(120))
    photo_id, attempt_id = start_restore(pipeline)
    message = RestoreMessage(photo_id=photo_id, restore_attempt_id=attempt_id)
    # The environment holds the pipeline's settings (tests/helpers/handlers.use_settings).
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.worker_process", message.model_dump_json()],
        cwd=REPOSITORY_ROOT,
        env=dict(os.environ),
    )
    try:
        wait_for(lambda: pipeline.standin.result_downloads == 1, "the result download")
        assert "provider_answer" in pipeline.attempt(attempt_id).params  # committed before it
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert pipeline.photo(photo_id).status == "processing"

    pipeline.drain()  # the delivery Lambda would redo once the message is visible again

    assert pipeline.photo(photo_id).status == "ready"
    attempt = pipeline.attempt(attempt_id)
    assert attempt.params["provider_calls"] == 1
    assert len(pipeline.standin.requests) == 1


def test_an_expired_result_url_is_paid_again_and_counted(pipeline: Pipeline) -> None:
    pipeline.standin.enqueue(Behaviour.result_error(503))
    photo_id, attempt_id = start_restore(pipeline)
    assert pipeline.worker_source.poll_once().failed == 1  # the download failed: answer kept
    assert pipeline.attempt(attempt_id).params["provider_calls"] == 1
    # An hour passed: the recorded URL expired (the stand-in's would still answer).
    with pipeline.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE restore_attempts SET params = jsonb_set(params::jsonb, "
                "'{provider_answer,expires_at}', to_jsonb(now() - interval '1 minute'))::json "
                "WHERE id = :id"
            ),
            {"id": attempt_id},
        )

    pipeline.drain()

    assert pipeline.photo(photo_id).status == "ready"
    assert pipeline.attempt(attempt_id).params["provider_calls"] == 2
    assert len(pipeline.standin.requests) == 2
    status, body = pipeline.call_api(
        "GET", f"/photos/{photo_id}/restores", pipeline.photo(photo_id).owner_id
    )
    assert status == 200
    assert [r["provider_calls"] for r in body["restores"]] == [2]  # shown in the attempts view


def test_the_provider_calls_of_a_restoration_are_one_metric_when_it_settles(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """Summed, ProviderCalls is what restorations cost in calls, the failed deliveries' too."""
    pipeline.standin.enqueue(Behaviour.error(503), Behaviour.error(503))  # one failed delivery
    start_restore(pipeline)
    capsys.readouterr()

    pipeline.drain()

    emitted = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith('{"_aws"')
    ]
    calls = [m["ProviderCalls"] for m in emitted if "ProviderCalls" in m]
    assert calls == [[3.0]]  # two 503s (the failed delivery's), then the answer
    assert [m["RestoreSucceeded"] for m in emitted if "RestoreSucceeded" in m] == [[1.0]]

"""Operator redrive: dead messages moved back, failed restorations re-run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from photo_restore_tools.local.siliconflow_standin import Behaviour
from photo_restore_tools.redrive import move_dead_messages, operator_requests, rerun_failed_restores
from tests.helpers.images import old_photo
from tests.helpers.pipeline import Pipeline, queue_size

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)

AN_HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)


def _fail_until_dead_lettered(pipeline: Pipeline) -> None:
    pipeline.standin.enqueue(*[Behaviour.error(500, "overloaded") for _ in range(20)])
    pipeline.drain()
    pipeline.standin.reset()


def test_a_dead_message_moved_back_before_the_dlq_handler_ran_is_processed(
    pipeline: Pipeline,
) -> None:

    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    _fail_until_dead_lettered(pipeline)
    assert queue_size(pipeline.sqs, pipeline.settings.dlq_url) == 1

    moved = move_dead_messages(
        pipeline.sqs, dlq_url=pipeline.settings.dlq_url, queue_url=pipeline.settings.queue_url
    )
    pipeline.drain()

    assert moved == 1
    assert pipeline.photo(photo.id).status == "ready"
    assert pipeline.attempt(attempt_id).s3_key != "pending"


def test_a_redriven_message_of_a_settled_attempt_is_acknowledged_without_change(
    pipeline: Pipeline,
) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    _fail_until_dead_lettered(pipeline)
    body = json.dumps({"photo_id": str(photo.id), "restore_attempt_id": str(attempt_id)})
    pipeline.drain(pipeline.dlq_source)  # the DLQ handler settles it: failed, photo uploaded
    failed = pipeline.attempt(attempt_id)

    pipeline.sqs.send_message(QueueUrl=pipeline.settings.queue_url, MessageBody=body)
    pipeline.drain()

    assert pipeline.attempt(attempt_id) == failed
    assert pipeline.photo(photo.id).status == "uploaded"
    assert pipeline.standin.requests == []


def test_failed_restorations_are_re_run_as_new_attempts(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    failed_attempt = pipeline.request_restore(photo)
    _fail_until_dead_lettered(pipeline)
    pipeline.drain(pipeline.dlq_source)
    requests = pipeline.api.wiring.restore_requests()

    preview = rerun_failed_restores(
        pipeline.repository,
        requests,
        since=AN_HOUR_AGO,
        codes=["retries_exhausted"],
        photo_ids=[photo.id],
        dry_run=True,
    )
    mine = [r for r in preview if r.photo_id == photo.id]
    assert [(r.failed_attempt_id, r.new_attempt_id) for r in mine] == [(failed_attempt, None)]
    assert pipeline.photo(photo.id).status == "uploaded"

    results = rerun_failed_restores(
        pipeline.repository, requests, since=AN_HOUR_AGO, photo_ids=[photo.id]
    )
    [rerun] = [r for r in results if r.photo_id == photo.id]
    assert rerun.new_attempt_id is not None
    pipeline.drain()

    assert pipeline.photo(photo.id).status == "ready"
    assert pipeline.attempt(rerun.new_attempt_id).s3_key != "pending"
    # Run again: nothing failed any more, so nothing is re-run.
    again = rerun_failed_restores(
        pipeline.repository, requests, since=AN_HOUR_AGO, photo_ids=[photo.id]
    )
    assert photo.id not in [r.photo_id for r in again]


def test_a_re_run_never_claims_a_photo_the_user_already_re_requested(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    pipeline.request_restore(photo)
    pipeline.standin.enqueue(Behaviour.error(400, "bad image"))
    pipeline.drain()
    pipeline.request_restore(photo)  # the user retries: processing again

    results = rerun_failed_restores(
        pipeline.repository,
        pipeline.api.wiring.restore_requests(),
        since=AN_HOUR_AGO,
        photo_ids=[photo.id],
    )
    assert photo.id not in [r.photo_id for r in results]  # its newest attempt is pending


def test_an_operator_re_run_is_not_refused_for_the_users_quota(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    pipeline.request_restore(photo)
    pipeline.standin.enqueue(Behaviour.error(400, "bad image"))  # the user's photo: counted
    pipeline.drain()
    at_quota = pipeline.settings.model_copy(update={"daily_restores_per_user": 1})

    results = rerun_failed_restores(
        pipeline.repository, operator_requests(at_quota), since=AN_HOUR_AGO, photo_ids=[photo.id]
    )
    [rerun] = results
    assert rerun.new_attempt_id is not None and rerun.refusal is None

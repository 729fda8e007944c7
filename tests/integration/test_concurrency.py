"""The claim is exclusive: many simultaneous restore requests, one winner, one message."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from sqlalchemy import Engine

from photo_restore.errors import AlreadyProcessing
from photo_restore.queue import RestoreQueue
from photo_restore.repository import SqlRepository
from photo_restore.restore_requests import Caller, RestoreRequests
from photo_restore.settings import Settings
from photo_restore.storage import ObjectStorage
from photo_restore_tools.local.functions import functions_dir, load_handler_module
from tests.helpers import records
from tests.helpers.handlers import call_api, load_handler
from tests.helpers.records import insert_photo

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)

REQUESTS = 32


def attempt_count(engine: Engine, photo_id: uuid.UUID) -> int:
    return len(records.attempts_of(engine, photo_id))


def race(requests: RestoreRequests, caller: Caller, photo_id: uuid.UUID) -> list[Any]:
    """REQUESTS threads, each on its own pooled connection, released at the same instant."""
    start = threading.Barrier(REQUESTS)

    def request(_: int) -> Any:
        start.wait()
        try:
            return requests.request_restore(caller, photo_id).body
        except AlreadyProcessing as conflict:
            return conflict

    with ThreadPoolExecutor(REQUESTS) as pool:
        return list(pool.map(request, range(REQUESTS)))


def test_32_concurrent_restore_requests_on_one_photo_give_one_202_and_31_409(
    engine: Engine, settings: Settings, sqs: Any
) -> None:

    assert engine.pool.size() >= REQUESTS  # type: ignore[attr-defined]
    requests = RestoreRequests(
        SqlRepository(engine),
        RestoreQueue(sqs, settings.queue_url),
        ObjectStorage(boto3.client("s3"), settings.bucket_name),
        settings,
    )
    photo_ids = []
    for _ in range(5):
        photo = insert_photo(engine, status="uploaded")
        photo_ids.append(photo.id)
        outcomes = race(requests, Caller(photo.owner_id, None), photo.id)

        accepted = [o for o in outcomes if not isinstance(o, AlreadyProcessing)]
        conflicts = [o for o in outcomes if isinstance(o, AlreadyProcessing)]
        assert len(accepted) == 1
        assert len(conflicts) == REQUESTS - 1
        winner = str(accepted[0].restore_attempt_id)
        # A loser's UPDATE waits for the winner's row lock, then sees its commit: every 409
        # names the winning attempt.
        assert {c.restore_attempt_id for c in conflicts} == {winner}
        assert attempt_count(engine, photo.id) == 1

    messages = []
    while batch := sqs.receive_message(
        QueueUrl=settings.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60
    ).get("Messages"):
        messages += [json.loads(m["Body"]) for m in batch]
    assert sorted(m["photo_id"] for m in messages) == sorted(str(p) for p in photo_ids)


def test_32_concurrent_http_requests_through_the_api_handler_give_one_202(
    engine: Engine, settings: Settings, sqs: Any
) -> None:
    """The same race through HTTP API events: each thread is its own container (module)."""
    load_handler("api", settings.model_copy(update={"database_pool_size": REQUESTS}))
    containers = [load_handler_module("api", functions_dir()) for _ in range(REQUESTS)]
    photo = insert_photo(engine, status="ready")
    start = threading.Barrier(REQUESTS)

    def post(container: Any) -> int:
        start.wait()
        path = f"/photos/{photo.id}/restore"
        return call_api(container, "POST", path, claims={"sub": photo.owner_id})[0]

    with ThreadPoolExecutor(REQUESTS) as pool:
        statuses = sorted(pool.map(post, containers))

    assert statuses == [202] + [409] * (REQUESTS - 1)
    assert attempt_count(engine, photo.id) == 1
    messages = sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10)
    assert len(messages.get("Messages", [])) == 1

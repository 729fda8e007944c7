"""Operator redrive: move dead messages back, or re-run restores that failed."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from photo_restore.errors import RestoreError
from photo_restore.repository import Repository
from photo_restore.restore_requests import Caller, RestoreRequests
from photo_restore.settings import Settings

logger = logging.getLogger(__name__)


def move_dead_messages(sqs: Any, *, dlq_url: str, queue_url: str, limit: int = 1000) -> int:
    """What SQS's StartMessageMoveTask does (moto lacks it): DLQ -> queue, body unchanged.

    The worker treats a moved message like any delivery: still in flight -> processed;
    already settled (the DLQ handler ran) -> acknowledged without change.
    """
    moved = 0
    while moved < limit:
        batch = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=min(10, limit - moved), WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved


def operator_requests(settings: Settings) -> RestoreRequests:
    """The API's use case as an operator re-runs work: the same claim, without the users' daily
    quota (work that failed on our side must not be refused for it)."""
    from photo_restore import wiring

    return RestoreRequests(
        wiring.repository(),
        wiring.restore_queue(),
        wiring.object_storage(),
        settings.model_copy(update={"daily_restores_per_user": 0}),
        announcer=wiring.restore_announcer(),
    )


@dataclass(frozen=True)
class RerunResult:
    photo_id: uuid.UUID
    failed_attempt_id: uuid.UUID
    error_code: str | None
    new_attempt_id: uuid.UUID | None  # None: dry run, or the photo could not be claimed
    refusal: str | None = None


def rerun_failed_restores(
    repository: Repository,
    requests: RestoreRequests,
    *,
    since: datetime,
    codes: Sequence[str] | None = None,
    photo_ids: Sequence[uuid.UUID] | None = None,
    dry_run: bool = False,
) -> list[RerunResult]:
    """A new attempt for each photo whose newest attempt failed, claimed as its owner would.

    The claim is the API's own conditional update, so a photo the user re-requested meanwhile
    (now processing) is refused, never restored twice.
    """
    with repository.transaction() as tx:
        failed = tx.failed_newest_attempts(since=since, codes=codes, photo_ids=photo_ids)
    results = []
    for restore in failed:
        found = (restore.photo_id, restore.attempt_id, restore.code)
        if dry_run:
            results.append(RerunResult(*found, None))
            continue
        try:
            accepted = requests.request_restore(
                Caller(restore.owner_id, None), restore.photo_id
            ).body
        except RestoreError as error:
            results.append(RerunResult(*found, None, error.code))
            continue
        results.append(RerunResult(*found, accepted.restore_attempt_id))
    return results


def rerun_attempt(
    repository: Repository,
    requests: RestoreRequests,
    attempt_id: uuid.UUID,
    *,
    same_seed: bool = False,
) -> str:
    """A new attempt for the photo of `attempt_id`, claimed as its owner would; with
    `same_seed`, SiliconFlow is asked for the seed the attempt recorded. One line for humans."""
    with repository.transaction() as tx:
        attempt = tx.attempt(attempt_id)
        photo = tx.photo(attempt.photo_id) if attempt else None
    if attempt is None or photo is None:
        return f"no attempt {attempt_id}"
    seed = attempt.params.get("seed") if same_seed else None
    if same_seed and not isinstance(seed, int):
        return f"attempt {attempt_id} recorded no seed (it never succeeded)"
    try:
        accepted = requests.request_restore(Caller(photo.owner_id, None), photo.id, seed=seed).body
    except RestoreError as error:
        return f"refused: {error.code}: {error.message}"
    suffix = f" with seed {seed}" if seed is not None else ""
    return f"new attempt {accepted.restore_attempt_id} for photo {photo.id}{suffix}"

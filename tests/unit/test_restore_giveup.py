"""Giving up against fakes: the DLQ handler and the sweeper settle only what is still in flight."""

from __future__ import annotations

from datetime import timedelta

from photo_restore.attempts import AttemptState
from photo_restore.queue import RestoreMessage
from photo_restore.restore_giveup import GiveUpOutcome, RestoreGiveUp
from photo_restore.restore_requests import Caller, RestoreRequests
from photo_restore.settings import Settings
from photo_restore.status import PhotoStatus
from tests.helpers.fakes import FakeQueue, FakeRepository, FakeStorage


def claimed() -> tuple[FakeRepository, FakeStorage, RestoreMessage]:
    repository, storage = FakeRepository(), FakeStorage()
    photo = repository.add_photo()
    requests = RestoreRequests(repository, FakeQueue(), storage, Settings())
    accepted = requests.request_restore(Caller(photo.owner_id, None), photo.id).body
    return (
        repository,
        storage,
        RestoreMessage(photo_id=photo.id, restore_attempt_id=accepted.restore_attempt_id),
    )


def test_a_dead_message_fails_its_attempt_and_reverts_the_photo_once() -> None:
    repository, storage, message = claimed()
    giveup = RestoreGiveUp(repository=repository, storage=storage, settings=Settings())

    for _ in range(3):  # three deliveries started it, each failing transiently
        with repository.transaction() as tx:
            tx.start_attempt(message.photo_id, message.restore_attempt_id)
    first = giveup.settle_dead_message(message.model_dump_json())
    again = giveup.settle_dead_message(message.model_dump_json())

    assert (first.outcome, again.outcome) == (GiveUpOutcome.REVERTED, GiveUpOutcome.ALREADY_SETTLED)
    attempt = repository.attempt(message.restore_attempt_id)
    assert attempt.error is not None and attempt.error["code"] == "retries_exhausted"
    assert "3 deliveries" in attempt.error["message"]
    assert repository.photo(message.photo_id).status is PhotoStatus.UPLOADED


def test_malformed_and_unknown_dead_messages_are_dropped() -> None:
    repository, storage, message = claimed()
    giveup = RestoreGiveUp(repository=repository, storage=storage, settings=Settings())
    assert giveup.settle_dead_message("not json").outcome is GiveUpOutcome.MALFORMED
    unknown = message.model_copy(update={"restore_attempt_id": message.photo_id})
    assert giveup.settle_dead_message(unknown.model_dump_json()).outcome is (
        GiveUpOutcome.UNKNOWN_ATTEMPT
    )


def test_the_sweeper_settles_only_photos_idle_past_the_longest_pipeline_time() -> None:
    repository, storage, message = claimed()
    settings = Settings()
    now = repository.clock.now
    early = RestoreGiveUp(
        repository=repository,
        storage=storage,
        settings=settings,
        clock=lambda: now + timedelta(seconds=settings.stuck_after_seconds - 60),
    )
    assert early.sweep_stuck_photos() == []
    late = RestoreGiveUp(
        repository=repository,
        storage=storage,
        settings=settings,
        clock=lambda: now + timedelta(seconds=settings.stuck_after_seconds + 60),
    )
    [report] = late.sweep_stuck_photos()
    assert report.outcome is GiveUpOutcome.REVERTED
    attempt = repository.attempt(message.restore_attempt_id)
    assert attempt.state is AttemptState.FAILED
    assert attempt.error is not None and attempt.error["code"] == "stuck_in_processing"

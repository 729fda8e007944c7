"""The API's use cases against fakes: the claim, its undo, and what a caller may see."""

from __future__ import annotations

import uuid

import pytest

from photo_restore.attempts import AttemptState
from photo_restore.errors import (
    AlreadyProcessing,
    DependencyUnavailable,
    PhotoNotFound,
    PhotoNotRestorable,
    QueueUnavailable,
    RestoreNotSucceeded,
    Unauthenticated,
)
from photo_restore.http_errors import answered_status
from photo_restore.restore_requests import Caller, RestoreRequests
from photo_restore.settings import Settings
from photo_restore.status import PhotoStatus
from tests.helpers.fakes import FakeQueue, FakeRepository, FakeStorage


@pytest.fixture
def repository() -> FakeRepository:
    return FakeRepository()


@pytest.fixture
def queue() -> FakeQueue:
    return FakeQueue()


@pytest.fixture
def requests(repository: FakeRepository, queue: FakeQueue) -> RestoreRequests:
    return RestoreRequests(repository, queue, FakeStorage(), Settings())


def test_a_restore_request_claims_records_the_attempt_and_enqueues_it(
    repository: FakeRepository, queue: FakeQueue, requests: RestoreRequests
) -> None:
    photo = repository.add_photo()
    accepted = requests.request_restore(Caller(photo.owner_id, "ada@example.com"), photo.id).body

    assert accepted.status == "processing"
    assert repository.photo(photo.id).status is PhotoStatus.PROCESSING
    attempt = repository.attempt(accepted.restore_attempt_id)
    assert attempt.state is AttemptState.PENDING and attempt.photo_id == photo.id
    assert attempt.params["provider"] == "siliconflow"
    assert repository.tables.jobs[photo.id]["email"] == "ada@example.com"
    [(message, delay)] = queue.sent
    assert (message.photo_id, message.restore_attempt_id, delay) == (photo.id, attempt.id, 0)


def test_a_second_request_while_processing_names_the_attempt_in_flight(
    repository: FakeRepository, queue: FakeQueue, requests: RestoreRequests
) -> None:
    photo = repository.add_photo()
    caller = Caller(photo.owner_id, None)
    first = requests.request_restore(caller, photo.id).body
    with pytest.raises(AlreadyProcessing) as conflict:
        requests.request_restore(caller, photo.id)
    assert conflict.value.restore_attempt_id == str(first.restore_attempt_id)
    assert len(queue.sent) == 1 and len(repository.tables.attempts) == 1


@pytest.mark.parametrize("status", [PhotoStatus.ARCHIVED, PhotoStatus.DELETED])
def test_archived_and_deleted_photos_are_not_restorable(
    repository: FakeRepository, requests: RestoreRequests, status: PhotoStatus
) -> None:
    photo = repository.add_photo(status=status)
    with pytest.raises(PhotoNotRestorable):
        requests.request_restore(Caller(photo.owner_id, None), photo.id)


def test_someone_elses_photo_is_not_found(
    repository: FakeRepository, requests: RestoreRequests
) -> None:
    photo = repository.add_photo()
    stranger = Caller("someone-else", None)
    for call in (
        lambda: requests.request_restore(stranger, photo.id).body,
        lambda: requests.get_photo(stranger, photo.id),
        lambda: requests.list_restores(stranger, photo.id),
    ):
        with pytest.raises(PhotoNotFound):
            call()
    assert repository.photo(photo.id).status is PhotoStatus.UPLOADED


def test_a_queue_outage_undoes_the_claim_and_records_why(
    repository: FakeRepository, queue: FakeQueue, requests: RestoreRequests
) -> None:
    photo = repository.add_photo()
    queue.unavailable = True
    with pytest.raises(QueueUnavailable):
        requests.request_restore(Caller(photo.owner_id, None), photo.id)
    assert repository.photo(photo.id).status is PhotoStatus.UPLOADED
    [attempt] = repository.tables.attempts.values()
    assert attempt.state is AttemptState.FAILED
    assert attempt.error is not None and attempt.error["code"] == "queue_unavailable"


def test_a_database_outage_is_a_retryable_503(
    repository: FakeRepository, queue: FakeQueue, requests: RestoreRequests
) -> None:
    photo = repository.add_photo()
    repository.unavailable = True
    with pytest.raises(DependencyUnavailable) as raised:
        requests.request_restore(Caller(photo.owner_id, None), photo.id)
    assert answered_status(raised.value) == 503 and queue.sent == []


def test_only_a_succeeded_attempt_of_the_photo_can_be_selected(
    repository: FakeRepository, requests: RestoreRequests
) -> None:
    photo = repository.add_photo()
    caller = Caller(photo.owner_id, None)
    pending = requests.request_restore(caller, photo.id).body.restore_attempt_id
    with pytest.raises(RestoreNotSucceeded):
        requests.select_restore(caller, photo.id, pending)


def test_the_caller_comes_from_the_token_claims() -> None:
    assert Caller.from_claims({"sub": "u1", "email": "a@b.c"}) == Caller("u1", "a@b.c")
    assert Caller.from_claims({"sub": "u1", "email": ""}) == Caller("u1", None)
    for claims in ({}, {"sub": ""}, {"sub": 42}, {"email": "a@b.c"}):
        with pytest.raises(Unauthenticated):
            Caller.from_claims(claims)


def test_a_pending_attempt_shows_no_image_and_no_error(
    repository: FakeRepository, requests: RestoreRequests
) -> None:
    photo = repository.add_photo()
    caller = Caller(photo.owner_id, None)
    accepted = requests.request_restore(caller, photo.id).body
    view = requests.get_photo(caller, photo.id)
    assert view.status == "processing" and view.restored_image_url is None
    assert view.latest_attempt is not None
    assert view.latest_attempt.restore_attempt_id == accepted.restore_attempt_id
    assert (view.latest_attempt.outcome, view.latest_attempt.error) == ("pending", None)
    assert requests.list_restores(caller, uuid.UUID(str(photo.id))).restores[0].image_url is None

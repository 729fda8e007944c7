"""What a frontend builds on, against fakes: cancel, Idempotency-Key, the quota, before/after,
progress, pagination and errors fit for end users."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from PIL import Image

from photo_restore.attempts import AttemptState, Phase
from photo_restore.errors import (
    AnonymousNotAllowed,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    InvalidRequest,
    NotProcessing,
    PhotoNotFound,
    ProviderUnavailable,
    QuotaExceeded,
    error_record,
)
from photo_restore.events import RestoreAnnouncer
from photo_restore.http_errors import answered_status
from photo_restore.photos import Photo
from photo_restore.preprocess import ImagePreprocessResult
from photo_restore.queue import RestoreMessage
from photo_restore.restore_requests import Caller, RestoreRequests
from photo_restore.restore_runs import RestoreRun
from photo_restore.settings import Settings
from photo_restore.status import PhotoStatus
from tests.helpers.fakes import (
    FakeEditor,
    FakePublisher,
    FakeQueue,
    FakeRepository,
    FakeStorage,
    ok_response,
)


def jpeg(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (120, 90, 60)).save(out, format="JPEG")
    return out.getvalue()


class Service:
    """The API's use cases and a worker over one set of fakes."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.repository = FakeRepository()
        self.storage = FakeStorage()
        self.queue = FakeQueue()
        self.publisher = FakePublisher()
        self.editor = FakeEditor()
        announcer = RestoreAnnouncer(self.repository, self.publisher)
        self.requests = RestoreRequests(
            self.repository,
            self.queue,
            self.storage,
            self.settings,
            announcer=announcer,
            clock=lambda: self.repository.clock.now,
        )
        self.worker = RestoreRun(
            repository=self.repository,
            storage=self.storage,
            queue=self.queue,
            editor=self.editor,
            preprocess=lambda data: ImagePreprocessResult(
                jpeg((64, 48)), False, (64, 48), (64, 48), False, "JPEG"
            ),
            fetch_result=lambda url: jpeg((1184, 888)),
            settings=self.settings,
            announcer=announcer,
        )

    def photo(self, owner: str = "ada") -> tuple[Photo, Caller]:
        photo = self.repository.add_photo(owner_id=owner)
        self.storage.objects[photo.original_key] = b"original"
        return photo, Caller(owner, None)

    def run_queued(self) -> None:
        while self.queue.sent:
            message, _ = self.queue.sent.pop(0)
            self.worker.run(message)

    def restored(self, photo: Photo, caller: Caller) -> uuid.UUID:
        attempt_id = self.requests.request_restore(caller, photo.id).body.restore_attempt_id
        self.run_queued()
        return attempt_id


@pytest.fixture
def service() -> Service:
    return Service()


# --- Cancel ----------------------------------------------------------------------------------


def test_cancel_puts_the_photo_back_and_ends_the_attempt_canceled(service: Service) -> None:
    photo, caller = service.photo()
    accepted = service.requests.request_restore(caller, photo.id).body
    view = service.requests.cancel_restore(caller, photo.id)

    assert view.status == "uploaded"
    assert view.latest_attempt is not None and view.latest_attempt.phase is Phase.CANCELED
    assert view.latest_attempt.error is not None
    assert view.latest_attempt.error.model_dump() == {
        "code": "canceled",
        "retryable": True,
        "message": "You canceled this restoration.",
    }
    attempt = service.repository.attempt(accepted.restore_attempt_id)
    assert attempt.state is AttemptState.CANCELED and attempt.finished_at is not None
    [event] = service.publisher.events
    assert event.detail_type == "RestoreCanceled" and event.detail["error_code"] == "canceled"

    service.run_queued()  # its message, delivered after the cancel, changes nothing
    assert service.repository.photo(photo.id).status is PhotoStatus.UPLOADED
    assert service.editor.requests == [] and service.storage.keys("restored/") == []


def test_cancel_of_a_photo_that_had_a_restoration_puts_it_back_to_ready(
    service: Service,
) -> None:
    photo, caller = service.photo()
    first = service.restored(photo, caller)
    service.requests.request_restore(caller, photo.id)
    view = service.requests.cancel_restore(caller, photo.id)
    assert view.status == "ready" and view.selected_restore_id == first
    assert view.after is not None  # the earlier restoration is still shown


def test_cancel_with_nothing_in_flight_is_409_and_a_strangers_photo_404(
    service: Service,
) -> None:
    photo, caller = service.photo()
    with pytest.raises(NotProcessing) as conflict:
        service.requests.cancel_restore(caller, photo.id)
    assert answered_status(conflict.value) == 409
    service.requests.request_restore(caller, photo.id)
    with pytest.raises(PhotoNotFound):
        service.requests.cancel_restore(Caller("mallory", None), photo.id)
    assert service.repository.photo(photo.id).status is PhotoStatus.PROCESSING


# --- Idempotency-Key -------------------------------------------------------------------------


def test_the_same_key_replays_the_first_answer_even_after_the_photo_is_ready(
    service: Service,
) -> None:
    photo, caller = service.photo()
    first = service.requests.request_restore(caller, photo.id, idempotency_key="k-1")
    service.run_queued()
    assert service.repository.photo(photo.id).status is PhotoStatus.READY

    again = service.requests.request_restore(caller, photo.id, idempotency_key="k-1")
    assert again.replayed and not first.replayed
    assert again.body == first.body  # same status, same restore_attempt_id
    assert len(service.repository.tables.attempts) == 1 and service.queue.sent == []


def test_a_key_is_one_users_for_one_photo(service: Service) -> None:
    photo, caller = service.photo()
    other, _ = service.photo()
    service.requests.request_restore(caller, photo.id, idempotency_key="k-1")
    with pytest.raises(IdempotencyKeyReused) as reused:
        service.requests.request_restore(caller, other.id, idempotency_key="k-1")
    assert answered_status(reused.value) == 422
    # Another user's identical key is theirs.
    strangers, stranger = service.photo(owner="grace")
    accepted = service.requests.request_restore(stranger, strangers.id, idempotency_key="k-1")
    assert not accepted.replayed


def test_a_key_expires_after_24_hours(service: Service) -> None:
    photo, caller = service.photo()
    first = service.requests.request_restore(caller, photo.id, idempotency_key="k-1")
    service.run_queued()
    service.repository.clock.now += timedelta(hours=24, seconds=1)
    later = service.requests.request_restore(caller, photo.id, idempotency_key="k-1")
    assert not later.replayed and later.body.restore_attempt_id != first.body.restore_attempt_id


def test_a_key_whose_request_never_reached_the_queue_is_free_again(service: Service) -> None:
    photo, caller = service.photo()
    service.queue.unavailable = True
    with pytest.raises(Exception, match="enqueue"):
        service.requests.request_restore(caller, photo.id, idempotency_key="k-1")
    service.queue.unavailable = False
    retried = service.requests.request_restore(caller, photo.id, idempotency_key="k-1")
    assert not retried.replayed and len(service.queue.sent) == 1


def test_a_key_still_being_accepted_is_409_in_progress(service: Service) -> None:
    photo, caller = service.photo()
    with service.repository.transaction() as tx:  # committed, not yet enqueued
        tx.claim_photo(photo.id, caller.user_id)
        tx.ensure_job(photo.id, None)
        tx.insert_attempt(
            attempt_id=uuid.uuid4(),
            photo_id=photo.id,
            model="Qwen/Qwen-Image-Edit",
            params={"idempotency_key": "k-1"},
        )
    with pytest.raises(IdempotencyInProgress) as busy:
        service.requests.request_restore(caller, photo.id, idempotency_key="k-1")
    assert answered_status(busy.value) == 409 and busy.value.retryable


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", "line\n"])
def test_a_malformed_key_is_a_422_naming_the_header(service: Service, key: str) -> None:
    photo, caller = service.photo()
    with pytest.raises(InvalidRequest) as invalid:
        service.requests.request_restore(caller, photo.id, idempotency_key=key)
    assert invalid.value.field == "Idempotency-Key"
    assert service.repository.photo(photo.id).status is PhotoStatus.UPLOADED


# --- Quota -----------------------------------------------------------------------------------


def anonymous(owner: str) -> Caller:
    """A Supabase anonymous session's caller, from its claims as API Gateway passes them."""
    return Caller.from_claims({"sub": owner, "is_anonymous": "true", "role": "authenticated"})


def test_an_anonymous_session_may_not_restore_by_default(service: Service) -> None:
    photo, _ = service.photo(owner="anon-1")
    with pytest.raises(AnonymousNotAllowed) as refused:
        service.requests.request_restore(anonymous("anon-1"), photo.id)
    assert answered_status(refused.value) == 403 and not refused.value.retryable
    assert service.repository.photo(photo.id).status is PhotoStatus.UPLOADED
    assert service.queue.sent == []
    # Reading is still allowed; an account's token (is_anonymous false) restores.
    assert service.requests.get_photo(anonymous("anon-1"), photo.id).status == "uploaded"
    account = Caller.from_claims({"sub": "anon-1", "is_anonymous": "false"})
    assert not account.anonymous
    service.requests.request_restore(account, photo.id)


def test_anonymous_sessions_when_allowed_have_their_own_smaller_quota() -> None:
    service = Service(Settings(daily_restores_per_user=5, daily_restores_per_anonymous_session=1))
    (a, _), (b, _) = service.photo(owner="anon-2"), service.photo(owner="anon-2")
    service.restored(a, anonymous("anon-2"))
    with pytest.raises(QuotaExceeded):
        service.requests.request_restore(anonymous("anon-2"), b.id)
    assert service.repository.photo(b.id).status is PhotoStatus.UPLOADED


def test_the_quota_counts_a_users_requests_over_24_hours() -> None:
    service = Service(Settings(daily_restores_per_user=2))
    (a, caller), (b, _), (c, _) = service.photo(), service.photo(), service.photo()
    service.restored(a, caller)
    service.requests.request_restore(caller, b.id)
    with pytest.raises(QuotaExceeded) as over:
        service.requests.request_restore(caller, c.id)
    assert answered_status(over.value) == 429
    assert 86_390 <= over.value.retry_after_seconds <= 86_400  # when the oldest leaves
    assert service.repository.photo(c.id).status is PhotoStatus.UPLOADED  # claim rolled back
    other, stranger = service.photo(owner="grace")
    service.requests.request_restore(stranger, other.id)  # quotas are per user

    service.repository.clock.now += timedelta(hours=24)
    service.requests.request_restore(caller, c.id)


def test_failures_of_the_provider_or_the_system_are_not_counted_but_the_users_are() -> None:
    service = Service(Settings(daily_restores_per_user=1))
    photo, caller = service.photo()
    service.queue.unavailable = True  # ours: not counted
    with pytest.raises(Exception, match="enqueue"):
        service.requests.request_restore(caller, photo.id)
    service.queue.unavailable = False
    service.editor.answers = [ProviderUnavailable("503")] * 10
    attempt_id = service.requests.request_restore(caller, photo.id).body.restore_attempt_id
    with service.repository.transaction() as tx:  # as the DLQ handler gives up
        tx.fail_attempt(
            photo_id=photo.id,
            attempt_id=attempt_id,
            error=error_record("retries_exhausted", "gave up"),
        )
    service.queue.sent.clear()
    accepted = service.requests.request_restore(caller, photo.id)  # still within the quota
    service.requests.cancel_restore(caller, photo.id)  # the user's choice: counted
    with pytest.raises(QuotaExceeded):
        service.requests.request_restore(caller, photo.id)
    assert accepted.body.restore_attempt_id in service.repository.tables.attempts


def test_a_users_restore_requests_are_held_to_a_rate_a_minute_too() -> None:
    service = Service(Settings(daily_restores_per_user=0, restores_per_user_per_minute=2))
    (a, caller), (b, _), (c, _) = service.photo(), service.photo(), service.photo()
    service.requests.request_restore(caller, a.id)
    service.repository.clock.now += timedelta(seconds=20)
    service.requests.request_restore(caller, b.id)
    with pytest.raises(QuotaExceeded) as over:
        service.requests.request_restore(caller, c.id)
    assert answered_status(over.value) == 429 and over.value.code == "quota_exceeded"
    assert "a minute" in over.value.message
    assert 30 <= over.value.retry_after_seconds <= 40  # when the first request leaves the minute
    assert service.repository.photo(c.id).status is PhotoStatus.UPLOADED  # claim rolled back
    other, stranger = service.photo(owner="grace")
    service.requests.request_restore(stranger, other.id)  # a rate per user

    service.repository.clock.now += timedelta(seconds=41)
    service.requests.request_restore(caller, c.id)


def test_a_quota_of_zero_is_unlimited() -> None:
    service = Service(Settings(daily_restores_per_user=0, restores_per_user_per_minute=0))
    photo, caller = service.photo()
    for _ in range(30):
        service.restored(photo, caller)
    assert len(service.repository.tables.attempts) == 30


def test_a_replay_is_not_a_new_request_for_the_quota() -> None:
    service = Service(Settings(daily_restores_per_user=1))
    photo, caller = service.photo()
    first = service.requests.request_restore(caller, photo.id, idempotency_key="k")
    again = service.requests.request_restore(caller, photo.id, idempotency_key="k")
    assert again.replayed and again.body == first.body


# --- Views -----------------------------------------------------------------------------------


def test_a_restored_photo_shows_before_and_after_with_sizes_and_expiry(service: Service) -> None:
    photo, caller = service.photo()
    attempt_id = service.restored(photo, caller)
    view = service.requests.get_photo(caller, photo.id)
    attempt = service.repository.attempt(attempt_id)

    assert view.selected_restore_id == attempt_id
    assert view.before is not None and view.after is not None
    assert (view.before.width, view.before.height) == (64, 48)  # what the model was given
    assert (view.after.width, view.after.height) == (1184, 888)  # what came back
    assert attempt.before_key and attempt.before_key in view.before.url
    assert view.after.url == view.restored_image_url
    expected = service.repository.clock.now + timedelta(seconds=900)
    assert view.urls_expire_at is not None and abs(view.urls_expire_at - expected) < timedelta(1)
    latest = view.latest_attempt
    assert latest is not None and latest.phase is Phase.SUCCEEDED
    assert latest.after == view.after and latest.thumbnail_url is not None
    assert latest.started_at is not None and latest.finished_at is not None
    assert view.estimated_seconds_remaining is None  # nothing runs


def test_selecting_an_older_restoration_moves_before_after_and_thumbnail(
    service: Service,
) -> None:
    photo, caller = service.photo()
    first = service.restored(photo, caller)
    second = service.restored(photo, caller)
    assert service.requests.get_photo(caller, photo.id).selected_restore_id == second
    service.requests.select_restore(caller, photo.id, first)
    view = service.requests.get_photo(caller, photo.id)
    older = service.repository.attempt(first)
    assert view.selected_restore_id == first
    assert view.after is not None and older.s3_key in view.after.url
    job = service.repository.tables.jobs[photo.id]
    assert job["thumbnail_s3_key"] == older.thumbnail_key
    assert service.requests.list_restores(caller, photo.id).selected_restore_id == first


def test_a_running_attempt_estimates_from_the_median_of_recent_inference(
    service: Service,
) -> None:
    photo, caller = service.photo()
    for seconds in (10.0, 20.0, 60.0):
        service.editor.answers = [ok_response(inference_time=seconds)]
        service.restored(photo, caller)
    service.requests.request_restore(caller, photo.id)
    view = service.requests.get_photo(caller, photo.id)
    assert view.latest_attempt is not None and view.latest_attempt.phase is Phase.QUEUED
    assert view.estimated_seconds_remaining == 20


def test_a_fresh_service_has_no_estimate(service: Service) -> None:
    photo, caller = service.photo()
    service.requests.request_restore(caller, photo.id)
    assert service.requests.get_photo(caller, photo.id).estimated_seconds_remaining is None


def test_a_failed_attempt_shows_a_user_message_never_the_providers_words(
    service: Service,
) -> None:
    photo, caller = service.photo()
    attempt_id = service.requests.request_restore(caller, photo.id).body.restore_attempt_id
    with service.repository.transaction() as tx:
        tx.fail_attempt(
            photo_id=photo.id,
            attempt_id=attempt_id,
            error=error_record(
                "provider_content_refused",
                "SiliconFlow answered 400: code 20015 sensitive content",
                kind="permanent",
            )
            | {"provider_trace_id": "ti_secret"},
        )
    [restore] = service.requests.list_restores(caller, photo.id).restores
    assert restore.error is not None
    shown = restore.error.model_dump_json()
    assert "SiliconFlow" not in shown and "ti_secret" not in shown and "20015" not in shown
    assert restore.error.code == "provider_content_refused" and not restore.error.retryable
    # The operator's detail stays in params.
    assert "20015" in service.repository.attempt(attempt_id).params["error"]["message"]


def test_restores_are_paginated_newest_first_with_an_opaque_cursor(service: Service) -> None:
    photo, caller = service.photo()
    made = [service.restored(photo, caller) for _ in range(5)]
    seen: list[uuid.UUID] = []
    cursor = None
    pages = 0
    while True:
        page = service.requests.list_restores(caller, photo.id, limit=2, cursor=cursor)
        seen += [r.restore_attempt_id for r in page.restores]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == list(reversed(made)) and pages == 3
    assert service.requests.list_restores(caller, photo.id).next_cursor is None


@pytest.mark.parametrize("cursor", ["garbage", "e30", "eyJ0IjogIngiLCAiaWQiOiAieSJ9"])
def test_a_cursor_not_from_the_api_is_a_422_naming_it(service: Service, cursor: str) -> None:
    photo, caller = service.photo()
    with pytest.raises(InvalidRequest) as invalid:
        service.requests.list_restores(caller, photo.id, cursor=cursor)
    assert invalid.value.field == "cursor"


def test_a_cursor_made_for_another_photo_is_refused_like_a_garbage_one(service: Service) -> None:
    photo, caller = service.photo()
    other, _ = service.photo()
    for _ in range(3):
        service.restored(photo, caller)
        service.restored(other, caller)
    cursor = service.requests.list_restores(caller, photo.id, limit=1).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidRequest) as invalid:
        service.requests.list_restores(caller, other.id, limit=1, cursor=cursor)
    assert invalid.value.field == "cursor" and answered_status(invalid.value) == 422
    assert service.requests.list_restores(caller, photo.id, limit=1, cursor=cursor).restores


@pytest.mark.parametrize("limit", [0, 101])
def test_the_page_size_is_1_to_100(service: Service, limit: int) -> None:
    photo, caller = service.photo()
    with pytest.raises(InvalidRequest) as invalid:
        service.requests.list_restores(caller, photo.id, limit=limit)
    assert invalid.value.field == "limit"


def test_the_sweeper_publishes_events_whose_publish_failed(service: Service) -> None:
    from photo_restore.restore_giveup import RestoreGiveUp

    photo, caller = service.photo()
    service.publisher.refusing = True
    service.requests.request_restore(caller, photo.id)
    service.requests.cancel_restore(caller, photo.id)  # the API logs it and answers 200
    assert service.publisher.events == []

    service.publisher.refusing = False
    giveup = RestoreGiveUp(
        repository=service.repository,
        storage=service.storage,
        settings=service.settings,
        announcer=RestoreAnnouncer(service.repository, service.publisher),
    )
    giveup.sweep_stuck_photos()
    assert service.publisher.events == []  # too fresh: its publisher may still be at work
    service.repository.clock.now += timedelta(minutes=6)
    giveup.sweep_stuck_photos()
    giveup.sweep_stuck_photos()
    assert [e.detail_type for e in service.publisher.events] == ["RestoreCanceled"]


def test_a_stale_message_is_acknowledged_for_a_canceled_attempt(service: Service) -> None:
    photo, caller = service.photo()
    accepted = service.requests.request_restore(caller, photo.id).body
    service.requests.cancel_restore(caller, photo.id)
    report = service.worker.run(
        RestoreMessage(photo_id=photo.id, restore_attempt_id=accepted.restore_attempt_id)
    )
    assert report.outcome.value == "skipped"

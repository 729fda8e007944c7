"""The worker's use case against fakes: every outcome, and nothing orphaned on the way."""

from __future__ import annotations

import io
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image

from photo_restore.attempts import AttemptState, Phase
from photo_restore.errors import (
    CorruptImage,
    DependencyUnavailable,
    InvalidProviderResult,
    ProviderRateLimited,
    ProviderUnavailable,
)
from photo_restore.events import EventPublishFailed, RestoreAnnouncer
from photo_restore.pacing import ProviderPacer
from photo_restore.preprocess import ImagePreprocessResult
from photo_restore.queue import Delivery, RestoreMessage, retry_delay_seconds
from photo_restore.restore_requests import Caller, RestoreRequests
from photo_restore.restore_runs import RestoreRun, RunOutcome, RunReport
from photo_restore.settings import Settings
from photo_restore.status import PhotoStatus
from tests.helpers.fakes import (
    FakeEditor,
    FakePublisher,
    FakeQueue,
    FakeRepository,
    FakeStorage,
    FakeTransaction,
)
from tests.helpers.provenance import xmp_fields


def jpeg(size: tuple[int, int] = (32, 24)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (120, 90, 60)).save(out, format="JPEG")
    return out.getvalue()


def prepared(data: bytes) -> ImagePreprocessResult:
    return ImagePreprocessResult(
        image_bytes=jpeg(),
        resized=False,
        original_dimensions=(32, 24),
        new_dimensions=(32, 24),
        format_converted=False,
        original_format="JPEG",
    )


class World:
    """A claimed photo and the parts a RestoreRun is built from."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.repository = FakeRepository()
        self.storage = FakeStorage()
        self.queue = FakeQueue()
        self.editor = FakeEditor()
        self.preprocess: Callable[[bytes], ImagePreprocessResult] = prepared
        self.result = jpeg((40, 30))
        self.now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
        self.publisher = FakePublisher()
        self.announcer = RestoreAnnouncer(self.repository, self.publisher)
        self.photo = self.repository.add_photo()
        self.storage.objects[self.photo.original_key] = b"original bytes"
        self.requests = requests = RestoreRequests(
            self.repository, self.queue, self.storage, self.settings, announcer=self.announcer
        )
        accepted = requests.request_restore(Caller(self.photo.owner_id, None), self.photo.id).body
        self.attempt_id = accepted.restore_attempt_id
        self.message = RestoreMessage(photo_id=self.photo.id, restore_attempt_id=self.attempt_id)
        self.queue.sent.clear()
        self.pacer: ProviderPacer | None = None

    def run(self, message: RestoreMessage | None = None) -> RunReport:
        run = RestoreRun(
            repository=self.repository,
            storage=self.storage,
            queue=self.queue,
            editor=self.editor,
            preprocess=lambda data: self.preprocess(data),
            fetch_result=lambda url: self.result,
            settings=self.settings,
            announcer=self.announcer,
            pacer=self.pacer,
            clock=lambda: self.now,
        )
        return run.run(message or self.message)


def test_a_run_stores_the_restoration_and_settles_the_photo_ready() -> None:
    world = World()
    report = world.run()

    attempt = world.repository.attempt(world.attempt_id)
    assert report.outcome is RunOutcome.SUCCEEDED
    assert attempt.state is AttemptState.SUCCEEDED
    assert world.repository.photo(world.photo.id).status is PhotoStatus.READY
    assert world.repository.photo(world.photo.id).processed_key == attempt.s3_key
    assert attempt.before_key and attempt.thumbnail_key
    assert world.storage.keys("restored/") == sorted(
        [attempt.s3_key, attempt.before_key, attempt.thumbnail_key]
    )
    # The result's pixels, marked as an AI edit (tests/unit/test_result_image.py).
    assert xmp_fields(world.storage.objects[attempt.s3_key])["Iptc4xmpExt:AISystemUsed"] == (
        "Qwen/Qwen-Image-Edit"
    )
    assert world.storage.objects[attempt.before_key] == jpeg()  # what the model was given
    with Image.open(io.BytesIO(world.storage.objects[attempt.thumbnail_key])) as thumbnail:
        assert thumbnail.format == "JPEG" and thumbnail.size == (40, 30)  # never upscaled
    assert world.repository.tables.jobs[world.photo.id]["thumbnail_s3_key"] == (
        attempt.thumbnail_key
    )
    assert attempt.phase is Phase.SUCCEEDED and attempt.started_at and attempt.finished_at
    assert attempt.params["seed"] == 123456 and attempt.params["provider_trace_id"] == "ti_fake"
    assert world.storage.objects[world.photo.original_key] == b"original bytes"


def test_a_permanent_failure_fails_the_attempt_and_reverts_the_photo() -> None:
    world = World()

    def corrupt(data: bytes) -> ImagePreprocessResult:
        raise CorruptImage("corrupt image: truncated")

    world.preprocess = corrupt
    report = world.run()

    attempt = world.repository.attempt(world.attempt_id)
    assert report.outcome is RunOutcome.FAILED
    assert attempt.error is not None and attempt.error["code"] == "corrupt_image"
    assert world.repository.photo(world.photo.id).status is PhotoStatus.UPLOADED
    assert world.editor.requests == []


def test_a_failure_after_the_provider_call_keeps_its_trace_id() -> None:
    world = World()
    world.result = b"not an image"
    world.run()
    error = world.repository.attempt(world.attempt_id).error
    assert error is not None and error["code"] == InvalidProviderResult.code
    assert error["provider_trace_id"] == "ti_fake"
    assert world.storage.keys("restored/") == []


def test_a_transient_failure_raises_for_sqs_and_notes_the_error() -> None:
    world = World()
    world.editor.answers = [ProviderUnavailable("SiliconFlow answered 503")]
    with pytest.raises(ProviderUnavailable):
        world.run()
    attempt = world.repository.attempt(world.attempt_id)
    assert attempt.state is AttemptState.PENDING
    assert attempt.last_transient_error is not None
    assert attempt.last_transient_error["code"] == "provider_unavailable"
    world.run()  # the redelivery succeeds and drops the note
    assert "last_transient_error" not in world.repository.attempt(world.attempt_id).params


def test_a_rate_limit_re_sends_the_message_with_the_providers_delay() -> None:
    world = World()
    world.editor.answers = [ProviderRateLimited("429", retry_after_seconds=7)]
    report = world.run()
    assert report.outcome is RunOutcome.DEFERRED
    [(deferred, delay)] = world.queue.sent
    assert delay == 7 and deferred.rate_limit_deferrals == 1
    assert world.repository.attempt(world.attempt_id).state is AttemptState.PENDING


def test_endless_rate_limits_end_in_a_failure() -> None:
    world = World(Settings(max_rate_limit_deferrals=1))
    world.editor.answers = [ProviderRateLimited("429")]
    report = world.run(world.message.model_copy(update={"rate_limit_deferrals": 1}))
    assert report.outcome is RunOutcome.FAILED
    assert world.queue.sent == []


def test_a_stale_or_foreign_message_changes_nothing() -> None:
    world = World()
    world.run()
    settled = world.repository.attempt(world.attempt_id)
    assert world.run().outcome is RunOutcome.SKIPPED
    foreign = world.message.model_copy(update={"photo_id": uuid.uuid4()})
    assert world.run(foreign).outcome is RunOutcome.SKIPPED
    assert world.repository.attempt(world.attempt_id) == settled
    assert len(world.editor.requests) == 1


def test_a_late_message_of_a_failed_attempt_removes_what_a_dead_delivery_stored() -> None:
    world = World()
    world.preprocess = lambda data: (_ for _ in ()).throw(CorruptImage("bad"))
    world.run()
    attempt = world.repository.attempt(world.attempt_id)
    from photo_restore.storage import restored_key

    world.storage.objects[restored_key(attempt)] = b"left over by a dead delivery"
    world.run()
    assert world.storage.keys("restored/") == []


def test_a_result_above_the_pixel_cap_fails_as_an_invalid_result_and_stores_nothing() -> None:
    world = World(Settings(result_max_pixels=1000))
    world.result = jpeg((40, 30))  # 1200 pixels
    world.run()
    error = world.repository.attempt(world.attempt_id).error
    assert error is not None and error["code"] == "invalid_provider_result"
    assert "RESULT_MAX_PIXELS" in error["message"]
    assert world.storage.keys("restored/") == []


def test_a_transient_failure_brings_the_message_back_after_its_backoff_not_the_timeout() -> None:
    world = World(Settings(transient_retry_delays_seconds=[30, 120, 480]))
    run = RestoreRun(
        repository=world.repository,
        storage=world.storage,
        queue=world.queue,
        editor=FakeEditor(*[ProviderUnavailable("503")] * 3),
        preprocess=prepared,
        fetch_result=lambda url: world.result,
        settings=world.settings,
    )
    for receive_count in (1, 2, 3):
        with pytest.raises(ProviderUnavailable):
            run.run(
                world.message,
                Delivery(receipt_handle=f"r{receive_count}", receive_count=receive_count),
            )
    delays = [seconds for _, seconds in world.queue.retries]
    assert [d.receipt_handle for d, _ in world.queue.retries] == ["r1", "r2", "r3"]
    assert 15 <= delays[0] <= 30 and 60 <= delays[1] <= 120 and 240 <= delays[2] <= 480
    assert world.repository.attempt(world.attempt_id).deliveries == 3


def test_the_backoff_schedule_is_jittered_within_half_to_all_of_each_step() -> None:
    rng = random.Random(1)
    for count, base in [(1, 30), (2, 120), (3, 480), (7, 480)]:
        seen = {retry_delay_seconds(count, [30, 120, 480], rng) for _ in range(200)}
        assert min(seen) >= base // 2 and max(seen) <= base and len(seen) > 5
    assert retry_delay_seconds(1, [0]) == 0


def daily_cap() -> ProviderRateLimited:
    return ProviderRateLimited("SiliconFlow answered 429: ... IPD limit reached.", limit="IPD")


def test_a_daily_cap_holds_the_work_until_the_providers_day_ends_instead_of_failing_it() -> None:
    world = World()  # 09:00 UTC; the day ends at 16:00 UTC
    world.editor.answers = [daily_cap()]
    report = world.run()

    assert report.outcome is RunOutcome.HELD
    [(held, delay)] = world.queue.sent
    assert held.held_until == datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
    assert delay == 900  # re-sent every 15 minutes: a visibility hold would use up receives
    attempt = world.repository.attempt(world.attempt_id)
    assert attempt.state is AttemptState.PENDING
    assert attempt.waiting_for_capacity is not None
    assert attempt.waiting_for_capacity["limit"] == "IPD"
    assert world.repository.photo(world.photo.id).status is PhotoStatus.PROCESSING

    # Back before its time: nothing is asked of the provider, the photo's clock restarts.
    before = world.repository.photo(world.photo.id).updated_at
    world.queue.sent.clear()
    world.now += timedelta(minutes=15)
    assert world.run(held).outcome is RunOutcome.HELD
    assert len(world.editor.requests) == 1 and len(world.queue.sent) == 1
    assert world.repository.photo(world.photo.id).updated_at > before
    assert world.repository.attempt(world.attempt_id).deliveries == 1  # holds are not tries

    # After the reset it runs, and the hold is no longer news.
    world.now = datetime(2026, 12, 2, 16, 1, tzinfo=UTC)
    assert world.run(held).outcome is RunOutcome.SUCCEEDED
    assert world.repository.attempt(world.attempt_id).waiting_for_capacity is None
    assert "waiting_for_capacity" not in world.repository.attempt(world.attempt_id).params


def test_a_hold_past_the_longest_allowed_ends_in_a_classified_failure() -> None:
    world = World(Settings(max_capacity_hold_hours=24))
    held_since = world.now - timedelta(hours=20)
    world.editor.answers = [daily_cap()]
    message = world.message.model_copy(update={"held_since": held_since})
    assert world.run(message).outcome is RunOutcome.FAILED  # the next reset is 27 h after
    error = world.repository.attempt(world.attempt_id).error
    assert error is not None and error["code"] == "provider_rate_limited"
    assert world.repository.photo(world.photo.id).status is PhotoStatus.UPLOADED


def test_a_per_minute_limit_still_defers_rather_than_holds() -> None:
    world = World()
    world.editor.answers = [ProviderRateLimited("429 ... IPM limit reached.", limit="IPM")]
    assert world.run().outcome is RunOutcome.DEFERRED


def test_the_result_records_its_real_size() -> None:
    world = World()
    world.result = jpeg((1184, 888))  # near 1 MP, as the reference pipeline returns
    world.run()
    attempt = world.repository.attempt(world.attempt_id)
    assert attempt.params["result_dimensions"] == [1184, 888]
    assert attempt.params["result_bytes"] == len(world.storage.objects[attempt.s3_key])


def cancel_when_the_worker_reaches(
    world: World, phase: Phase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user cancels just as the worker records `phase` (the fake's tables are shared, so
    the cancel commits inside the worker's transaction, as a concurrent commit would land)."""
    original = FakeTransaction.set_phase

    def set_phase(tx: FakeTransaction, attempt_id: uuid.UUID, recorded: Phase, *args: Any) -> bool:
        if recorded is phase:
            world.requests.cancel_restore(Caller(world.photo.owner_id, None), world.photo.id)
        return original(tx, attempt_id, recorded, *args)

    monkeypatch.setattr(FakeTransaction, "set_phase", set_phase)


@pytest.mark.parametrize("phase", [Phase.GENERATING, Phase.STORING])
def test_a_worker_that_finds_its_attempt_canceled_stops_and_stores_nothing(
    phase: Phase, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World()
    cancel_when_the_worker_reaches(world, phase, monkeypatch)
    report = world.run()

    assert report.outcome is RunOutcome.SKIPPED and "canceled" in report.details["reason"]
    assert world.storage.keys("restored/") == []  # the before image is gone too
    # Canceled before generating: no provider call was made (one would not be refunded).
    assert len(world.editor.requests) == (0 if phase is Phase.GENERATING else 1)
    attempt = world.repository.attempt(world.attempt_id)
    assert attempt.state is AttemptState.CANCELED
    assert world.repository.photo(world.photo.id).status is PhotoStatus.UPLOADED
    assert [e.detail_type for e in world.publisher.events] == ["RestoreCanceled"]


def test_a_worker_whose_commit_finds_the_attempt_canceled_removes_what_it_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World()
    original = FakeTransaction.complete_attempt

    def complete(tx: FakeTransaction, **fields: Any) -> bool:
        world.requests.cancel_restore(Caller(world.photo.owner_id, None), world.photo.id)
        return original(tx, **fields)

    monkeypatch.setattr(FakeTransaction, "complete_attempt", complete)
    assert world.run().outcome is RunOutcome.SKIPPED
    assert world.storage.keys("restored/") == []
    assert world.repository.photo(world.photo.id).processed_key is None
    assert world.repository.attempt(world.attempt_id).state is AttemptState.CANCELED


def test_each_ending_publishes_one_event_after_its_commit() -> None:
    world = World()
    world.run()
    world.run()  # a duplicate delivery of a settled attempt publishes nothing more
    [event] = world.publisher.events
    attempt = world.repository.attempt(world.attempt_id)
    assert event.detail_type == "RestoreSucceeded"
    assert event.detail == {
        "photo_id": str(world.photo.id),
        "restore_attempt_id": str(world.attempt_id),
        "owner_id": world.photo.owner_id,
        "outcome": "succeeded",
        "error_code": None,
        "verdict": None,  # the faithfulness check is off in this world
        "result_keys": {
            "restored": attempt.s3_key,
            "thumbnail": attempt.thumbnail_key,
            "before": attempt.before_key,
        },
    }
    assert attempt.event_published

    failing = World()
    failing.preprocess = lambda data: (_ for _ in ()).throw(CorruptImage("bad"))
    failing.run()
    [event] = failing.publisher.events
    assert (event.detail_type, event.detail["error_code"]) == ("RestoreFailed", "corrupt_image")
    assert event.detail["result_keys"] == {"restored": None, "thumbnail": None, "before": None}


def test_a_refused_publish_keeps_the_restoration_and_the_redelivery_publishes_it() -> None:
    world = World()
    world.publisher.refusing = True
    with pytest.raises(EventPublishFailed):
        world.run()  # raising makes SQS redeliver the message
    attempt = world.repository.attempt(world.attempt_id)
    assert attempt.state is AttemptState.SUCCEEDED and not attempt.event_published
    assert world.repository.photo(world.photo.id).status is PhotoStatus.READY

    world.publisher.refusing = False
    assert world.run().outcome is RunOutcome.SKIPPED  # nothing is redone...
    assert len(world.editor.requests) == 1
    assert [e.detail_type for e in world.publisher.events] == ["RestoreSucceeded"]  # ...but this
    assert world.repository.attempt(world.attempt_id).event_published


def test_a_deferred_retry_reuses_the_input_its_first_delivery_prepared() -> None:
    world = World()
    preprocessed: list[bytes] = []

    def counting(data: bytes) -> ImagePreprocessResult:
        preprocessed.append(data)
        return prepared(data)

    world.preprocess = counting
    world.editor.answers = [ProviderRateLimited("429", retry_after_seconds=7)]
    world.run()
    assert world.repository.attempt(world.attempt_id).phase is Phase.QUEUED
    [(deferred, _)] = world.queue.sent
    report = world.run(deferred)

    assert report.outcome is RunOutcome.SUCCEEDED and report.reused_input
    assert len(preprocessed) == 1  # the original was read and preprocessed once
    first, second = world.editor.requests
    assert first.image == second.image  # the same before image, presigned again
    params = world.repository.attempt(world.attempt_id).params
    assert params["preprocessed"]["submitted_dimensions"] == [32, 24]


def test_a_retry_whose_before_image_is_gone_prepares_it_again() -> None:
    world = World()
    world.editor.answers = [ProviderRateLimited("429", retry_after_seconds=7)]
    world.run()
    world.storage.objects.clear()
    world.storage.objects[world.photo.original_key] = b"original bytes"
    [(deferred, _)] = world.queue.sent
    report = world.run(deferred)
    assert report.outcome is RunOutcome.SUCCEEDED and not report.reused_input


def test_the_phases_are_recorded_as_the_worker_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    seen: list[tuple[Phase, int]] = []
    original = FakeTransaction.set_phase

    def set_phase(tx: FakeTransaction, attempt_id: uuid.UUID, recorded: Phase, *args: Any) -> bool:
        seen.append((world.repository.attempt(attempt_id).phase, len(world.editor.requests)))
        return original(tx, attempt_id, recorded, *args)

    monkeypatch.setattr(FakeTransaction, "set_phase", set_phase)
    world.run()
    # Preprocessing (set when the delivery started) before the call, generating during it.
    assert seen == [(Phase.PREPROCESSING, 0), (Phase.GENERATING, 1)]


class PacedWorld(World):
    """Two claimed photos and a pacer of 2 images a minute (a slot every ~31 s)."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []
        self.pacer = ProviderPacer(
            self.repository,
            key="Qwen/Qwen-Image-Edit",
            images_per_minute=2,
            max_wait_seconds=5,
            sleep=self.sleeps.append,
            clock=lambda: self.repository.clock.now,
        )
        self.other = self.repository.add_photo()
        self.storage.objects[self.other.original_key] = b"original bytes"
        accepted = self.requests.request_restore(Caller(self.other.owner_id, None), self.other.id)
        self.other_message = RestoreMessage(
            photo_id=self.other.id, restore_attempt_id=accepted.body.restore_attempt_id
        )
        self.queue.sent.clear()


def test_pacing_spaces_provider_calls_and_sends_later_work_to_its_slot() -> None:
    world = PacedWorld()
    assert world.run().outcome is RunOutcome.SUCCEEDED  # the first slot is now
    report = world.run(world.other_message)  # the next is ~31 s away: not waited for here

    assert report.outcome is RunOutcome.PACED
    assert len(world.editor.requests) == 1 and world.sleeps == []
    [(later, delay)] = world.queue.sent
    assert later.paced_slot is not None and 27 <= delay <= 29  # back a little before it
    attempt = world.repository.attempt(world.other_message.restore_attempt_id)
    assert attempt.phase is Phase.QUEUED and attempt.state is AttemptState.PENDING
    assert attempt.params["preprocessed"]["submitted_dimensions"] == [32, 24]

    # Back 2 s before its slot: it waits those here, reserves nothing new, and calls.
    world.repository.clock.now = later.paced_slot - timedelta(seconds=2)
    reserved = dict(world.repository.tables.pacing)
    report = world.run(later)
    assert report.outcome is RunOutcome.SUCCEEDED and report.reused_input
    assert [round(s, 1) for s in world.sleeps] == [2.0]
    assert world.repository.tables.pacing == reserved


def test_work_back_well_after_its_slot_takes_a_fresh_one_instead_of_crowding_the_next() -> None:
    world = PacedWorld()
    assert world.run().outcome is RunOutcome.SUCCEEDED  # takes the slot now; the next is ~31 s on
    stale_slot = world.repository.clock.now - timedelta(seconds=5)  # its container was busy
    report = world.run(world.other_message.model_copy(update={"paced_slot": stale_slot}))
    assert report.outcome is RunOutcome.PACED  # queued for the next free slot, not called now
    [(later, _)] = world.queue.sent
    assert later.paced_slot is not None and later.paced_slot > world.repository.clock.now
    assert len(world.editor.requests) == 1


def test_work_back_a_moment_after_its_slot_still_uses_it() -> None:
    world = PacedWorld()
    slot = world.repository.clock.now - timedelta(seconds=0.5)
    reserved = dict(world.repository.tables.pacing)
    assert world.run(world.message.model_copy(update={"paced_slot": slot})).outcome is (
        RunOutcome.SUCCEEDED
    )
    assert world.repository.tables.pacing == reserved and world.sleeps == []


def test_a_429_despite_pacing_gives_up_the_slot_it_used() -> None:
    world = PacedWorld()
    world.editor.answers = [ProviderRateLimited("429 IPM limit reached.", limit="IPM")]
    held_slot = world.repository.clock.now + timedelta(seconds=1)
    assert world.run(world.message.model_copy(update={"paced_slot": held_slot})).outcome is (
        RunOutcome.DEFERRED
    )
    [(deferred, _)] = world.queue.sent
    assert deferred.paced_slot is None  # the next try reserves a fresh slot


def test_when_pacing_is_unavailable_work_goes_on_unpaced() -> None:
    world = PacedWorld()

    def unavailable(*args: object) -> None:
        raise DependencyUnavailable("the pacing table is missing")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FakeTransaction, "reserve_provider_slot", unavailable)
        assert world.run().outcome is RunOutcome.SUCCEEDED

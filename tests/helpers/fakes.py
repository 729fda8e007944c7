"""In-memory fakes of the repository, storage, queue and provider, for unit tests of the use cases.

The fake repository applies the same rules as the SQL one (the status table, the attempt
lifecycle, "in flight" = the photo's newest attempt and still pending) through the pure modules,
and rolls back on any exception, so a use case cannot tell it from Postgres: the contract suite
(tests/integration/test_repository_contract.py) runs the same tests on it and on SqlRepository.
"""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from photo_restore.attempts import (
    DELIVERIES,
    ENQUEUED_AT,
    ERROR,
    EVENT_PUBLISHED_AT,
    FINAL_STATES,
    FINISHED_AT,
    LAST_TRANSIENT_ERROR,
    PENDING_S3_KEY,
    PHASE,
    PHASE_STARTED_AT,
    PROVIDER_CALLS,
    STARTED_AT,
    THUMBNAIL_KEY,
    WAITING_FOR_CAPACITY,
    Attempt,
    Phase,
    replaces_selection,
)
from photo_restore.attempts import AttemptState as State
from photo_restore.errors import (
    NOT_USER_CAUSED_CODES,
    DependencyUnavailable,
    OriginalMissing,
    QueueUnavailable,
)
from photo_restore.events import EventPublishFailed, RestoreEvent
from photo_restore.photos import Photo
from photo_restore.queue import Delivery, RestoreMessage, RestoreQueue
from photo_restore.repository import AttemptCursor, FailedRestore, ProviderSlot, QuotaUsage
from photo_restore.siliconflow import SiliconFlowRequest, SiliconFlowResponse
from photo_restore.status import (
    RESTORABLE_STATUSES,
    PhotoStatus,
    check_transitions,
    status_after_failed_restore,
)
from photo_restore.storage import ObjectStorage


@dataclass
class Tables:
    photos: dict[uuid.UUID, Photo] = field(default_factory=dict)
    attempts: dict[uuid.UUID, Attempt] = field(default_factory=dict)
    jobs: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    pacing: dict[str, datetime] = field(default_factory=dict)


class FakeClock:
    """Strictly increasing timestamps, as `clock_timestamp()` gives attempts."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


class FakeRepository:
    def __init__(self) -> None:
        self.tables = Tables()
        self.clock = FakeClock()
        self.unavailable = False  # every transaction fails as a database outage would

    @contextmanager
    def transaction(self) -> Iterator[FakeTransaction]:
        if self.unavailable:
            raise DependencyUnavailable("the database is unavailable; try again")
        saved = copy.deepcopy(self.tables)
        try:
            yield FakeTransaction(self.tables, self.clock)
        except BaseException:
            self.tables = saved
            raise

    def add_photo(self, *, status: PhotoStatus = PhotoStatus.UPLOADED, **fields: Any) -> Photo:
        photo_id = fields.pop("id", uuid.uuid4())
        photo = Photo(
            id=photo_id,
            owner_id=fields.pop("owner_id", f"user-{uuid.uuid4()}"),
            original_key=fields.pop("original_key", f"originals/u/{photo_id}.jpg"),
            processed_key=fields.pop("processed_key", None),
            status=status,
            mime_type="image/jpeg",
            size_bytes=1,
            updated_at=self.clock(),
        )
        self.tables.photos[photo.id] = photo
        return photo

    def photo(self, photo_id: uuid.UUID) -> Photo:
        return self.tables.photos[photo_id]

    def attempt(self, attempt_id: uuid.UUID) -> Attempt:
        return self.tables.attempts[attempt_id]


class FakeTransaction:
    def __init__(self, tables: Tables, clock: FakeClock) -> None:
        self._t = tables
        self._clock = clock

    def photo(self, photo_id: uuid.UUID) -> Photo | None:
        return self._t.photos.get(photo_id)

    def owned_photo(self, photo_id: uuid.UUID, owner_id: str) -> Photo | None:
        photo = self._t.photos.get(photo_id)
        return photo if photo and photo.owner_id == owner_id else None

    def attempt(self, attempt_id: uuid.UUID) -> Attempt | None:
        return self._t.attempts.get(attempt_id)

    def attempts(self, photo_id: uuid.UUID) -> list[Attempt]:
        mine = [a for a in self._t.attempts.values() if a.photo_id == photo_id]
        return sorted(mine, key=lambda a: (a.created_at, a.id), reverse=True)

    def newest_attempt(self, photo_id: uuid.UUID) -> Attempt | None:
        return next(iter(self.attempts(photo_id)), None)

    def attempts_page(
        self, photo_id: uuid.UUID, *, limit: int, after: AttemptCursor | None = None
    ) -> list[Attempt]:
        mine = self.attempts(photo_id)
        if after is not None:
            mine = [a for a in mine if (a.created_at, a.id) < (after.created_at, after.attempt_id)]
        return mine[:limit]

    def selected_restore_id(self, photo_id: uuid.UUID) -> uuid.UUID | None:
        selected: uuid.UUID | None = self._t.jobs.get(photo_id, {}).get("selected_restore_id")
        return selected

    def _owned_recent(self, owner_id: str, window: timedelta) -> list[Attempt]:
        since = self._clock.now - window
        return [
            a
            for a in self._t.attempts.values()
            if self._t.photos[a.photo_id].owner_id == owner_id and a.created_at > since
        ]

    def keyed_attempt(self, owner_id: str, key: str, *, window: timedelta) -> Attempt | None:
        keyed = [a for a in self._owned_recent(owner_id, window) if a.idempotency_key == key]
        return max(keyed, key=lambda a: (a.created_at, a.id), default=None)

    def quota_usage(self, owner_id: str, *, window: timedelta) -> QuotaUsage:
        counted = [
            a
            for a in self._owned_recent(owner_id, window)
            if (a.params.get(ERROR) or {}).get("code") not in NOT_USER_CAUSED_CODES
        ]
        if not counted:
            return QuotaUsage(0, 0)
        oldest = min(a.created_at for a in counted)
        left = (oldest + window - self._clock.now).total_seconds()
        return QuotaUsage(len(counted), max(0, int(-(-left // 1))))

    def inference_seconds_median(self, *, sample: int) -> float | None:
        # The sample is of the succeeded attempts that have a time (a JSON number: no bool).
        timed = [
            a
            for a in self._t.attempts.values()
            if a.state is State.SUCCEEDED
            and isinstance(a.params.get("inference_time_seconds"), int | float)
            and not isinstance(a.params["inference_time_seconds"], bool)
        ]
        timed.sort(key=lambda a: (a.created_at, a.id), reverse=True)
        times = sorted(float(a.params["inference_time_seconds"]) for a in timed[:sample])
        if not times:
            return None
        middle = len(times) // 2
        return times[middle] if len(times) % 2 else (times[middle - 1] + times[middle]) / 2

    def unannounced_attempts(
        self, *, finished_before: timedelta, window: timedelta
    ) -> list[Attempt]:
        now = self._clock()  # a later transaction's now(): after every stamp written before
        found = [
            a
            for a in self._t.attempts.values()
            if a.state in FINAL_STATES
            and FINISHED_AT in a.params
            and not a.event_published
            and a.created_at > now - window
            and a.finished_at is not None
            and a.finished_at < now - finished_before
        ]
        return sorted(found, key=lambda a: a.created_at)

    def lock_owner(self, owner_id: str) -> None:
        """The fake runs one transaction at a time: nothing to wait for."""

    def reserve_provider_slot(self, key: str, interval: timedelta) -> ProviderSlot:
        now = self._clock()
        starts_at = max(self._t.pacing.get(key, now), now)
        self._t.pacing[key] = starts_at + interval
        return ProviderSlot(starts_at=starts_at, reserved_at=now)

    def idle_processing_photo_ids(self, idle_before: datetime) -> list[uuid.UUID]:
        return [
            p.id
            for p in self._t.photos.values()
            if p.status is PhotoStatus.PROCESSING and p.updated_at < idle_before
        ]

    def failed_newest_attempts(
        self,
        *,
        since: datetime,
        codes: Collection[str] | None = None,
        photo_ids: Collection[uuid.UUID] | None = None,
    ) -> list[FailedRestore]:
        found: list[tuple[datetime, FailedRestore]] = []
        for photo in self._t.photos.values():
            newest = self.newest_attempt(photo.id)
            if newest is None or newest.error is None or newest.created_at < since:
                continue
            code = newest.error.get("code")
            if (codes and code not in codes) or (photo_ids and photo.id not in photo_ids):
                continue
            found.append(
                (newest.created_at, FailedRestore(photo.id, newest.id, photo.owner_id, code))
            )
        return [failed for _, failed in sorted(found, key=lambda pair: pair[0])]

    def claim_photo(self, photo_id: uuid.UUID, owner_id: str) -> Photo | None:
        photo = self.owned_photo(photo_id, owner_id)
        if photo is None or photo.status not in RESTORABLE_STATUSES:
            return None
        return self._set_photo(photo, status=PhotoStatus.PROCESSING)

    def ensure_job(self, photo_id: uuid.UUID, email: str | None) -> None:
        self._t.jobs.setdefault(photo_id, {"email": email, "selected_restore_id": None})

    def insert_attempt(
        self, *, attempt_id: uuid.UUID, photo_id: uuid.UUID, model: str, params: Mapping[str, Any]
    ) -> Attempt:
        attempt = Attempt(attempt_id, photo_id, PENDING_S3_KEY, model, dict(params), self._clock())
        self._t.attempts[attempt_id] = attempt
        return attempt

    def start_attempt(
        self, photo_id: uuid.UUID, attempt_id: uuid.UUID, *, count_delivery: bool = True
    ) -> Photo | None:
        photo = self._in_flight_photo(photo_id, attempt_id)
        if photo is None:
            return None
        if not count_delivery:
            return self._set_photo(photo)
        attempt = self._t.attempts[attempt_id]
        now = self._stamp()
        params = {k: v for k, v in attempt.params.items() if k != WAITING_FOR_CAPACITY}
        params |= {
            DELIVERIES: attempt.deliveries + 1,
            PHASE: Phase.PREPROCESSING.value,
            PHASE_STARTED_AT: now,
            STARTED_AT: attempt.params.get(STARTED_AT, now),
        }
        self._set_attempt(attempt, params=params)
        return self._set_photo(photo)

    def complete_attempt(
        self,
        *,
        photo_id: uuid.UUID,
        attempt_id: uuid.UUID,
        s3_key: str,
        params: Mapping[str, Any],
    ) -> bool:
        photo = self._in_flight_photo(photo_id, attempt_id)
        if photo is None:
            return False
        check_transitions([PhotoStatus.PROCESSING], [PhotoStatus.READY])
        selected_id = self._t.jobs[photo_id].get("selected_restore_id")
        selects = replaces_selection(
            params, lambda: self._t.attempts.get(selected_id) if selected_id else None
        )
        self._set_photo(
            photo,
            status=PhotoStatus.READY,
            processed_key=s3_key if selects else photo.processed_key,
        )
        attempt = self._t.attempts[attempt_id]
        dropped = (LAST_TRANSIENT_ERROR, WAITING_FOR_CAPACITY)
        merged = {k: v for k, v in attempt.params.items() if k not in dropped}
        merged |= dict(params) | {FINISHED_AT: self._stamp()}
        self._set_attempt(attempt, s3_key=s3_key, params=merged)
        if selects:
            self._select(photo_id, attempt_id, params.get(THUMBNAIL_KEY))
        return True

    def fail_attempt(
        self,
        *,
        photo_id: uuid.UUID,
        attempt_id: uuid.UUID,
        error: Mapping[str, Any],
        idle_before: datetime | None = None,
    ) -> bool:
        photo = self._in_flight_photo(photo_id, attempt_id)
        if photo is None or (idle_before is not None and photo.updated_at >= idle_before):
            return False
        self._revert(photo)
        attempt = self._t.attempts[attempt_id]
        ended = {ERROR: dict(error), FINISHED_AT: self._stamp()}
        self._set_attempt(attempt, params={**attempt.params, **ended})
        return True

    def cancel_in_flight(
        self, photo_id: uuid.UUID, owner_id: str, error: Mapping[str, Any]
    ) -> Attempt | None:
        newest = self.newest_attempt(photo_id)
        if newest is None or self._in_flight_photo(photo_id, newest.id) is None:
            return None
        if self._t.photos[photo_id].owner_id != owner_id:
            return None
        self.fail_attempt(photo_id=photo_id, attempt_id=newest.id, error=error)
        return self._t.attempts[newest.id]

    def set_phase(
        self, attempt_id: uuid.UUID, phase: Phase, extra: Mapping[str, Any] | None = None
    ) -> bool:
        attempt = self._t.attempts.get(attempt_id)
        if attempt is None or attempt.state is not State.PENDING:
            return False
        patch = {PHASE: phase.value, PHASE_STARTED_AT: self._stamp(), **(extra or {})}
        self._set_attempt(attempt, params={**attempt.params, **patch})
        return True

    def mark_event_published(self, attempt_id: uuid.UUID) -> None:
        self._stamp_attempt(attempt_id, EVENT_PUBLISHED_AT)

    def mark_enqueued(self, attempt_id: uuid.UUID) -> None:
        self._stamp_attempt(attempt_id, ENQUEUED_AT)

    def _stamp_attempt(self, attempt_id: uuid.UUID, key: str) -> None:
        attempt = self._t.attempts.get(attempt_id)
        if attempt is None:
            return
        self._set_attempt(attempt, params={**attempt.params, key: self._stamp()})

    def _stamp(self) -> str:
        return self._clock().isoformat()

    def note_transient_error(self, attempt_id: uuid.UUID, record: Mapping[str, Any]) -> bool:
        attempt = self._t.attempts.get(attempt_id)
        if attempt is None or attempt.state is not State.PENDING:
            return False
        self._set_attempt(attempt, params={**attempt.params, LAST_TRANSIENT_ERROR: dict(record)})
        return True

    def record_provider_calls(
        self, attempt_id: uuid.UUID, calls: int, extra: Mapping[str, Any] | None = None
    ) -> bool:
        attempt = self._t.attempts.get(attempt_id)
        if attempt is None:
            return False
        counted = attempt.provider_calls + calls
        self._set_attempt(
            attempt, params={**attempt.params, **(extra or {}), PROVIDER_CALLS: counted}
        )
        return True

    def photos_refused_alike(self, refusal: str, *, since: datetime, other_than: uuid.UUID) -> int:
        refused = {
            a.photo_id
            for a in self._t.attempts.values()
            if a.created_at >= since
            and a.photo_id != other_than
            and isinstance(error := a.params.get(ERROR), Mapping)
            and error.get("refusal") == refusal
        }
        return len(refused)

    def wait_for_capacity(self, attempt_id: uuid.UUID, hold: Mapping[str, Any]) -> bool:
        attempt = self._t.attempts.get(attempt_id)
        if attempt is None or attempt.state is not State.PENDING:
            return False
        self._set_attempt(attempt, params={**attempt.params, WAITING_FOR_CAPACITY: dict(hold)})
        return True

    def revert_photo_without_attempt(self, photo_id: uuid.UUID, idle_before: datetime) -> bool:
        photo = self._t.photos.get(photo_id)
        if (
            photo is None
            or photo.status is not PhotoStatus.PROCESSING
            or photo.updated_at >= idle_before
            or self.newest_attempt(photo_id) is not None
        ):
            return False
        self._revert(photo)
        return True

    def select_restore(self, attempt: Attempt) -> None:
        if attempt.restored_key is None:
            raise ValueError("only a succeeded attempt can be selected")
        photo = self._t.photos[attempt.photo_id]
        self._set_photo(photo, processed_key=attempt.restored_key, touch=False)
        self._select(attempt.photo_id, attempt.id, attempt.thumbnail_key)

    def _select(
        self, photo_id: uuid.UUID, attempt_id: uuid.UUID, thumbnail_key: str | None
    ) -> None:
        job = self._t.jobs.get(photo_id)
        if job is not None:  # an UPDATE of the job's row: nothing without one
            job |= {"selected_restore_id": attempt_id, "thumbnail_s3_key": thumbnail_key}

    def _in_flight_photo(self, photo_id: uuid.UUID, attempt_id: uuid.UUID) -> Photo | None:
        photo = self._t.photos.get(photo_id)
        newest = self.newest_attempt(photo_id)
        if photo is None or photo.status is not PhotoStatus.PROCESSING or newest is None:
            return None
        return photo if newest.id == attempt_id and newest.state is State.PENDING else None

    def _revert(self, photo: Photo) -> None:
        target = status_after_failed_restore(has_restoration=photo.processed_key is not None)
        self._set_photo(photo, status=target)

    def _set_photo(self, photo: Photo, *, touch: bool = True, **changes: Any) -> Photo:
        if "status" in changes:
            check_transitions([photo.status], [changes["status"]])
        if touch:
            changes["updated_at"] = self._clock()
        updated = dataclasses.replace(photo, **changes)
        self._t.photos[photo.id] = updated
        return updated

    def _set_attempt(self, attempt: Attempt, **changes: Any) -> None:
        self._t.attempts[attempt.id] = dataclasses.replace(attempt, **changes)


class FakeStorage(ObjectStorage):
    def __init__(self) -> None:
        super().__init__(s3_client=None, bucket="fake")  # type: ignore[arg-type]
        self.objects: dict[str, bytes] = {}

    def read(self, key: str, *, max_bytes: int) -> bytes:
        if key not in self.objects:
            raise OriginalMissing(f"s3://fake/{key} does not exist")
        return self.objects[key]

    def write_jpeg(self, key: str, data: bytes) -> None:
        self.objects[key] = data

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def delete_many(self, keys: list[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)

    def exists(self, key: str) -> bool:
        return key in self.objects

    def presigned_get_url(self, key: str, *, expires_seconds: int) -> str:
        return f"https://fake.s3/{key}?expires={expires_seconds}"

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))


class FakeQueue(RestoreQueue):
    def __init__(self) -> None:
        super().__init__(sqs_client=None, queue_url="fake")  # type: ignore[arg-type]
        self.sent: list[tuple[RestoreMessage, int]] = []
        self.retries: list[tuple[Delivery, int]] = []
        self.unavailable = False

    def retry_after(self, delivery: Delivery, seconds: int) -> None:
        self.retries.append((delivery, seconds))

    def send(self, message: RestoreMessage, *, delay_seconds: int = 0) -> str:
        if self.unavailable:
            raise QueueUnavailable("could not enqueue the restore: fake outage")
        self.sent.append((message, delay_seconds))
        return f"message-{len(self.sent)}"


class FakeEditor:
    """Answers each request with the next scripted response or error."""

    def __init__(self, *answers: SiliconFlowResponse | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[SiliconFlowRequest] = []

    def edit_image(self, request: SiliconFlowRequest) -> SiliconFlowResponse:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else ok_response()
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok_response(**fields: Any) -> SiliconFlowResponse:
    defaults: dict[str, Any] = {
        "image_url": "https://cdn.example/result.png",
        "inference_time": 12.5,
        "seed": 123456,
        "trace_id": "ti_fake",
    }
    return SiliconFlowResponse(**(defaults | fields))


class FakePublisher:
    """Keeps the events published; `refusing` makes every publish fail as an outage would."""

    def __init__(self) -> None:
        self.events: list[RestoreEvent] = []
        self.refusing = False

    def publish(self, event: RestoreEvent) -> None:
        if self.refusing:
            raise EventPublishFailed("EventBridge put_events failed: fake outage")
        self.events.append(event)

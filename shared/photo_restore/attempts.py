"""The restore attempt lifecycle: an attempt's states, phases and transitions, and how they are
recorded in the existing app's `restore_attempts` columns (`s3_key`, `params`). The only module
that knows that encoding; the repository writes it, everything else reads `Attempt`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

# `s3_key` of an attempt whose restored image is not stored (yet): the data model's sentinel.
PENDING_S3_KEY = "pending"
# params keys this service writes besides the request's.
ERROR = "error"  # why it failed (or was canceled): the record of errors.error_record
LAST_TRANSIENT_ERROR = "last_transient_error"  # the last retried error, for the DLQ handler
DELIVERIES = "deliveries"  # how many restore-queue deliveries started it (re-sends included)
WAITING_FOR_CAPACITY = "waiting_for_capacity"  # a daily cap's hold: {"until", "limit", "since"}
PHASE = "phase"  # where a pending attempt is: a Phase below, with when it got there
PHASE_STARTED_AT = "phase_started_at"
STARTED_AT = "started_at"  # its first delivery started
FINISHED_AT = "finished_at"  # it was settled: succeeded, failed or canceled
BEFORE_KEY = "before_key"  # the upright JPEG the model was given, beside the restoration
THUMBNAIL_KEY = "thumbnail_key"  # the restoration's gallery thumbnail (longest side 512)
PROVENANCE = "provenance"  # what the restoration and thumbnail carry (Provenance.record)
# The before image framed like the restoration (the model zoomed or shifted), for a slider.
FRAMED_BEFORE_KEY = "framed_before_key"
IDEMPOTENCY_KEY = "idempotency_key"  # the client's Idempotency-Key of the request that made it
ENQUEUED_AT = "enqueued_at"  # its message was sent (recorded for keyed requests, for replays)
EVENT_PUBLISHED_AT = "event_published_at"  # its final event reached the bus
PROVIDER_CALLS = "provider_calls"  # calls made to the image provider for it (each may be billed)
PROVIDER_ANSWER = "provider_answer"  # the provider's answer, kept until its result is stored
# The faithfulness check of its result (photo_restore.faithfulness): {"verdict", ...}.
FAITHFULNESS = "faithfulness"
# FAITHFULNESS_POLICY=retry: every provider call of an attempt that made more than one (each
# an image paid for): seed, trace id, verdict, and which result was kept.
FAITHFULNESS_CALLS = "faithfulness_calls"
FAITHFUL, DRIFTED = "faithful", "drifted"
# The error code of a canceled attempt (the seed keeps failures in params.error).
CANCELED_CODE = "canceled"


@dataclass(frozen=True)
class ProviderAnswer:
    """What the provider answered, committed the moment it arrives: a later delivery whose
    result URL is still valid resumes at the download instead of paying for another image."""

    result_url: str
    received_at: datetime
    expires_at: datetime  # when the result URL stops working (the documented hour)
    seed: int | None = None
    inference_time_seconds: float | None = None
    trace_id: str | None = None
    # The request fields sent (the image named by how it travelled, never its bytes).
    request: Mapping[str, Any] = field(default_factory=dict)

    def usable_at(self, now: datetime, margin: timedelta) -> bool:
        """Whether its URL is still valid `margin` from now (time for a whole download)."""
        return now + margin < self.expires_at

    def to_params(self) -> dict[str, Any]:
        return {
            "result_url": self.result_url,
            "received_at": self.received_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "seed": self.seed,
            "inference_time_seconds": self.inference_time_seconds,
            "trace_id": self.trace_id,
            "request": dict(self.request),
        }

    @classmethod
    def from_params(cls, value: object) -> ProviderAnswer | None:
        """The recorded answer; None when there is none or it is unreadable."""
        if not isinstance(value, Mapping):
            return None
        url, received, expires = (
            value.get("result_url"),
            _time(value.get("received_at")),
            _time(value.get("expires_at")),
        )
        if not isinstance(url, str) or not url or received is None or expires is None:
            return None
        seed, inference, trace_id, request = (
            value.get("seed"),
            value.get("inference_time_seconds"),
            value.get("trace_id"),
            value.get("request"),
        )
        return cls(
            result_url=url,
            received_at=received,
            expires_at=expires,
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            inference_time_seconds=(
                float(inference)
                if isinstance(inference, int | float) and not isinstance(inference, bool)
                else None
            ),
            trace_id=trace_id if isinstance(trace_id, str) else None,
            request=request if isinstance(request, Mapping) else {},
        )


class AttemptState(StrEnum):
    PENDING = "pending"  # claimed, not settled: the one a `processing` photo waits for
    SUCCEEDED = "succeeded"  # its restored image is stored, and `s3_key` names it
    FAILED = "failed"  # `params.error` says why
    CANCELED = "canceled"  # its user canceled it (`params.error.code == "canceled"`)


ALLOWED_TRANSITIONS: frozenset[tuple[AttemptState, AttemptState]] = frozenset(
    {
        (AttemptState.PENDING, AttemptState.SUCCEEDED),
        (AttemptState.PENDING, AttemptState.FAILED),
        (AttemptState.PENDING, AttemptState.CANCELED),
    }
)
# States no transition leaves.
FINAL_STATES: frozenset[AttemptState] = frozenset(AttemptState) - {
    source for source, _ in ALLOWED_TRANSITIONS
}


class Phase(StrEnum):
    """What a frontend shows: where a pending attempt is, or how it ended."""

    QUEUED = "queued"
    PREPROCESSING = "preprocessing"
    GENERATING = "generating"
    STORING = "storing"
    WAITING_FOR_CAPACITY = "waiting_for_capacity"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


# The phases the worker records while an attempt is pending, in order.
RUNNING_PHASES = (Phase.PREPROCESSING, Phase.GENERATING, Phase.STORING)
_FINAL_PHASES = {
    AttemptState.SUCCEEDED: Phase.SUCCEEDED,
    AttemptState.FAILED: Phase.FAILED,
    AttemptState.CANCELED: Phase.CANCELED,
}


def attempt_state(s3_key: str, params: Mapping[str, Any] | None) -> AttemptState:
    """Succeeded once its image is stored, failed or canceled once an error is recorded."""
    if s3_key != PENDING_S3_KEY:
        return AttemptState.SUCCEEDED
    error = params.get(ERROR) if params else None
    if error:
        canceled = isinstance(error, Mapping) and error.get("code") == CANCELED_CODE
        return AttemptState.CANCELED if canceled else AttemptState.FAILED
    return AttemptState.PENDING


def _time(value: object) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Attempt:
    """One row of `restore_attempts`, typed."""

    id: uuid.UUID
    # The column is `job_id`; jobs of photo restorations share the photo's id (see
    # RestoreRequests.request_restore), so in this package it is the photo's id.
    photo_id: uuid.UUID
    s3_key: str
    model: str
    params: Mapping[str, Any]
    created_at: datetime

    @property
    def state(self) -> AttemptState:
        return attempt_state(self.s3_key, self.params)

    @property
    def phase(self) -> Phase:
        state = self.state
        if state in _FINAL_PHASES:
            return _FINAL_PHASES[state]
        if self.waiting_for_capacity is not None:
            return Phase.WAITING_FOR_CAPACITY
        recorded = self.params.get(PHASE)
        return Phase(recorded) if recorded in set(Phase) else Phase.QUEUED

    @property
    def phase_started_at(self) -> datetime:
        return _time(self.params.get(PHASE_STARTED_AT)) or self.created_at

    @property
    def started_at(self) -> datetime | None:
        return _time(self.params.get(STARTED_AT))

    @property
    def finished_at(self) -> datetime | None:
        return _time(self.params.get(FINISHED_AT)) if self.state in FINAL_STATES else None

    @property
    def error(self) -> Mapping[str, Any] | None:
        """`params.error` of a failed or canceled attempt; None otherwise."""
        if self.state not in (AttemptState.FAILED, AttemptState.CANCELED):
            return None
        error: Mapping[str, Any] = self.params[ERROR]
        return error

    @property
    def restored_key(self) -> str | None:
        """The S3 key of the restored image of a succeeded attempt; None otherwise."""
        return self.s3_key if self.state is AttemptState.SUCCEEDED else None

    @property
    def before_key(self) -> str | None:
        return self._key(BEFORE_KEY)

    @property
    def thumbnail_key(self) -> str | None:
        return self._key(THUMBNAIL_KEY)

    @property
    def framed_before_key(self) -> str | None:
        return self._key(FRAMED_BEFORE_KEY)

    def _key(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if self.state is AttemptState.SUCCEEDED and isinstance(value, str) else None

    @property
    def provenance(self) -> Mapping[str, Any] | None:
        """What a succeeded attempt's images say of themselves; None for those stored before
        they carried provenance."""
        value = self.params.get(PROVENANCE)
        succeeded = self.state is AttemptState.SUCCEEDED
        return value if succeeded and isinstance(value, Mapping) else None

    @property
    def result_size(self) -> tuple[int, int] | None:
        return _size(self.params.get("result_dimensions"))

    @property
    def submitted_size(self) -> tuple[int, int] | None:
        preprocessed = self.params.get("preprocessed")
        if not isinstance(preprocessed, Mapping):
            return None
        return _size(preprocessed.get("submitted_dimensions"))

    @property
    def last_transient_error(self) -> Mapping[str, Any] | None:
        value = self.params.get(LAST_TRANSIENT_ERROR)
        return value if isinstance(value, Mapping) else None

    @property
    def deliveries(self) -> int:
        value = self.params.get(DELIVERIES, 0)
        return value if isinstance(value, int) else 0

    @property
    def waiting_for_capacity(self) -> Mapping[str, Any] | None:
        """The hold a daily cap put on a pending attempt; None when there is none."""
        value = self.params.get(WAITING_FOR_CAPACITY)
        pending = self.state is AttemptState.PENDING
        return value if pending and isinstance(value, Mapping) else None

    @property
    def held_until(self) -> datetime | None:
        """When a daily cap holding this pending attempt resets."""
        hold = self.waiting_for_capacity
        return _time(hold.get("until")) if hold else None

    @property
    def provider_calls(self) -> int:
        value = self.params.get(PROVIDER_CALLS, 0)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def provider_answer(self) -> ProviderAnswer | None:
        """The provider's answer a pending attempt is storing; None otherwise."""
        if self.state is not AttemptState.PENDING:
            return None
        return ProviderAnswer.from_params(self.params.get(PROVIDER_ANSWER))

    @property
    def faithfulness(self) -> Mapping[str, Any] | None:
        value = self.params.get(FAITHFULNESS)
        return value if isinstance(value, Mapping) else None

    @property
    def faithfulness_verdict(self) -> str | None:
        return faithfulness_verdict(self.params)

    @property
    def idempotency_key(self) -> str | None:
        value = self.params.get(IDEMPOTENCY_KEY)
        return value if isinstance(value, str) else None

    @property
    def enqueued(self) -> bool:
        return self.params.get(ENQUEUED_AT) is not None

    @property
    def event_published(self) -> bool:
        return self.params.get(EVENT_PUBLISHED_AT) is not None


def faithfulness_verdict(params: Mapping[str, Any]) -> str | None:
    record = params.get(FAITHFULNESS)
    verdict = record.get("verdict") if isinstance(record, Mapping) else None
    return verdict if isinstance(verdict, str) else None


def replaces_selection(
    new_params: Mapping[str, Any], selected: Callable[[], Attempt | None]
) -> bool:
    """Whether a new restoration becomes the photo's selection: always, except a drifted one
    over a faithful one (the user can still select it). `selected` is asked only then."""
    if faithfulness_verdict(new_params) != DRIFTED:
        return True
    current = selected()
    return current is None or current.faithfulness_verdict != FAITHFUL


def _size(value: object) -> tuple[int, int] | None:
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
    ):
        return (value[0], value[1])
    return None

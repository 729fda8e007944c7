"""The restore attempt lifecycle: an attempt's states and transitions, and how they are recorded
in the existing app's `restore_attempts` columns (`s3_key`, `params`). The only module that knows
that encoding; the repository writes it, everything else reads `Attempt.state`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

# `s3_key` of an attempt whose restored image is not stored (yet): the data model's sentinel.
PENDING_S3_KEY = "pending"
# params keys this service writes besides the request's: why it failed, and the last transient
# error a later delivery may still get past (for the DLQ handler's message).
ERROR = "error"
LAST_TRANSIENT_ERROR = "last_transient_error"
# How many deliveries of the restore queue (re-sent messages included) started this attempt.
DELIVERIES = "deliveries"
# A provider's daily cap holds the attempt: {"until": ISO time, "limit": "IPD"}.
WAITING_FOR_CAPACITY = "waiting_for_capacity"


class AttemptState(StrEnum):
    PENDING = "pending"  # claimed, not settled: the one a `processing` photo waits for
    SUCCEEDED = "succeeded"  # its restored image is stored, and `s3_key` names it
    FAILED = "failed"  # `params.error` says why


ALLOWED_TRANSITIONS: frozenset[tuple[AttemptState, AttemptState]] = frozenset(
    {
        (AttemptState.PENDING, AttemptState.SUCCEEDED),
        (AttemptState.PENDING, AttemptState.FAILED),
    }
)
# States no transition leaves.
FINAL_STATES: frozenset[AttemptState] = frozenset(AttemptState) - {
    source for source, _ in ALLOWED_TRANSITIONS
}


def attempt_state(s3_key: str, params: Mapping[str, Any] | None) -> AttemptState:
    """Succeeded once its image is stored, failed once an error is recorded, else pending."""
    if s3_key != PENDING_S3_KEY:
        return AttemptState.SUCCEEDED
    if params and params.get(ERROR):
        return AttemptState.FAILED
    return AttemptState.PENDING


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
    def error(self) -> Mapping[str, Any] | None:
        """`params.error` of a failed attempt; None otherwise."""
        if self.state is not AttemptState.FAILED:
            return None
        error: Mapping[str, Any] = self.params[ERROR]
        return error

    @property
    def restored_key(self) -> str | None:
        """The S3 key of the restored image of a succeeded attempt; None otherwise."""
        return self.s3_key if self.state is AttemptState.SUCCEEDED else None

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

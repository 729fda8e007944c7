"""Domain errors with a stable code; the one place saying how each class of failure is handled."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


def error_record(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The shape of `params.error`, the same wherever an attempt fails."""
    return {"code": code, "message": message, "at": datetime.now(UTC).isoformat(), **extra}


class FailureKind(StrEnum):
    """How the pipeline reacts to a failure."""

    PERMANENT = "permanent"  # fail the attempt now: retrying cannot help
    TRANSIENT = "transient"  # raise so SQS redelivers the message
    RATE_LIMITED = "rate_limited"  # defer the message without using up its receives


class RestoreError(Exception):
    """Base of every domain error: `code` is stable and safe to show to clients and operators."""

    code = "restore_error"
    kind = FailureKind.TRANSIENT
    http_status = 500

    def __init__(self, message: str, *, trace_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.trace_id = trace_id


# --- API-facing errors -------------------------------------------------------------------


class UnreadableBody(RestoreError):
    """The request body cannot be read as JSON: not UTF-8, not JSON, nested or numbered past
    what a parser should accept."""

    code = "unreadable_body"
    kind = FailureKind.PERMANENT
    http_status = 400


class Unauthenticated(RestoreError):
    code = "unauthenticated"
    kind = FailureKind.PERMANENT
    http_status = 401


class PhotoNotFound(RestoreError):
    """Also raised for a photo owned by someone else: never reveal which."""

    code = "photo_not_found"
    kind = FailureKind.PERMANENT
    http_status = 404


class AlreadyProcessing(RestoreError):
    code = "already_processing"
    kind = FailureKind.PERMANENT
    http_status = 409

    def __init__(self, message: str, *, restore_attempt_id: str | None) -> None:
        super().__init__(message)
        self.restore_attempt_id = restore_attempt_id


class PhotoNotRestorable(RestoreError):
    """Archived or deleted photos cannot be restored."""

    code = "photo_not_restorable"
    kind = FailureKind.PERMANENT
    http_status = 409


class RestoreAttemptNotFound(RestoreError):
    code = "restore_attempt_not_found"
    kind = FailureKind.PERMANENT
    http_status = 404


class RestoreNotSucceeded(RestoreError):
    code = "restore_not_succeeded"
    kind = FailureKind.PERMANENT
    http_status = 409


class QueueUnavailable(RestoreError):
    """The restore was not enqueued; the claim was rolled back, so the client may retry."""

    code = "queue_unavailable"
    kind = FailureKind.TRANSIENT
    http_status = 503


# --- Pipeline errors (worker) ------------------------------------------------------------


class UnsupportedImage(RestoreError):
    code = "unsupported_image"
    kind = FailureKind.PERMANENT
    http_status = 422


class CorruptImage(RestoreError):
    code = "corrupt_image"
    kind = FailureKind.PERMANENT
    http_status = 422


class ImageTooLarge(RestoreError):
    """Too many bytes or too many pixels (a decompression bomb), refused before decoding."""

    code = "image_too_large"
    kind = FailureKind.PERMANENT
    http_status = 422


class OriginalMissing(RestoreError):
    code = "original_missing"
    kind = FailureKind.PERMANENT
    http_status = 422


class ProviderRejected(RestoreError):
    """SiliconFlow answered 400: our request is wrong for this image; retrying cannot help."""

    code = "provider_rejected"
    kind = FailureKind.PERMANENT
    http_status = 502


class ProviderAuthFailed(RestoreError):
    """SiliconFlow answered 401/403: a configuration error that operators must fix."""

    code = "provider_auth_failed"
    kind = FailureKind.PERMANENT
    http_status = 502


class ProviderMisconfigured(RestoreError):
    """SiliconFlow refused what every request would get (an unknown model, a field or value of
    ours, a wrong base URL): not the photo's fault; operators must fix the configuration."""

    code = "provider_misconfigured"
    kind = FailureKind.PERMANENT
    http_status = 502


class ProviderContentRefused(RestoreError):
    """SiliconFlow's content filter refused this photo or its result."""

    code = "provider_content_refused"
    kind = FailureKind.PERMANENT
    http_status = 422


class ProviderRateLimited(RestoreError):
    code = "provider_rate_limited"
    kind = FailureKind.RATE_LIMITED
    http_status = 503

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: float | None = None,
        limit: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(message, trace_id=trace_id)
        self.retry_after_seconds = retry_after_seconds
        self.limit = limit  # the limit the 429 names: RPM, IPM, ... IPD

    @property
    def daily(self) -> bool:
        """A per-day cap (RPD, TPD, IPD): no retry helps before the day ends."""
        return self.limit is not None and self.limit.endswith("D")


class ProviderUnavailable(RestoreError):
    """5xx, timeouts and connection errors after the client's own bounded retries."""

    code = "provider_unavailable"
    kind = FailureKind.TRANSIENT
    http_status = 503


class InvalidProviderResult(RestoreError):
    """No image in the answer, a refused result URL, or bytes that are not an image."""

    code = "invalid_provider_result"
    kind = FailureKind.PERMANENT
    http_status = 502


class DependencyUnavailable(RestoreError):
    """S3, SQS or the database failed in a way a later delivery may not see."""

    code = "dependency_unavailable"
    kind = FailureKind.TRANSIENT
    http_status = 503


class AttemptNotVisible(RestoreError):
    """The message's attempt row is not visible (yet): retry, never drop."""

    code = "attempt_not_visible"
    kind = FailureKind.TRANSIENT
    http_status = 503


class StuckInProcessing(RestoreError):
    """Recorded by the sweeper on an attempt whose message was lost."""

    code = "stuck_in_processing"
    kind = FailureKind.PERMANENT
    http_status = 500


class RetriesExhausted(RestoreError):
    """Recorded by the DLQ handler when SQS gave up on a message."""

    code = "retries_exhausted"
    kind = FailureKind.PERMANENT
    http_status = 500

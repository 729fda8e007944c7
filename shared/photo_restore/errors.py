"""Domain errors with a stable code; the one place saying how each class of failure is handled:
by the pipeline (kind), by a frontend (user message, whether asking again may help) and by the
quota (whether the user's own photo caused it). HTTP statuses are the API's business
(photo_restore.http_errors maps the errors it answers)."""

from __future__ import annotations

from collections.abc import Mapping
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
    """Base of every domain error: `code` is stable and safe to show to clients and operators;
    `message` is for operators (it may quote the provider); `user_message` is for end users."""

    code = "restore_error"
    kind = FailureKind.TRANSIENT
    # For a frontend: whether asking again (later) may help, and what to tell the user.
    retryable = True
    user_message = "Something went wrong on our side. Please try again in a few minutes."
    # Whether an attempt that failed this way counts against its user's daily quota: only what
    # the user's own photo (or choice) caused does; provider and system failures do not.
    user_caused = False
    # The provider calls made before this was raised (each may be billed): the client sets it.
    provider_calls = 0

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
    retryable = False
    user_message = "The request could not be read."


class InvalidRequest(RestoreError):
    """A parameter, header or body field that is not what the route takes: `field` names it."""

    code = "invalid_request"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "The request is not valid."

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class Unauthenticated(RestoreError):
    code = "unauthenticated"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "Please sign in again."


class AnonymousNotAllowed(RestoreError):
    """A restore asked with an anonymous Supabase session (`is_anonymous` claim): each such
    session is a new user, so a per-user quota would not cap the provider bill."""

    code = "anonymous_not_allowed"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "Please sign in with an account to restore photos."


class PhotoNotFound(RestoreError):
    """Also raised for a photo owned by someone else: never reveal which."""

    code = "photo_not_found"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "This photo does not exist."


class AlreadyProcessing(RestoreError):
    code = "already_processing"
    kind = FailureKind.PERMANENT
    user_message = "This photo is already being restored."

    def __init__(self, message: str, *, restore_attempt_id: str | None) -> None:
        super().__init__(message)
        self.restore_attempt_id = restore_attempt_id


class NotProcessing(RestoreError):
    """Cancel asked while no restoration of the photo is in flight."""

    code = "not_processing"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "No restoration of this photo is in progress."


class PhotoNotRestorable(RestoreError):
    """Archived or deleted photos cannot be restored."""

    code = "photo_not_restorable"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "Archived photos cannot be restored."


class RestoreAttemptNotFound(RestoreError):
    code = "restore_attempt_not_found"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "This restoration does not exist."


class RestoreNotSucceeded(RestoreError):
    code = "restore_not_succeeded"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "Only a finished restoration can be chosen."


class IdempotencyKeyReused(RestoreError):
    """The same Idempotency-Key was used for another photo within its 24 hours."""

    code = "idempotency_key_reused"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "This request was already used for another photo."


class IdempotencyInProgress(RestoreError):
    """A request with this Idempotency-Key is still being accepted: ask again in a moment."""

    code = "idempotency_in_progress"
    kind = FailureKind.PERMANENT
    user_message = "This request is still being processed. Please try again in a moment."


class QuotaExceeded(RestoreError):
    code = "quota_exceeded"
    kind = FailureKind.PERMANENT
    user_message = "You have reached today's limit of restorations. Please try again later."

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class RateExceeded(QuotaExceeded):
    """The per-minute rate on top of the daily quota: the same code, a shorter wait."""

    user_message = "Too many restorations at once. Please wait a moment and try again."


class QueueUnavailable(RestoreError):
    """The restore was not enqueued; the claim was rolled back, so the client may retry."""

    code = "queue_unavailable"
    kind = FailureKind.TRANSIENT


# --- Pipeline errors (worker) ------------------------------------------------------------


class Canceled(RestoreError):
    """Recorded on an attempt its user canceled."""

    code = "canceled"
    kind = FailureKind.PERMANENT
    user_message = "You canceled this restoration."
    user_caused = True  # the provider call may already have been made


class UnsupportedImage(RestoreError):
    code = "unsupported_image"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = (
        "This file type cannot be restored. Please upload a JPEG, PNG, HEIC, WebP, TIFF, BMP "
        "or GIF photo."
    )
    user_caused = True


class CorruptImage(RestoreError):
    code = "corrupt_image"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "The photo file seems damaged. Please upload it again."
    user_caused = True


class ImageTooLarge(RestoreError):
    """Too many bytes or pixels (a decompression bomb), or a decode that cannot fit the memory
    budget: refused before decoding."""

    code = "image_too_large"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "The photo is too large to restore. Please upload a smaller version."
    user_caused = True


class OriginalMissing(RestoreError):
    code = "original_missing"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "The photo's file is missing. Please upload it again."


class ProviderRejected(RestoreError):
    """SiliconFlow answered 400 naming this photo's image, or nothing we can tell is ours:
    retrying cannot help. The same refusal for several photos is inferred systemic instead."""

    code = "provider_rejected"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "The restoration service could not process this photo."
    user_caused = True

    def __init__(
        self, message: str, *, trace_id: str | None = None, refusal: str | None = None
    ) -> None:
        super().__init__(message, trace_id=trace_id)
        # What the provider said (its code and words): the same one across photos is systemic.
        self.refusal = refusal


class ProviderAuthFailed(RestoreError):
    """SiliconFlow answered 401/403: a configuration error that operators must fix."""

    code = "provider_auth_failed"
    kind = FailureKind.PERMANENT
    user_message = "The restoration service is unavailable right now. Please try again later."


class ProviderMisconfigured(RestoreError):
    """SiliconFlow refused what every request would get (an unknown model, a field or value of
    ours, a wrong base URL): not the photo's fault; operators must fix the configuration."""

    code = "provider_misconfigured"
    kind = FailureKind.PERMANENT
    user_message = "The restoration service is unavailable right now. Please try again later."


class ProviderContentRefused(RestoreError):
    """SiliconFlow's content filter refused this photo or its result."""

    code = "provider_content_refused"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "The restoration service's content rules do not allow this photo."
    user_caused = True


class ProviderRateLimited(RestoreError):
    code = "provider_rate_limited"
    kind = FailureKind.RATE_LIMITED
    user_message = "The restoration service is very busy. Please try again later."

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
    user_message = "The restoration service is busy. Please try again in a few minutes."


class InvalidProviderResult(RestoreError):
    """No image in the answer, a refused result URL, or bytes that are not an image."""

    code = "invalid_provider_result"
    kind = FailureKind.PERMANENT
    user_message = "The restoration did not come out right. Please try again."


class DependencyUnavailable(RestoreError):
    """S3, SQS or the database failed in a way a later delivery may not see."""

    code = "dependency_unavailable"
    kind = FailureKind.TRANSIENT


class AttemptNotVisible(RestoreError):
    """The message's attempt row is not visible (yet): retry, never drop."""

    code = "attempt_not_visible"
    kind = FailureKind.TRANSIENT


class StuckInProcessing(RestoreError):
    """Recorded by the sweeper on an attempt whose message was lost."""

    code = "stuck_in_processing"
    kind = FailureKind.PERMANENT


class RetriesExhausted(RestoreError):
    """Recorded by the DLQ handler when SQS gave up on a message."""

    code = "retries_exhausted"
    kind = FailureKind.PERMANENT


# --- A photo's life (photo_restore.lifecycle) ---------------------------------------------


class PhotoGone(RestoreError):
    """The owner's photo was deleted: nothing of it is served any more (others get 404)."""

    code = "photo_deleted"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "This photo was deleted."


class NotArchived(RestoreError):
    code = "not_archived"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "This photo is not archived."


class UploadNotFound(RestoreError):
    code = "upload_not_found"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "This upload does not exist."


class UnsupportedUploadType(RestoreError):
    code = "unsupported_media_type"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = UnsupportedImage.user_message


class UploadTooLarge(RestoreError):
    code = "upload_too_large"
    kind = FailureKind.PERMANENT
    retryable = False
    user_message = "The photo is too large. Please upload a smaller version."


def _subclasses(cls: type[RestoreError]) -> list[type[RestoreError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


ERRORS_BY_CODE: dict[str, type[RestoreError]] = {e.code: e for e in _subclasses(RestoreError)}
# The codes of attempts that do not count against their user's quota (provider, system).
NOT_USER_CAUSED_CODES: frozenset[str] = frozenset(
    code for code, error in ERRORS_BY_CODE.items() if not error.user_caused
) | {"unexpected_error"}


# Every code an attempt's public error can carry: a code recorded that is none of these (an older
# deployment's) is shown as the base class's.
ATTEMPT_ERROR_CODES: frozenset[str] = frozenset(ERRORS_BY_CODE) | {RestoreError.code}


def public_error(record: Mapping[str, Any]) -> dict[str, Any]:
    """`{code, retryable, message}` of an attempt's `params.error`, fit for an end user: no
    provider wording, no trace ids (those stay in params and the logs)."""
    error = ERRORS_BY_CODE.get(str(record.get("code")), RestoreError)
    return {"code": error.code, "retryable": error.retryable, "message": error.user_message}

"""The HTTP API's edge: which domain errors it answers, with which status, and the body it sends.

Domain errors (photo_restore.errors) carry a code, a kind and whether retrying may help; only
here do they become HTTP. An error that is none of these (a bug, or a pipeline error that should
never reach the API) is answered as `internal_error`, so a client's switch over the codes is
exhaustive.
"""

from __future__ import annotations

from photo_restore.errors import (
    AlreadyProcessing,
    AnonymousNotAllowed,
    DependencyUnavailable,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    InvalidRequest,
    NotArchived,
    NotProcessing,
    PhotoGone,
    PhotoNotFound,
    PhotoNotRestorable,
    QueueUnavailable,
    QuotaExceeded,
    RestoreAttemptNotFound,
    RestoreError,
    RestoreNotSucceeded,
    Unauthenticated,
    UnreadableBody,
    UnsupportedUploadType,
    UploadNotFound,
    UploadTooLarge,
)

INTERNAL_ERROR = "internal_error"
INTERNAL_ERROR_MESSAGE = "Something went wrong on our side; the request id names it in our logs."
# The API's metric of them (template.yaml's ApiInternalErrorsAlarm watches it).
INTERNAL_ERROR_METRIC = "InternalError"

# The errors the API answers, and how.
HTTP_STATUS: dict[type[RestoreError], int] = {
    UnreadableBody: 400,
    Unauthenticated: 401,
    AnonymousNotAllowed: 403,
    PhotoNotFound: 404,
    RestoreAttemptNotFound: 404,
    UploadNotFound: 404,
    AlreadyProcessing: 409,
    NotProcessing: 409,
    PhotoNotRestorable: 409,
    RestoreNotSucceeded: 409,
    IdempotencyInProgress: 409,
    NotArchived: 409,
    PhotoGone: 410,
    UploadTooLarge: 413,
    UnsupportedUploadType: 415,
    InvalidRequest: 422,
    IdempotencyKeyReused: 422,
    QuotaExceeded: 429,
    QueueUnavailable: 503,
    DependencyUnavailable: 503,
}

# Every `error` code an API error body can carry.
API_ERROR_CODES: tuple[str, ...] = (*(error.code for error in HTTP_STATUS), INTERNAL_ERROR)


def answered_status(error: RestoreError) -> int | None:
    """The status the API answers `error` with; None when the API does not answer it as itself
    (it is then an internal error)."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return None


def codes_answered_with(status: int) -> list[str]:
    return [error.code for error, answered in HTTP_STATUS.items() if answered == status]

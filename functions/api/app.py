"""API Lambda: HTTP API (payload v2) routes for restore requests; logic lives in photo_restore."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from photo_restore import wiring
from photo_restore.errors import (
    AlreadyProcessing,
    InvalidRequest,
    QuotaExceeded,
    RestoreError,
    UnreadableBody,
)
from photo_restore.http_errors import (
    INTERNAL_ERROR,
    INTERNAL_ERROR_MESSAGE,
    INTERNAL_ERROR_METRIC,
    answered_status,
)
from photo_restore.lifecycle import wiring as lifecycle
from photo_restore.lifecycle.gallery import MAX_GALLERY_PAGE
from photo_restore.lifecycle.views import (
    GalleryPage,
    GalleryStatus,
    PhotoStatusView,
    UploadRequestBody,
    UploadView,
)
from photo_restore.observability import handler_tools
from photo_restore.request_bodies import parse_json_body
from photo_restore.restore_requests import MAX_PAGE_SIZE, Caller
from photo_restore.views import (
    AttemptList,
    ErrorBody,
    PhotoView,
    RestoreAccepted,
    RestoreRequestBody,
    SelectedRestore,
    SelectRestoreBody,
    success,
    with_headers,
)

# No X-Ray SDK here: it would add ~0.35 s to every cold start a user waits for (observability).
tools = handler_tools("api", trace_calls=False)
logger = tools.logger
app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=parse_json_body)


def resolve_caller(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """The caller, once per request, from the JWT authorizer's claims (fails closed)."""
    authorizer = app.current_event.request_context.authorizer
    claims = authorizer.jwt_claim if authorizer else None
    app.context["caller"] = Caller.from_claims(claims or {})  # cleared after each request
    return next_middleware(app)


app.use(middlewares=[resolve_caller])


def caller() -> Caller:
    found: Caller = app.context["caller"]
    return found


IDEMPOTENCY_KEY_HEADER = Header(
    alias="idempotency-key",
    description=(
        "1-255 printable ASCII characters. The same key for the same photo within 24 h replays "
        "the first 202 (header Idempotent-Replayed: true) without a new restore; for another "
        "photo it is 422 idempotency_key_reused; while the first is still being accepted, 409 "
        "idempotency_in_progress."
    ),
)


@app.post(
    "/photos/<photo_id>/restore",
    responses=with_headers(
        with_headers(
            success(
                202,
                RestoreAccepted,
                "Restore accepted (or replayed): follow it with GET /photos/{id}",
                reads_body=True,
                e403="anonymous_not_allowed: an anonymous session may not restore (by default)",
                e409="already_processing, photo_not_restorable, or idempotency_in_progress",
                e422="invalid_request (field named), or idempotency_key_reused",
                e429="quota_exceeded: the daily limit, or the rate a minute, is reached",
            ),
            202,
            {"Idempotent-Replayed": "true when this replays an earlier request's answer"},
        ),
        429,
        {"Retry-After": "Seconds until the oldest counted request leaves the 24 h window"},
    ),
)
def request_restore(
    photo_id: uuid.UUID,
    idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY_HEADER] = None,
    body: Annotated[RestoreRequestBody | None, Body()] = None,
) -> Response[RestoreAccepted]:
    acceptance = wiring.restore_requests().request_restore(
        caller(), photo_id, idempotency_key=idempotency_key
    )
    accepted = acceptance.body
    logger.append_keys(photo_id=str(photo_id), restore_attempt_id=str(accepted.restore_attempt_id))
    logger.info("restore accepted", replayed=acceptance.replayed)
    headers = {"Idempotent-Replayed": "true"} if acceptance.replayed else None
    return Response(202, content_types.APPLICATION_JSON, accepted, headers=headers)


@app.delete(
    "/photos/<photo_id>/restore",
    responses=success(
        200,
        PhotoView,
        "Canceled: the photo is back to what it was before the claim",
        e409="not_processing: no restoration of the photo is in flight",
    ),
)
def cancel_restore(photo_id: uuid.UUID) -> PhotoView:
    view = wiring.restore_requests().cancel_restore(caller(), photo_id)
    logger.info("restore canceled", photo_id=str(photo_id))
    return view


@app.get(
    "/photos/<photo_id>",
    responses=success(200, PhotoView, "The photo, its before/after and its latest attempt"),
)
def get_photo(photo_id: uuid.UUID) -> PhotoView:
    return wiring.restore_requests().get_photo(caller(), photo_id)


@app.get(
    "/photos/<photo_id>/restores",
    responses=success(
        200,
        AttemptList,
        "The photo's restore attempts, newest first, a page",
        e422="invalid_request: limit, or a cursor this API did not return for this photo",
    ),
)
def list_restores(
    photo_id: uuid.UUID,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> AttemptList:
    return wiring.restore_requests().list_restores(caller(), photo_id, limit=limit, cursor=cursor)


@app.put(
    "/photos/<photo_id>/selected-restore",
    responses=success(
        200,
        SelectedRestore,
        "The restoration now selected",
        reads_body=True,
        e404="photo_not_found, or restore_attempt_not_found: no such attempt of this photo",
        e409="restore_not_succeeded: only a succeeded restoration can be selected",
    ),
)
def select_restore(photo_id: uuid.UUID, body: SelectRestoreBody) -> SelectedRestore:
    return wiring.restore_requests().select_restore(caller(), photo_id, body.restore_attempt_id)


# --- A photo's life: uploads, gallery, archive, delete (photo_restore.lifecycle) -----------

GONE = "photo_deleted: the photo was deleted (404 for anyone else's)"


@app.get(
    "/photos",
    responses=success(200, GalleryPage, "The caller's photos, newest first, a page"),
)
def list_photos(
    limit: Annotated[int, Query(ge=1, le=MAX_GALLERY_PAGE, description="Page size")] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    status: Annotated[
        GalleryStatus | None, Query(description="Only these; default: all but archived")
    ] = None,
) -> GalleryPage:
    return lifecycle.gallery().list_photos(caller(), limit=limit, cursor=cursor, status=status)


@app.post(
    "/photos/<photo_id>/archive",
    responses=success(
        200, PhotoStatusView, "Archived (or already)", e409="already_processing", e410=GONE
    ),
)
def archive_photo(photo_id: uuid.UUID) -> PhotoStatusView:
    return lifecycle.photo_end().archive(caller(), photo_id)


@app.post(
    "/photos/<photo_id>/unarchive",
    responses=success(
        200, PhotoStatusView, "Back to ready or uploaded", e409="not_archived", e410=GONE
    ),
)
def unarchive_photo(photo_id: uuid.UUID) -> PhotoStatusView:
    return lifecycle.photo_end().unarchive(caller(), photo_id)


@app.delete(
    "/photos/<photo_id>",
    responses=success(
        200,
        PhotoStatusView,
        "Deleted, every object of it removed; a repeat answers the same",
        e409="already_processing: its restoration is being settled; try again",
    ),
)
def delete_photo(photo_id: uuid.UUID) -> PhotoStatusView:
    deleted = lifecycle.photo_end().delete(caller(), photo_id)
    logger.info("photo deleted", photo_id=str(photo_id))
    return deleted


@app.post(
    "/uploads",
    responses=success(
        201,
        UploadView,
        "A presigned PUT for the photo (200: the photo you already have with this checksum)",
        e413="upload_too_large: size_bytes is above the limit",
        e415="unsupported_media_type: content_type is not an accepted image type",
        e422="invalid_request: sha256 is not 64 hex digits (or another field)",
        reads_body=True,
    ),
)
def request_upload(body: UploadRequestBody) -> Response[UploadView]:
    answer = lifecycle.uploads().request_upload(caller(), body)
    return Response(answer.status, content_types.APPLICATION_JSON, answer.body)


@app.get(
    "/uploads/<upload_id>",
    responses=success(200, UploadView, "pending, accepted (its photo) or rejected (why)"),
)
def get_upload(upload_id: uuid.UUID) -> UploadView:
    return lifecycle.uploads().get_upload(caller(), upload_id)


def error_response(error: RestoreError) -> Response[str]:
    status = answered_status(error)
    if status is None:  # a pipeline error has no business here: a bug
        return internal_error_response(error)
    body = ErrorBody(
        error=error.code,
        message=error.message,
        retryable=error.retryable,
        field=error.field if isinstance(error, InvalidRequest) else None,
        restore_attempt_id=error.restore_attempt_id
        if isinstance(error, AlreadyProcessing)
        else None,
        retry_after_seconds=error.retry_after_seconds if isinstance(error, QuotaExceeded) else None,
    )
    headers = None
    if isinstance(error, QuotaExceeded):
        headers = {"Retry-After": str(error.retry_after_seconds)}
    if status >= 500:
        logger.exception("restore request failed", extra={"code": error.code})
    return _json_response(status, body, headers)


def _json_response(
    status: int, body: ErrorBody, headers: dict[str, str] | None = None
) -> Response[str]:
    return Response(
        status, content_types.APPLICATION_JSON, body.model_dump_json(exclude_none=True), headers
    )


@app.exception_handler(RestoreError)  # type: ignore[untyped-decorator]
def restore_error(error: RestoreError) -> Response[str]:
    return error_response(error)


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def internal_error(error: Exception) -> Response[str]:
    return internal_error_response(error)


def internal_error_response(error: Exception) -> Response[str]:
    """Anything else (a bug): the one error shape, never API Gateway's own 500 body, and the
    request id that finds its traceback in the logs (the logger's correlation id too)."""
    request_id = app.current_event.request_context.request_id
    logger.exception("unexpected error", extra={"error_type": type(error).__name__})
    # The invocation itself succeeds, so Lambda's Errors metric misses it: this one alarms.
    tools.metrics.add_metric(name=INTERNAL_ERROR_METRIC, unit=MetricUnit.Count, value=1)
    body = ErrorBody(
        error=INTERNAL_ERROR,
        message=INTERNAL_ERROR_MESSAGE,
        retryable=True,
        request_id=request_id,
    )
    return _json_response(500, body)


@app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
def invalid_request(error: RequestValidationError) -> Response[str]:
    """Powertools' validation errors in the one error shape: the first one, its field named."""
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
    location = [str(part) for part in first.get("loc", ())]
    field = ".".join(location[1:]) or (location[0] if location else "request")
    if location and location[0] == "body" and len(location) == 1:
        field = "body"
    message = f"{field}: {first.get('msg', 'invalid')}"
    return error_response(InvalidRequest(message, field=field))


@app.exception_handler(UnicodeDecodeError)  # type: ignore[untyped-decorator]
def body_not_utf8(error: UnicodeDecodeError) -> Response[str]:
    """Raised while Powertools decodes the body, before the JSON parser sees it."""
    return error_response(UnreadableBody("the body is not UTF-8 text"))


def read_body_as_json(event: dict[str, Any]) -> dict[str, Any]:
    """Every body this API takes is JSON: one sent as another type (curl -d sends a form) is
    read as JSON too, so a client sees the JSON parser's answer, never a form-field error."""
    headers = event.get("headers") or {}
    declared = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if event.get("body") and not declared.lower().startswith("application/json"):
        kept = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        return {**event, "headers": {**kept, "content-type": "application/json"}}
    return event


@tools.handler(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(read_body_as_json(event), context)

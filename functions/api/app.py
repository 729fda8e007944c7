"""API Lambda: HTTP API (payload v2) routes for restore requests; logic lives in photo_restore."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from photo_restore import wiring
from photo_restore.errors import AlreadyProcessing, RestoreError, UnreadableBody
from photo_restore.observability import handler_tools
from photo_restore.request_bodies import parse_json_body
from photo_restore.restore_requests import Caller
from photo_restore.views import (
    AttemptList,
    ErrorBody,
    PhotoView,
    RestoreAccepted,
    RestoreRequestBody,
    SelectedRestore,
    SelectRestoreBody,
    success,
)

tools = handler_tools("api")
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


@app.post(
    "/photos/<photo_id>/restore",
    responses=success(202, RestoreAccepted, "Restore accepted: follow it with GET /photos/{id}"),
)
def request_restore(
    photo_id: uuid.UUID, body: Annotated[RestoreRequestBody | None, Body()] = None
) -> Response[RestoreAccepted]:
    accepted = wiring.restore_requests().request_restore(caller(), photo_id)
    logger.append_keys(photo_id=str(photo_id), restore_attempt_id=str(accepted.restore_attempt_id))
    logger.info("restore accepted")
    return Response(202, content_types.APPLICATION_JSON, accepted)


@app.get(
    "/photos/<photo_id>", responses=success(200, PhotoView, "The photo and its latest attempt")
)
def get_photo(photo_id: uuid.UUID) -> PhotoView:
    return wiring.restore_requests().get_photo(caller(), photo_id)


@app.get(
    "/photos/<photo_id>/restores",
    responses=success(200, AttemptList, "Every restore attempt of the photo, newest first"),
)
def list_restores(photo_id: uuid.UUID) -> AttemptList:
    return wiring.restore_requests().list_restores(caller(), photo_id)


@app.put(
    "/photos/<photo_id>/selected-restore",
    responses=success(200, SelectedRestore, "The restoration now selected"),
)
def select_restore(photo_id: uuid.UUID, body: SelectRestoreBody) -> SelectedRestore:
    return wiring.restore_requests().select_restore(caller(), photo_id, body.restore_attempt_id)


def error_response(error: RestoreError) -> Response[str]:
    attempt_id = error.restore_attempt_id if isinstance(error, AlreadyProcessing) else None
    body = ErrorBody(error=error.code, message=error.message, restore_attempt_id=attempt_id)
    if error.http_status >= 500:
        logger.exception("restore request failed", extra={"code": error.code})
    return Response(error.http_status, content_types.APPLICATION_JSON, body.model_dump_json())


@app.exception_handler(RestoreError)  # type: ignore[untyped-decorator]
def restore_error(error: RestoreError) -> Response[str]:
    return error_response(error)


@app.exception_handler(UnicodeDecodeError)  # type: ignore[untyped-decorator]
def body_not_utf8(error: UnicodeDecodeError) -> Response[str]:
    """Raised while Powertools decodes the body, before the JSON parser sees it."""
    return error_response(UnreadableBody("the body is not UTF-8 text"))


@tools.handler(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

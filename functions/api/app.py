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
from photo_restore.errors import AlreadyProcessing, RestoreError
from photo_restore.observability import handler_tools
from photo_restore.restore_requests import Caller
from photo_restore.views import (
    ERROR_RESPONSES,
    AttemptList,
    ErrorBody,
    PhotoView,
    RestoreAccepted,
    RestoreRequestBody,
    SelectedRestore,
    SelectRestoreBody,
)

tools = handler_tools("api")
logger = tools.logger
app = APIGatewayHttpResolver(enable_validation=True)


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
    responses={202: {"description": "Restore accepted"}, **ERROR_RESPONSES},
)
def request_restore(
    photo_id: uuid.UUID, body: Annotated[RestoreRequestBody | None, Body()] = None
) -> Response[RestoreAccepted]:
    accepted = wiring.restore_requests().request_restore(caller(), photo_id)
    logger.append_keys(photo_id=str(photo_id), restore_attempt_id=str(accepted.restore_attempt_id))
    logger.info("restore accepted")
    return Response(202, content_types.APPLICATION_JSON, accepted)


@app.get("/photos/<photo_id>", responses=ERROR_RESPONSES)
def get_photo(photo_id: uuid.UUID) -> PhotoView:
    return wiring.restore_requests().get_photo(caller(), photo_id)


@app.get("/photos/<photo_id>/restores", responses=ERROR_RESPONSES)
def list_restores(photo_id: uuid.UUID) -> AttemptList:
    return wiring.restore_requests().list_restores(caller(), photo_id)


@app.put("/photos/<photo_id>/selected-restore", responses=ERROR_RESPONSES)
def select_restore(photo_id: uuid.UUID, body: SelectRestoreBody) -> SelectedRestore:
    return wiring.restore_requests().select_restore(caller(), photo_id, body.restore_attempt_id)


@app.exception_handler(RestoreError)  # type: ignore[untyped-decorator]
def restore_error(error: RestoreError) -> Response[str]:
    attempt_id = error.restore_attempt_id if isinstance(error, AlreadyProcessing) else None
    body = ErrorBody(error=error.code, message=error.message, restore_attempt_id=attempt_id)
    if error.http_status >= 500:
        logger.exception("restore request failed", extra={"code": error.code})
    return Response(error.http_status, content_types.APPLICATION_JSON, body.model_dump_json())


@app.exception_handler([UnicodeDecodeError, RecursionError])  # type: ignore[untyped-decorator]
def unreadable_body(error: Exception) -> Response[str]:
    """Bytes that are not UTF-8, or JSON nested past Python's limit: the client's error."""
    body = ErrorBody(error="unreadable_body", message="the body is not readable JSON")
    return Response(400, content_types.APPLICATION_JSON, body.model_dump_json())


@tools.handler(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

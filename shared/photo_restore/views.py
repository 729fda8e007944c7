"""What the API returns: pydantic models, so the OpenAPI document describes real responses.

Bodies only ever gain fields: existing clients keep working.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from photo_restore.attempts import AttemptState, Phase


class RestoreAccepted(BaseModel):
    photo_id: uuid.UUID
    restore_attempt_id: uuid.UUID
    status: str


class ImageView(BaseModel):
    """A browser-displayable JPEG: a short-lived presigned URL and its size when known."""

    url: str
    width: int | None = None
    height: int | None = None


class AttemptError(BaseModel):
    """Why an attempt failed or was canceled, fit for an end user."""

    code: str = Field(description="Stable: branch on it")
    retryable: bool = Field(description="Whether asking again (later) may succeed")
    message: str = Field(description="Text fit to show the end user")


class AttemptView(BaseModel):
    restore_attempt_id: uuid.UUID
    outcome: AttemptState
    phase: Phase
    model: str
    created_at: datetime
    started_at: datetime | None = Field(None, description="Its first delivery started")
    finished_at: datetime | None = Field(None, description="It succeeded, failed or was canceled")
    error: AttemptError | None = None
    # Present only for succeeded attempts; short-lived (see urls_expire_at).
    image_url: str | None = Field(None, description="The restoration (same as after.url)")
    after: ImageView | None = None
    thumbnail_url: str | None = Field(None, description="Longest side 512")


class PhotoView(BaseModel):
    photo_id: uuid.UUID
    status: str
    latest_attempt: AttemptView | None = None
    # Presigned GET of the selected restoration, present when the photo is ready.
    restored_image_url: str | None = None
    selected_restore_id: uuid.UUID | None = Field(
        None, description="The restoration shown; a new successful one becomes it"
    )
    before: ImageView | None = Field(
        None, description="The upright JPEG the model saw for the selected restoration"
    )
    after: ImageView | None = Field(None, description="The selected restoration")
    urls_expire_at: datetime | None = Field(None, description="When the URLs above stop working")
    estimated_seconds_remaining: int | None = Field(
        None, description="For a running attempt, from the median of recent inference times"
    )


class AttemptList(BaseModel):
    photo_id: uuid.UUID
    restores: list[AttemptView]
    selected_restore_id: uuid.UUID | None = None
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page")
    urls_expire_at: datetime | None = None


class RestoreRequestBody(BaseModel):
    """Empty on purpose: prompt and model are ours to choose, so any field is refused."""

    model_config = ConfigDict(extra="forbid")


class SelectRestoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    restore_attempt_id: uuid.UUID


class SelectedRestore(BaseModel):
    photo_id: uuid.UUID
    selected_restore_id: uuid.UUID


class ErrorBody(BaseModel):
    """Every error the API function answers; fields that do not apply are absent, never null."""

    error: str = Field(description="A stable code")
    message: str = Field(description="Readable text")
    field: str | None = Field(None, description="422 invalid_request: the parameter at fault")
    restore_attempt_id: uuid.UUID | None = Field(
        None, description="409 already_processing: the attempt in flight"
    )
    retry_after_seconds: int | None = Field(
        None, description="429 quota_exceeded: also sent as Retry-After"
    )


class GatewayUnauthorized(BaseModel):
    """What API Gateway's JWT authorizer answers itself, before the function runs: the one
    error body of another shape."""

    message: str = "Unauthorized"


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"model": model}}}


def success(status: int, model: type[BaseModel], description: str, **errors: str) -> dict[int, Any]:
    """A route's documented answers: its success body, the errors every route has, and its own
    (`errors`: status number as text -> what it means on this route)."""
    own = {int(code.removeprefix("e")): _json(ErrorBody, text) for code, text in errors.items()}
    return {status: _json(model, description), **ERROR_RESPONSES, **own}


def with_headers(responses: dict[int, Any], status: int, headers: dict[str, str]) -> dict[int, Any]:
    """`responses` with response headers (name -> meaning) documented on `status`."""
    documented = {
        name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
    }
    return {**responses, status: {**responses[status], "headers": documented}}


# The error answers each route documents in the OpenAPI document.
ERROR_RESPONSES: dict[int, Any] = {
    401: _json(GatewayUnauthorized, "No valid bearer token (answered by API Gateway)"),
    **{
        status: _json(ErrorBody, description)
        for status, description in {
            400: "The body is not readable JSON",
            404: "No such photo (or not yours)",
            409: "Already processing, or archived/deleted",
            410: "photo_deleted: the caller's photo was deleted; nothing of it is served",
            422: "invalid_request: a parameter, header or body field (named in `field`)",
            503: "A dependency is unavailable; try again",
        }.items()
    },
}

"""What the API returns: pydantic models, so the OpenAPI document describes real responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from photo_restore.attempts import AttemptState


class RestoreAccepted(BaseModel):
    photo_id: uuid.UUID
    restore_attempt_id: uuid.UUID
    status: str


class AttemptView(BaseModel):
    restore_attempt_id: uuid.UUID
    outcome: AttemptState
    model: str
    created_at: datetime
    error: dict[str, Any] | None = None
    # Present only for succeeded attempts; short-lived.
    image_url: str | None = None


class PhotoView(BaseModel):
    photo_id: uuid.UUID
    status: str
    latest_attempt: AttemptView | None = None
    # Presigned GET of the selected restoration, present when the photo is ready.
    restored_image_url: str | None = None


class AttemptList(BaseModel):
    photo_id: uuid.UUID
    restores: list[AttemptView]


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
    error: str
    message: str
    restore_attempt_id: uuid.UUID | None = None


class GatewayUnauthorized(BaseModel):
    """What API Gateway's JWT authorizer answers itself, before the function runs."""

    message: str = "Unauthorized"


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"model": model}}}


def success(status: int, model: type[BaseModel], description: str) -> dict[int, Any]:
    """A route's documented answers: its success body, then the errors every route has."""
    return {status: _json(model, description), **ERROR_RESPONSES}


# The error answers each route documents in the OpenAPI document (validation's 422 is added
# by Powertools itself).
ERROR_RESPONSES: dict[int, Any] = {
    401: _json(GatewayUnauthorized, "No valid bearer token (answered by API Gateway)"),
    **{
        status: _json(ErrorBody, description)
        for status, description in {
            400: "The body is not readable JSON",
            404: "No such photo (or not yours)",
            409: "Already processing, or archived/deleted",
            503: "A dependency is unavailable; try again",
        }.items()
    },
}

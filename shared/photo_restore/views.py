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


# The error answers each route documents in the OpenAPI document (validation's 422 is added
# by Powertools itself).
ERROR_RESPONSES: dict[int, Any] = {
    status: {
        "description": description,
        "content": {"application/json": {"schema": ErrorBody.model_json_schema()}},
    }
    for status, description in {
        401: "No valid identity",
        404: "No such photo (or not yours)",
        409: "Already processing, or archived/deleted",
        503: "A dependency is unavailable; try again",
    }.items()
}

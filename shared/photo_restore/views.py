"""What the API returns: pydantic models, so the OpenAPI document describes real responses.

Bodies only ever gain fields: existing clients keep working. A success body sends every field
(null when it does not apply), so none has a default: the document marks them all required.
Codes, statuses and phases are enums, so a typed client's switch over them is exhaustive.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from photo_restore.attempts import AttemptState, Phase
from photo_restore.errors import ATTEMPT_ERROR_CODES
from photo_restore.http_errors import API_ERROR_CODES
from photo_restore.status import PhotoStatus


def _enum(values: Iterable[str]) -> JsonDict:
    """A text field's schema naming every value it takes (a typed client's union of literals)."""
    choices: list[JsonValue] = [*values]
    return {"enum": choices}


class RestoreAccepted(BaseModel):
    photo_id: uuid.UUID
    restore_attempt_id: uuid.UUID
    status: PhotoStatus


class ImageProvenance(BaseModel):
    """What a restoration's file (and its thumbnail's) says of itself, embedded as XMP; the
    README shows how to read it back with exiftool or exiv2."""

    digital_source_type: str = Field(
        description="IPTC Digital Source Type (XMP Iptc4xmpExt:DigitalSourceType): "
        "compositeWithTrainedAlgorithmicMedia, 'Edited using Generative AI'"
    )
    model: str = Field(description="The generative model (XMP Iptc4xmpExt:AISystemUsed)")
    software_agent: str = Field(description="What wrote the file (XMP xmp:CreatorTool)")
    created_at: datetime = Field(description="When it was made (XMP xmp:CreateDate)")
    c2pa: bool = Field(description="It also carries a signed C2PA manifest (Content Credentials)")


class ImageView(BaseModel):
    """A browser-displayable JPEG: a short-lived presigned URL and its size when known."""

    url: str
    width: int | None
    height: int | None
    provenance: ImageProvenance | None = Field(
        description="A restoration's AI-edit marks; null on before images and on "
        "restorations stored before they were marked",
    )


class AttemptError(BaseModel):
    """Why an attempt failed or was canceled, fit for an end user."""

    code: str = Field(
        description="Stable: branch on it",
        json_schema_extra=_enum(sorted(ATTEMPT_ERROR_CODES)),
    )
    retryable: bool = Field(description="Whether asking again (later) may succeed")
    message: str = Field(description="Text fit to show the end user")


class FaithfulnessAlignment(BaseModel):
    """A point (x, y) of `before`, in fractions of its width and height, is at
    (scale * x + dx, scale * y + dy) in the restoration, in fractions of its size."""

    scale: float
    dx: float
    dy: float


class FaithfulnessView(BaseModel):
    """Does the restoration still show the same picture and the same people?"""

    verdict: Literal["faithful", "drifted", "unchecked"] = Field(
        description="drifted: a face changed or gone, or another picture; warn and offer "
        "another try. unchecked: the check could not run (see reason)"
    )
    faces_before: int | None = Field(None, description="Faces found in the image the model saw")
    faces_after: int | None = Field(None, description="Faces found in the restoration")
    faces_compared: int | None = Field(None, description="The largest few are compared")
    faces_matched: int | None = Field(None, description="Compared faces of the same person")
    max_face_distance: float | None = Field(
        None, description="The worst compared face's embedding distance (same person below 0.5)"
    )
    structure_similarity: float | None = Field(
        None, description="1: the same picture; another picture is below 0.55"
    )
    alignment: FaithfulnessAlignment | None = None
    reason: str
    checked_ms: float


class AttemptView(BaseModel):
    restore_attempt_id: uuid.UUID
    outcome: AttemptState
    phase: Phase
    model: str
    created_at: datetime
    started_at: datetime | None = Field(description="Its first delivery started")
    finished_at: datetime | None = Field(description="It succeeded, failed or was canceled")
    error: AttemptError | None
    provider_calls: int = Field(
        description="Calls made to the image provider for it (each may be billed)"
    )
    # Not null only for succeeded attempts; short-lived (see urls_expire_at).
    image_url: str | None = Field(description="The restoration (same as after.url)")
    after: ImageView | None
    thumbnail_url: str | None = Field(description="Longest side 512")
    faithfulness: FaithfulnessView | None = Field(
        description="Of a succeeded attempt's result, when it was checked"
    )


class PhotoView(BaseModel):
    photo_id: uuid.UUID
    status: PhotoStatus
    latest_attempt: AttemptView | None
    # Presigned GET of the selected restoration, not null when the photo is ready.
    restored_image_url: str | None
    selected_restore_id: uuid.UUID | None = Field(
        description="The restoration shown; a new successful one becomes it, unless its "
        "faithfulness is drifted and the one shown is faithful (select it to show it)",
    )
    before: ImageView | None = Field(
        description="The upright JPEG the model saw for the selected restoration"
    )
    after: ImageView | None = Field(description="The selected restoration")
    slider_adjusted: Literal["before"] | None = Field(
        description="Which image of the before/after pair was scaled and cropped to the "
        "other's framing: 'before' when the model zoomed or shifted the frame (the "
        "restoration is always as the model made it); null when neither was",
    )
    urls_expire_at: datetime | None = Field(description="When the URLs above stop working")
    estimated_seconds_remaining: int | None = Field(
        description="For a running attempt, from the median of recent inference times"
    )


class AttemptList(BaseModel):
    photo_id: uuid.UUID
    restores: list[AttemptView]
    selected_restore_id: uuid.UUID | None
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page of this photo; null on the last page"
    )
    urls_expire_at: datetime | None


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

    error: str = Field(
        description="A stable code: branch on it",
        json_schema_extra=_enum(API_ERROR_CODES),
    )
    message: str = Field(description="Readable text")
    retryable: bool = Field(description="Whether asking again (later) may succeed")
    field: str | SkipJsonSchema[None] = Field(
        None, description="422 invalid_request: the parameter at fault"
    )
    restore_attempt_id: uuid.UUID | SkipJsonSchema[None] = Field(
        None, description="409 already_processing: the attempt in flight"
    )
    retry_after_seconds: int | SkipJsonSchema[None] = Field(
        None, description="429 quota_exceeded: also sent as Retry-After"
    )
    request_id: str | SkipJsonSchema[None] = Field(
        None, description="500 internal_error: the request id our logs name it by"
    )


class GatewayUnauthorized(BaseModel):
    """What API Gateway's JWT authorizer answers itself, before the function runs."""

    message: str = Field("Unauthorized", json_schema_extra=_enum(["Unauthorized"]))


class GatewayPayloadTooLarge(BaseModel):
    """What API Gateway answers itself to a request body over its 10 MB limit, on any route."""

    message: str = Field(
        "Request Entity Too Large", json_schema_extra=_enum(["Request Entity Too Large"])
    )


class GatewayThrottled(BaseModel):
    """What API Gateway answers itself when a route's throttling limit is reached."""

    message: str = Field("Too Many Requests", json_schema_extra=_enum(["Too Many Requests"]))


def _json(model: type[BaseModel] | list[type[BaseModel]], description: str) -> dict[str, Any]:
    schema = model if isinstance(model, type) else Union[tuple(model)]  # noqa: UP007
    return {"description": description, "content": {"application/json": {"model": schema}}}


def success(
    status: int,
    model: type[BaseModel],
    description: str,
    *,
    reads_body: bool = False,
    **errors: str,
) -> dict[int, Any]:
    """A route's documented answers: its success body, the errors every route has, and its own
    (`errors`: status number as text -> what it means on this route). Only a route that reads
    its body can answer 400 unreadable_body."""
    own = {int(code.removeprefix("e")): _json(ErrorBody, text) for code, text in errors.items()}
    answers = {status: _json(model, description), **ERROR_RESPONSES, **own}
    if reads_body:
        answers[400] = _json(ErrorBody, "unreadable_body: the body is not readable JSON")
    if 429 in own:  # the function's own 429, or the gateway's throttling
        answers[429] = _json([ErrorBody, GatewayThrottled], f"{errors['e429']}; or {THROTTLED}")
    if 413 in own:  # the function's own 413, or the gateway's for a body over 10 MB
        answers[413] = _json(
            [ErrorBody, GatewayPayloadTooLarge],
            f"{errors['e413']}; or the body is over 10 MB (answered by API Gateway)",
        )
    return dict(sorted(answers.items()))


def with_headers(responses: dict[int, Any], status: int, headers: dict[str, str]) -> dict[int, Any]:
    """`responses` with response headers (name -> meaning) documented on `status`."""
    documented = {
        name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
    }
    return {**responses, status: {**responses[status], "headers": documented}}


THROTTLED = "throttled by API Gateway (its own body): wait and try again"

# The error answers every route documents in the OpenAPI document.
ERROR_RESPONSES: dict[int, Any] = {
    401: _json(
        [GatewayUnauthorized, ErrorBody],
        "No valid bearer token (answered by API Gateway); or unauthenticated: a token without "
        "a subject (answered by the function)",
    ),
    404: _json(ErrorBody, "photo_not_found: no such photo (or not yours)"),
    410: _json(ErrorBody, "photo_deleted: the caller's photo was deleted; nothing of it is served"),
    413: _json(GatewayPayloadTooLarge, "The body is over 10 MB (answered by API Gateway)"),
    422: _json(ErrorBody, "invalid_request: a parameter, header or body field (named in `field`)"),
    429: _json(GatewayThrottled, THROTTLED),
    500: _json(ErrorBody, "internal_error: a bug on our side; `request_id` names it in our logs"),
    503: _json(ErrorBody, "dependency_unavailable or queue_unavailable: try again"),
}

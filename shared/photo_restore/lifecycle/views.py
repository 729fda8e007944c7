"""What the lifecycle routes return (pydantic, so the OpenAPI document describes them)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The statuses a gallery can be filtered by; `deleted` photos are never served.
GalleryStatus = Literal["uploaded", "processing", "ready", "archived"]


class PhotoStatusView(BaseModel):
    photo_id: uuid.UUID
    status: str


class GalleryPhoto(BaseModel):
    photo_id: uuid.UUID
    status: str
    created_at: datetime
    mime_type: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    thumbnail_url: str | None = Field(None, description="The selected restoration's, 512 px")
    selected_restore_id: uuid.UUID | None = None
    restored_image_url: str | None = Field(None, description="The selected restoration")


class GalleryPage(BaseModel):
    photos: list[GalleryPhoto]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page")
    urls_expire_at: datetime | None = None


class UploadRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_type: str = Field(description="The photo's media type, e.g. image/jpeg")
    size_bytes: int = Field(gt=0, description="Exactly the bytes that will be PUT")
    sha256: str = Field(description="The file's SHA-256, 64 hex digits")


class PresignedUpload(BaseModel):
    method: Literal["PUT"] = "PUT"
    url: str
    headers: dict[str, str] = Field(description="Send exactly these headers with the body")
    expires_at: datetime


class UploadLimits(BaseModel):
    max_bytes: int
    max_pixels: int
    content_types: list[str]


class UploadView(BaseModel):
    upload_id: uuid.UUID | None = Field(None, description="None: a duplicate, nothing to upload")
    status: Literal["pending", "accepted", "rejected"]
    photo_id: uuid.UUID | None = Field(
        None, description="The photo it will become (pending) or became (accepted)"
    )
    duplicate: bool = Field(False, description="It matched a photo of yours with that checksum")
    reason_code: str | None = Field(None, description="rejected: a stable code")
    reason: str | None = Field(None, description="rejected: why")
    expires_at: datetime | None = Field(None, description="When its presigned PUT stops working")
    upload: PresignedUpload | None = Field(None, description="201: where and how to PUT")
    limits: UploadLimits | None = None

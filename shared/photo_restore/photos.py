"""A photo as this service sees it: one row of the existing app's `photos` table, typed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from photo_restore.status import PhotoStatus


@dataclass(frozen=True)
class Photo:
    id: uuid.UUID
    owner_id: str
    original_key: str
    # The selected restoration's key (the data model's `processed_key`); None before the first.
    processed_key: str | None
    status: PhotoStatus
    mime_type: str
    size_bytes: int
    updated_at: datetime

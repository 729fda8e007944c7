"""The user's gallery: their photos, newest first, a page at a time."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from photo_restore.errors import InvalidRequest
from photo_restore.lifecycle.queries import GalleryCursor, GalleryEntry, LifecycleRepository
from photo_restore.lifecycle.views import GalleryPage, GalleryPhoto
from photo_restore.settings import Settings
from photo_restore.status import LIVE_STATUSES, PhotoStatus
from photo_restore.storage import ObjectStorage

if TYPE_CHECKING:
    from photo_restore.restore_requests import Caller

MAX_GALLERY_PAGE = 100
# Without ?status=, the gallery shows every live photo but the archived ones (their own view).
DEFAULT_STATUSES = LIVE_STATUSES - {PhotoStatus.ARCHIVED}


def encode_cursor(entry: GalleryEntry) -> str:
    position = {"photos": True, "t": entry.created_at.isoformat(), "id": str(entry.id)}
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> GalleryCursor:
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        created_at = datetime.fromisoformat(position["t"])
        if position.get("photos") is not True or created_at.tzinfo is None:
            raise ValueError("not a gallery cursor")
        return GalleryCursor(created_at, uuid.UUID(position["id"]))
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
        raise InvalidRequest(
            "cursor is not one this route returned (pass next_cursor as it is)", field="cursor"
        ) from None


class Gallery:
    def __init__(
        self,
        lifecycle: LifecycleRepository,
        storage: ObjectStorage,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._lifecycle = lifecycle
        self._storage = storage
        self._settings = settings
        self._clock = clock

    def list_photos(
        self, caller: Caller, *, limit: int = 20, cursor: str | None = None, status: str | None
    ) -> GalleryPage:
        if not 1 <= limit <= MAX_GALLERY_PAGE:
            raise InvalidRequest(f"limit must be within 1..{MAX_GALLERY_PAGE}", field="limit")
        statuses = DEFAULT_STATUSES if status is None else {_served_status(status)}
        after = decode_cursor(cursor) if cursor else None
        with self._lifecycle.transaction() as tx:
            page = tx.gallery_page(caller.user_id, statuses=statuses, limit=limit + 1, after=after)
        entries, more = page[:limit], len(page) > limit
        photos = [self._photo(entry) for entry in entries]
        has_urls = any(p.thumbnail_url or p.restored_image_url for p in photos)
        expires = self._clock() + timedelta(seconds=self._settings.presigned_url_seconds)
        return GalleryPage(
            photos=photos,
            next_cursor=encode_cursor(entries[-1]) if more else None,
            urls_expire_at=expires if has_urls else None,
        )

    def _photo(self, entry: GalleryEntry) -> GalleryPhoto:
        dimensions = entry.metadata.get("dimensions")
        width, height = dimensions if isinstance(dimensions, list) else (None, None)
        return GalleryPhoto(
            photo_id=entry.id,
            status=entry.status,
            created_at=entry.created_at,
            mime_type=entry.mime_type,
            size_bytes=entry.size_bytes,
            width=width,
            height=height,
            thumbnail_url=self._presign(entry.thumbnail_key),
            selected_restore_id=entry.selected_restore_id,
            restored_image_url=self._presign(entry.processed_key),
        )

    def _presign(self, key: str | None) -> str | None:
        if key is None:
            return None
        return self._storage.presigned_get_url(
            key, expires_seconds=self._settings.presigned_url_seconds
        )


def _served_status(status: str) -> PhotoStatus:
    try:
        parsed = PhotoStatus(status)
    except ValueError:
        parsed = None
    if parsed is None or parsed not in LIVE_STATUSES:
        served = ", ".join(sorted(s.value for s in LIVE_STATUSES))
        raise InvalidRequest(f"status must be one of {served}", field="status")
    return parsed

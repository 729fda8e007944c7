"""The ingest function's parts, apart from lifecycle.wiring: its inspection loads Pillow and
libvips, which the API and the sweeper (who use lifecycle.wiring) must never reach."""

from __future__ import annotations

from functools import cache

from photo_restore import wiring
from photo_restore.lifecycle.ingest import Ingest
from photo_restore.lifecycle.wiring import lifecycle_repository
from photo_restore.settings import get_settings


@cache
def ingest() -> Ingest:
    return Ingest(
        lifecycle_repository(), wiring.object_storage(), wiring.event_publisher(), get_settings()
    )


wiring.on_reset(ingest.cache_clear)

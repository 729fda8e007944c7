"""This package's long-lived parts, built once per container from the main wiring's."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from photo_restore import wiring
from photo_restore.settings import get_settings

if TYPE_CHECKING:
    from photo_restore.lifecycle.gallery import Gallery
    from photo_restore.lifecycle.photo_end import PhotoEnd
    from photo_restore.lifecycle.queries import LifecycleRepository
    from photo_restore.lifecycle.uploads import Uploads


@cache
def lifecycle_repository() -> LifecycleRepository:
    from photo_restore.lifecycle.queries import LifecycleRepository

    return LifecycleRepository(wiring.repository())


@cache
def photo_end() -> PhotoEnd:
    from photo_restore.lifecycle.photo_end import PhotoEnd

    return PhotoEnd(
        lifecycle_repository(),
        wiring.object_storage(),
        wiring.event_publisher(),
        wiring.restore_announcer(),
    )


@cache
def gallery() -> Gallery:
    from photo_restore.lifecycle.gallery import Gallery

    return Gallery(lifecycle_repository(), wiring.object_storage(), get_settings())


@cache
def uploads() -> Uploads:
    from photo_restore.lifecycle.uploads import Uploads

    return Uploads(lifecycle_repository(), wiring.object_storage(), get_settings())


def _forget() -> None:
    for built in (lifecycle_repository, photo_end, gallery, uploads):
        built.cache_clear()


wiring.on_reset(_forget)

"""Archive, unarchive, delete and erase: a photo's end, each status change through the table in
`status`, and every object of a deleted photo removed from S3.

A delete commits `deleted` first (cancelling a restoration in flight in the same transaction),
then removes the objects: a worker still running finds its attempt canceled at its next step
or commit and removes what it stored, so nothing is left behind; a removal that fails answers
503 and the same DELETE (or `photo-restore erase-user`) removes the rest.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from photo_restore.errors import (
    AlreadyProcessing,
    Canceled,
    DependencyUnavailable,
    NotArchived,
    PhotoGone,
    PhotoNotFound,
    error_record,
)
from photo_restore.events import EventPublisher, RestoreAnnouncer, RestoreEvent
from photo_restore.lifecycle.queries import LifecycleRepository, LifecycleTransaction
from photo_restore.lifecycle.views import PhotoStatusView
from photo_restore.status import PhotoStatus
from photo_restore.storage import ObjectStorage, owner_originals_prefix, restored_prefix

if TYPE_CHECKING:
    from photo_restore.attempts import Attempt
    from photo_restore.photos import Photo
    from photo_restore.restore_requests import Caller

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Erasure:
    photos_deleted: int  # by this run; a second run deletes none
    objects_removed: int
    uploads_refused: int


class PhotoEnd:
    def __init__(
        self,
        lifecycle: LifecycleRepository,
        storage: ObjectStorage,
        publisher: EventPublisher,
        announcer: RestoreAnnouncer,
    ) -> None:
        self._lifecycle = lifecycle
        self._storage = storage
        self._publisher = publisher
        self._announcer = announcer

    def archive(self, caller: Caller, photo_id: uuid.UUID) -> PhotoStatusView:
        """`uploaded|ready -> archived`; archiving an archived photo answers it as it is."""
        with self._lifecycle.transaction() as tx:
            photo = _owned(tx, caller, photo_id)
            if photo.status is PhotoStatus.PROCESSING:
                raise AlreadyProcessing(
                    "cancel the restoration in progress before archiving",
                    restore_attempt_id=_in_flight_id(tx, photo_id),
                )
            if photo.status is not PhotoStatus.ARCHIVED:
                photo = _changed(tx.archive(photo_id))
        return PhotoStatusView(photo_id=photo.id, status=photo.status)

    def unarchive(self, caller: Caller, photo_id: uuid.UUID) -> PhotoStatusView:
        """`archived -> ready` (with a restoration) or `-> uploaded`."""
        with self._lifecycle.transaction() as tx:
            photo = _owned(tx, caller, photo_id)
            if photo.status is not PhotoStatus.ARCHIVED:
                raise NotArchived(f"a photo that is {photo.status} is not archived")
            photo = _changed(tx.unarchive(photo))
        return PhotoStatusView(photo_id=photo.id, status=photo.status)

    def delete(self, caller: Caller, photo_id: uuid.UUID) -> PhotoStatusView:
        """Delete the caller's photo whatever its status (README: a photo's end). Deleting a
        deleted photo removes whatever a failed removal left, and answers the same."""
        with self._lifecycle.transaction() as tx:
            photo = tx.locked_photo(photo_id, caller.user_id)
            if photo is None:
                raise PhotoNotFound("no such photo")
            ended = self._mark_deleted(tx, photo)
        self._remove_objects(photo_id)
        if ended is not None:
            self._announce(photo, ended, reason="user")
        return PhotoStatusView(photo_id=photo_id, status=PhotoStatus.DELETED)

    def erase_owner(self, owner_id: str) -> Erasure:
        """Every photo of the owner deleted and every object of theirs removed (an erasure
        request); run again, it deletes nothing more and removes what is left."""
        with self._lifecycle.transaction() as tx:
            photo_ids = tx.owner_photo_ids(owner_id)
            refused = tx.reject_pending_uploads(
                owner_id, reason_code="erased", reason="the user's data was erased"
            )
        # Listed first: what was there is counted without asking S3 about each key.
        originals = set(self._storage.keys_under(owner_originals_prefix(owner_id)))
        # Every photo deleted first, then every object removed: no photo of theirs is still
        # live to keep an object it shares with another.
        ended_photos = []
        for photo_id in photo_ids:
            with self._lifecycle.transaction() as tx:
                photo = tx.locked_photo(photo_id)
                ended = self._mark_deleted(tx, photo) if photo else None
            if photo is not None and ended is not None:
                ended_photos.append((photo, ended))
        removed = sum(self._remove_objects(p, present=originals) for p in photo_ids)
        for photo, ended in ended_photos:
            self._announce(photo, ended, reason="erasure")
        deleted = len(ended_photos)
        # What is left under the owner's prefix: originals of uploads never ingested.
        leftovers = sorted(originals)
        self._storage.delete_many(leftovers)
        return Erasure(deleted, removed + len(leftovers), refused)

    @staticmethod
    def _mark_deleted(tx: LifecycleTransaction, photo: Photo) -> _Ended | None:
        """Cancel the restoration in flight, archive, delete: one transaction, each step a
        transition of the table. None when the photo was deleted already."""
        if photo.status is PhotoStatus.DELETED:
            return None
        canceled = None
        if photo.status is PhotoStatus.PROCESSING:
            record = error_record(Canceled.code, "the photo was deleted")
            canceled = tx.restore.cancel_in_flight(photo.id, photo.owner_id, record)
            if canceled is None:  # processing without a pending attempt: the sweeper's case
                raise AlreadyProcessing(
                    "the photo's restoration is being settled; try again in a few minutes",
                    restore_attempt_id=None,
                )
        if photo.status is not PhotoStatus.ARCHIVED:
            _changed(tx.archive(photo.id))
        _changed(tx.mark_deleted(photo.id))
        return _Ended(canceled)

    def _remove_objects(self, photo_id: uuid.UUID, *, present: set[str] | None = None) -> int:
        """Every object the photo's rows name and every one under its attempts' prefix, in
        DeleteObjects requests (a missing key is fine). Returns how many were there: those
        listed, and the named ones found in `present` (keys listed by the caller; removed
        from it here). No HEAD per key: without ListBucket on its prefix (the API lists only
        `restored/`), S3 answers 403 for a missing key, so a repeated DELETE would fail."""
        with self._lifecycle.transaction() as tx:
            named = tx.photo_object_keys(photo_id)
        listed = set(self._storage.keys_under(restored_prefix(photo_id)))
        self._storage.delete_many(sorted(named | listed))
        found = len(listed)
        if present is not None:
            found += len((named - listed) & present)
            present -= named
        return found

    def _announce(self, photo: Photo, ended: _Ended, *, reason: str) -> None:
        if ended.canceled is not None:
            self._announcer.announce_or_log(ended.canceled.id)
        try:
            self._publisher.publish(RestoreEvent.photo_deleted(photo.id, photo.owner_id, reason))
        except DependencyUnavailable:
            # Deleted stands; the event is the one thing lost (README: events).
            logger.warning("could not publish PhotoDeleted of %s", photo.id, exc_info=True)


@dataclass(frozen=True)
class _Ended:
    canceled: Attempt | None  # the restoration the delete canceled


def _owned(tx: LifecycleTransaction, caller: Caller, photo_id: uuid.UUID) -> Photo:
    photo = tx.locked_photo(photo_id, caller.user_id)
    if photo is None:
        raise PhotoNotFound("no such photo")
    if photo.status is PhotoStatus.DELETED:
        raise PhotoGone("this photo was deleted")
    return photo


def _changed(photo: Photo | None) -> Photo:
    """The row is locked by this transaction, so a transition the table allows cannot miss."""
    if photo is None:
        raise RuntimeError("a locked photo's status changed under its lock")
    return photo


def _in_flight_id(tx: LifecycleTransaction, photo_id: uuid.UUID) -> str | None:
    newest = tx.restore.newest_attempt(photo_id)
    return str(newest.id) if newest else None

"""The photo status table: which `photos.status` changes are allowed, and the revert rule.

Pure rules; the repository applies every change as one conditional `UPDATE ... WHERE status IN
(<allowed sources>) RETURNING`, so two racing writers can never both win.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum


class PhotoStatus(StrEnum):
    UPLOADED = "uploaded"
    PROCESSING = "processing"
    READY = "ready"
    ARCHIVED = "archived"
    DELETED = "deleted"


ALLOWED_TRANSITIONS: frozenset[tuple[PhotoStatus, PhotoStatus]] = frozenset(
    {
        (PhotoStatus.UPLOADED, PhotoStatus.PROCESSING),  # restore requested
        (PhotoStatus.PROCESSING, PhotoStatus.READY),  # restoration stored (or failed re-restore)
        (PhotoStatus.PROCESSING, PhotoStatus.UPLOADED),  # restoration failed: revert
        (PhotoStatus.READY, PhotoStatus.PROCESSING),  # another restore requested
        (PhotoStatus.READY, PhotoStatus.ARCHIVED),  # user archives
        (PhotoStatus.ARCHIVED, PhotoStatus.DELETED),  # user deletes
        # This service's additions (README: a photo's end): a photo never restored can be
        # archived too, and archiving is undone to the status it left (ready with a
        # restoration, uploaded without). `deleted` is still reached only from `archived`.
        (PhotoStatus.UPLOADED, PhotoStatus.ARCHIVED),
        (PhotoStatus.ARCHIVED, PhotoStatus.READY),
        (PhotoStatus.ARCHIVED, PhotoStatus.UPLOADED),
    }
)

# Statuses from which a restore may be requested, derived from the table above.
RESTORABLE_STATUSES: frozenset[PhotoStatus] = frozenset(
    source for source, target in ALLOWED_TRANSITIONS if target is PhotoStatus.PROCESSING
)
# Statuses a user may archive from (a photo at rest), and the live ones (served at all).
ARCHIVABLE_STATUSES: frozenset[PhotoStatus] = frozenset(
    source for source, target in ALLOWED_TRANSITIONS if target is PhotoStatus.ARCHIVED
)
LIVE_STATUSES: frozenset[PhotoStatus] = frozenset(PhotoStatus) - {PhotoStatus.DELETED}


class TransitionNotAllowed(ValueError):
    """A programming error: code asked for a change the status table forbids."""


def is_transition_allowed(source: PhotoStatus, target: PhotoStatus) -> bool:
    return (source, target) in ALLOWED_TRANSITIONS


def check_transitions(sources: Collection[PhotoStatus], targets: Collection[PhotoStatus]) -> None:
    for source in sources:
        for target in targets:
            if not is_transition_allowed(source, target):
                raise TransitionNotAllowed(f"photo status {source} -> {target} is not allowed")


def status_after_failed_restore(*, has_restoration: bool) -> PhotoStatus:
    """`processing -> uploaded`, or `-> ready` when an earlier restoration is still on the photo:
    a failed re-restore must not hide the restoration the user already has."""
    target = PhotoStatus.READY if has_restoration else PhotoStatus.UPLOADED
    check_transitions([PhotoStatus.PROCESSING], [target])
    return target


def status_after_unarchive(*, has_restoration: bool) -> PhotoStatus:
    """`archived -> ready` when the photo keeps a restoration, else `-> uploaded`."""
    target = PhotoStatus.READY if has_restoration else PhotoStatus.UPLOADED
    check_transitions([PhotoStatus.ARCHIVED], [target])
    return target

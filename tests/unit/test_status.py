"""The photo status table, as the data model states it (pure: no database)."""

from __future__ import annotations

import itertools

import pytest

from photo_restore.status import (
    ALLOWED_TRANSITIONS,
    RESTORABLE_STATUSES,
    PhotoStatus,
    TransitionNotAllowed,
    check_transitions,
    is_transition_allowed,
    status_after_failed_restore,
    status_after_unarchive,
)

SEED_TABLE = {
    ("uploaded", "processing"),
    ("processing", "ready"),
    ("processing", "uploaded"),
    ("ready", "processing"),
    ("ready", "archived"),
    ("archived", "deleted"),
}
# This service's additions: archive a photo never restored, and undo an archive.
SERVICE_ADDITIONS = {("uploaded", "archived"), ("archived", "ready"), ("archived", "uploaded")}
TABLE = SEED_TABLE | SERVICE_ADDITIONS


def test_the_table_is_the_seed_table_and_the_archive_additions() -> None:
    assert {(a.value, b.value) for a, b in ALLOWED_TRANSITIONS} == TABLE
    # `deleted` is still reached only from `archived`, as the data model says.
    assert {a for a, b in TABLE if b == "deleted"} == {"archived"}
    assert {PhotoStatus.UPLOADED, PhotoStatus.READY} == RESTORABLE_STATUSES


@pytest.mark.parametrize(
    ("source", "target"), list(itertools.product(PhotoStatus, PhotoStatus)), ids=str
)
def test_every_pair_is_checked_against_the_table(source: PhotoStatus, target: PhotoStatus) -> None:
    allowed = (source.value, target.value) in TABLE
    assert is_transition_allowed(source, target) is allowed
    if allowed:
        check_transitions([source], [target])
    else:
        with pytest.raises(TransitionNotAllowed):
            check_transitions([source], [target])


def test_a_failed_restore_reverts_to_uploaded_unless_an_earlier_restoration_is_kept() -> None:
    assert status_after_failed_restore(has_restoration=False) is PhotoStatus.UPLOADED
    assert status_after_failed_restore(has_restoration=True) is PhotoStatus.READY


def test_unarchive_returns_to_ready_with_a_restoration_else_to_uploaded() -> None:
    assert status_after_unarchive(has_restoration=True) is PhotoStatus.READY
    assert status_after_unarchive(has_restoration=False) is PhotoStatus.UPLOADED

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
)

SEED_TABLE = {
    ("uploaded", "processing"),
    ("processing", "ready"),
    ("processing", "uploaded"),
    ("ready", "processing"),
    ("ready", "archived"),
    ("archived", "deleted"),
}


def test_the_table_is_the_seed_table() -> None:
    assert {(a.value, b.value) for a, b in ALLOWED_TRANSITIONS} == SEED_TABLE
    assert {PhotoStatus.UPLOADED, PhotoStatus.READY} == RESTORABLE_STATUSES


@pytest.mark.parametrize(
    ("source", "target"), list(itertools.product(PhotoStatus, PhotoStatus)), ids=str
)
def test_every_pair_is_checked_against_the_table(source: PhotoStatus, target: PhotoStatus) -> None:
    allowed = (source.value, target.value) in SEED_TABLE
    assert is_transition_allowed(source, target) is allowed
    if allowed:
        check_transitions([source], [target])
    else:
        with pytest.raises(TransitionNotAllowed):
            check_transitions([source], [target])


def test_a_failed_restore_reverts_to_uploaded_unless_an_earlier_restoration_is_kept() -> None:
    assert status_after_failed_restore(has_restoration=False) is PhotoStatus.UPLOADED
    assert status_after_failed_restore(has_restoration=True) is PhotoStatus.READY

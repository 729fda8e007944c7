"""The status table, exhaustively, executed against Postgres."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import Engine, select

from photo_restore.models import photos
from photo_restore.status import (
    ALLOWED_TRANSITIONS,
    RESTORABLE_STATUSES,
    PhotoStatus,
    TransitionNotAllowed,
    change_photo_status,
    revert_failed_restore,
)
from tests.conftest import insert_photo

EXPECTED = {
    ("uploaded", "processing"),
    ("processing", "ready"),
    ("processing", "uploaded"),
    ("ready", "processing"),
    ("ready", "archived"),
    ("archived", "deleted"),
}
ALL_PAIRS = list(itertools.product(PhotoStatus, PhotoStatus))


def test_the_table_is_the_seed_table() -> None:
    assert {(a.value, b.value) for a, b in ALLOWED_TRANSITIONS} == EXPECTED
    assert {PhotoStatus.UPLOADED, PhotoStatus.READY} == RESTORABLE_STATUSES


@pytest.mark.parametrize(("source", "target"), ALL_PAIRS, ids=lambda s: str(s))
def test_every_pair_is_allowed_or_refused_as_the_table_says(
    engine: Engine, source: PhotoStatus, target: PhotoStatus
) -> None:
    photo = insert_photo(engine, status=source.value)
    with engine.begin() as conn:
        if (source.value, target.value) in EXPECTED:
            row = change_photo_status(conn, photo.id, sources=[source], target=target)
            assert row is not None
            assert row.status == target.value
        else:
            with pytest.raises(TransitionNotAllowed):
                change_photo_status(conn, photo.id, sources=[source], target=target)
    with engine.connect() as conn:
        stored = conn.execute(select(photos.c.status).where(photos.c.id == photo.id)).scalar()
    assert stored == (target.value if (source.value, target.value) in EXPECTED else source.value)


def test_a_change_from_the_wrong_current_status_matches_nothing(engine: Engine) -> None:
    photo = insert_photo(engine, status="ready")
    with engine.begin() as conn:
        row = change_photo_status(
            conn, photo.id, sources=[PhotoStatus.UPLOADED], target=PhotoStatus.PROCESSING
        )
    assert row is None


def test_failed_first_restore_reverts_to_uploaded(engine: Engine) -> None:
    photo = insert_photo(engine, status="processing")
    with engine.begin() as conn:
        row = revert_failed_restore(conn, photo.id)
    assert row is not None and row.status == "uploaded"


def test_failed_re_restore_keeps_the_earlier_restoration_ready(engine: Engine) -> None:
    photo = insert_photo(engine, status="ready")
    with engine.begin() as conn:
        conn.execute(
            photos.update().where(photos.c.id == photo.id).values(processed_key="restored/x.jpg")
        )
        change_photo_status(
            conn, photo.id, sources=[PhotoStatus.READY], target=PhotoStatus.PROCESSING
        )
        row = revert_failed_restore(conn, photo.id)
    assert row is not None and row.status == "ready"


def test_revert_only_applies_to_processing_photos(engine: Engine) -> None:
    photo = insert_photo(engine, status="uploaded")
    with engine.begin() as conn:
        assert revert_failed_restore(conn, photo.id) is None

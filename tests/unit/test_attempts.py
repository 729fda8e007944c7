"""The attempt lifecycle: states, transitions, and their encoding in `s3_key` and `params`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from photo_restore.attempts import (
    ALLOWED_TRANSITIONS,
    FINAL_STATES,
    PENDING_S3_KEY,
    Attempt,
    AttemptState,
    attempt_state,
)


def attempt(s3_key: str = PENDING_S3_KEY, **params: Any) -> Attempt:
    return Attempt(
        id=uuid.uuid4(),
        photo_id=uuid.uuid4(),
        s3_key=s3_key,
        model="Qwen/Qwen-Image-Edit",
        params=params,
        created_at=datetime.now(UTC),
    )


def test_pending_attempts_end_succeeded_or_failed_and_stay_there() -> None:
    assert {
        (AttemptState.PENDING, AttemptState.SUCCEEDED),
        (AttemptState.PENDING, AttemptState.FAILED),
    } == ALLOWED_TRANSITIONS
    assert {AttemptState.SUCCEEDED, AttemptState.FAILED} == FINAL_STATES


@pytest.mark.parametrize(
    ("s3_key", "params", "state"),
    [
        ("pending", {}, AttemptState.PENDING),
        ("pending", None, AttemptState.PENDING),
        ("pending", {"last_transient_error": {"code": "x"}}, AttemptState.PENDING),
        ("pending", {"error": {"code": "provider_rejected"}}, AttemptState.FAILED),
        ("restored/p/1.jpg", {}, AttemptState.SUCCEEDED),
        # A stored image wins: the error was recorded before a later delivery succeeded.
        ("restored/p/1.jpg", {"error": {"code": "x"}}, AttemptState.SUCCEEDED),
    ],
)
def test_the_state_is_derived_from_the_columns(
    s3_key: str, params: dict[str, Any] | None, state: AttemptState
) -> None:
    assert attempt_state(s3_key, params) is state


def test_an_attempt_shows_its_error_only_when_failed_and_its_image_only_when_succeeded() -> None:
    failed = attempt(error={"code": "corrupt_image", "message": "bad"})
    assert failed.state is AttemptState.FAILED
    assert failed.error == {"code": "corrupt_image", "message": "bad"}
    assert failed.restored_key is None

    succeeded = attempt("restored/p/1.jpg")
    assert succeeded.error is None and succeeded.restored_key == "restored/p/1.jpg"

    pending = attempt(last_transient_error={"code": "provider_unavailable"})
    assert pending.error is None and pending.restored_key is None
    assert pending.last_transient_error == {"code": "provider_unavailable"}

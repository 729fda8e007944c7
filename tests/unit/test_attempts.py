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
    Phase,
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


def test_pending_attempts_end_succeeded_failed_or_canceled_and_stay_there() -> None:
    assert {
        (AttemptState.PENDING, AttemptState.SUCCEEDED),
        (AttemptState.PENDING, AttemptState.FAILED),
        (AttemptState.PENDING, AttemptState.CANCELED),
    } == ALLOWED_TRANSITIONS
    assert {AttemptState.SUCCEEDED, AttemptState.FAILED, AttemptState.CANCELED} == FINAL_STATES


@pytest.mark.parametrize(
    ("s3_key", "params", "state"),
    [
        ("pending", {}, AttemptState.PENDING),
        ("pending", None, AttemptState.PENDING),
        ("pending", {"last_transient_error": {"code": "x"}}, AttemptState.PENDING),
        ("pending", {"error": {"code": "provider_rejected"}}, AttemptState.FAILED),
        ("pending", {"error": {"code": "canceled"}}, AttemptState.CANCELED),
        ("pending", {"error": "a string from another writer"}, AttemptState.FAILED),
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


@pytest.mark.parametrize(
    ("s3_key", "params", "phase"),
    [
        ("pending", {}, Phase.QUEUED),
        ("pending", {"phase": "generating"}, Phase.GENERATING),
        ("pending", {"phase": "no-such-phase"}, Phase.QUEUED),
        (
            "pending",
            {"phase": "generating", "waiting_for_capacity": {"until": "x"}},
            Phase.WAITING_FOR_CAPACITY,
        ),
        ("pending", {"phase": "storing", "error": {"code": "canceled"}}, Phase.CANCELED),
        ("pending", {"phase": "storing", "error": {"code": "corrupt_image"}}, Phase.FAILED),
        ("restored/p/1.jpg", {"phase": "storing"}, Phase.SUCCEEDED),
    ],
)
def test_the_phase_is_the_recorded_one_while_pending_and_the_outcome_after(
    s3_key: str, params: dict[str, Any], phase: Phase
) -> None:
    assert attempt(s3_key, **params).phase is phase


def test_times_are_read_from_params_and_finished_only_once_settled() -> None:
    stamp = "2026-12-02T10:00:00.123456+00:00"
    pending = attempt(started_at=stamp, finished_at=stamp, phase_started_at=stamp)
    assert pending.started_at == datetime.fromisoformat(stamp)
    assert pending.phase_started_at == datetime.fromisoformat(stamp)
    assert pending.finished_at is None  # not settled: a stray key means nothing
    done = attempt("restored/p/1.jpg", finished_at=stamp, started_at="not a time")
    assert done.finished_at == datetime.fromisoformat(stamp)
    assert done.started_at is None


def test_image_keys_and_sizes_are_shown_only_for_a_succeeded_attempt() -> None:
    params: dict[str, Any] = {
        "before_key": "restored/p/1.before.jpg",
        "thumbnail_key": "restored/p/1.thumb.jpg",
        "result_dimensions": [1024, 768],
        "preprocessed": {"submitted_dimensions": [2048, 1536]},
    }
    done = attempt("restored/p/1.jpg", **params)
    assert done.before_key == "restored/p/1.before.jpg"
    assert done.thumbnail_key == "restored/p/1.thumb.jpg"
    assert done.result_size == (1024, 768) and done.submitted_size == (2048, 1536)
    failed = attempt(**params, error={"code": "corrupt_image"})
    assert failed.before_key is None and failed.thumbnail_key is None
    assert attempt("restored/p/1.jpg", result_dimensions=[1, "x"]).result_size is None

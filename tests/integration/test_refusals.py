"""Refusals classified by what they say, and by how many photos they hit: one refusal of
several different photos within the window is systemic (alarmed as provider_misconfigured);
the service's "System is really busy" 503 is deferred like a 429."""

from __future__ import annotations

import uuid

import pytest

from photo_restore_tools.local.photos import StoredPhoto
from photo_restore_tools.local.siliconflow_standin import Behaviour
from tests.helpers.images import old_photo
from tests.helpers.pipeline import Pipeline, queue_size

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)


def refused(
    pipeline: Pipeline, behaviour: Behaviour, photo: StoredPhoto | None = None
) -> tuple[StoredPhoto, str]:
    """A restore of `photo` (a new one by default) answered `behaviour`: the photo, and the
    error code its attempt failed with."""
    photo = photo or pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    pipeline.standin.enqueue(behaviour)
    pipeline.drain()
    assert pipeline.photo(photo.id).status == "uploaded"
    return photo, pipeline.attempt(attempt_id).params["error"]["code"]


def test_one_refusal_hitting_several_photos_is_systemic(pipeline: Pipeline) -> None:
    pipeline.reload_worker(systemic_refusal_photos=3)
    # Free text naming nothing we sent: on its own, this photo's refusal.
    words = f"The parameter is invalid ({uuid.uuid4().hex[:8]})"  # unique to this test run
    codes = [refused(pipeline, Behaviour.invalid_parameter(words))[1] for _ in range(4)]

    # The third photo refused alike within the window (3 photos, as by default) is systemic.
    assert codes == ["provider_rejected", "provider_rejected"] + ["provider_misconfigured"] * 2


def test_a_refusal_repeated_for_the_same_photo_stays_the_photos(pipeline: Pipeline) -> None:
    words = f"image is too small ({uuid.uuid4().hex[:8]})"
    photo, first = refused(pipeline, Behaviour.invalid_parameter(words))
    again = [refused(pipeline, Behaviour.invalid_parameter(words), photo)[1] for _ in range(3)]
    assert [first, *again] == ["provider_rejected"] * 4


def test_different_refusals_of_different_photos_stay_the_photos(pipeline: Pipeline) -> None:
    codes = [
        refused(pipeline, Behaviour.invalid_parameter(f"image {uuid.uuid4().hex} refused"))[1]
        for _ in range(3)
    ]
    assert codes == ["provider_rejected"] * 3


def test_system_busy_defers_without_using_up_the_message_receives(pipeline: Pipeline) -> None:
    pipeline.reload_worker(default_rate_limit_delay_seconds=1)
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    busy = pipeline.settings.max_receive_count + 2
    pipeline.standin.enqueue(*[Behaviour.system_busy() for _ in range(busy)])

    pipeline.drain(timeout=60)

    assert pipeline.photo(photo.id).status == "ready"
    assert len(pipeline.standin.requests) == busy + 1  # no retry in the invocation either
    assert pipeline.attempt(attempt_id).params["provider_calls"] == busy + 1
    assert queue_size(pipeline.sqs, pipeline.settings.dlq_url) == 0

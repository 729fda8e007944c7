"""The faithfulness check end to end (issue 18): recorded on the attempt, shown in both attempt
views of the API and in the event, and a drifted result never displaces a faithful selection."""

from __future__ import annotations

import io
import json
import uuid

import httpx
import pytest
from PIL import Image

from photo_restore_tools import faithfulness_samples as samples
from photo_restore_tools.local.photos import StoredPhoto
from photo_restore_tools.local.services import LocalResources
from photo_restore_tools.local.siliconflow_standin import Behaviour
from tests.helpers.images import old_photo
from tests.helpers.pipeline import Pipeline

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)


def fetch_size(url: str) -> tuple[int, int]:
    with Image.open(io.BytesIO(httpx.get(url, timeout=10).content)) as image:
        return image.size


def portrait() -> bytes:
    return samples.jpeg(samples.photo("astronaut"))


def restore(pipeline: Pipeline, photo: StoredPhoto, *behaviours: Behaviour) -> uuid.UUID:
    attempt_id = pipeline.request_restore(photo)
    pipeline.standin.enqueue(*behaviours)
    pipeline.drain()
    return attempt_id


def test_a_restoration_records_its_faithfulness_in_params_the_api_and_the_event(
    pipeline: Pipeline, resources: LocalResources
) -> None:
    photo = pipeline.add_photo(portrait())
    attempt_id = restore(pipeline, photo)

    recorded = pipeline.attempt(attempt_id).params["faithfulness"]
    assert recorded["verdict"] == "faithful", recorded["reason"]
    assert recorded["faces_matched"] == recorded["faces_compared"] >= 1
    status, view = pipeline.call_api("GET", f"/photos/{photo.id}", photo.owner_id)
    assert status == 200
    assert view["latest_attempt"]["faithfulness"] == recorded
    status, listing = pipeline.call_api("GET", f"/photos/{photo.id}/restores", photo.owner_id)
    assert status == 200
    assert listing["restores"][0]["faithfulness"] == recorded
    [event] = pipeline.published_events(resources.events_queue_url)
    assert event["detail"]["verdict"] == "faithful"
    assert view["slider_adjusted"] is None  # the stand-in kept the frame: nothing to adjust


def test_a_result_zoomed_and_shifted_like_2509s_is_aligned_and_faithful(
    pipeline: Pipeline,
) -> None:
    photo = pipeline.add_photo(portrait())
    attempt_id = restore(pipeline, photo, Behaviour.zoomed(1.025, -0.012, 0.008))
    recorded = pipeline.attempt(attempt_id).params["faithfulness"]
    assert recorded["verdict"] == "faithful", recorded["reason"]
    assert recorded["alignment"]["scale"] == pytest.approx(1.025, abs=0.006)
    assert recorded["alignment"]["dx"] == pytest.approx(-0.012, abs=0.006)

    # The slider's before is framed like the result; the restoration stays as the model made it.
    attempt = pipeline.attempt(attempt_id)
    assert attempt.framed_before_key
    status, view = pipeline.call_api("GET", f"/photos/{photo.id}", photo.owner_id)
    assert (status, view["slider_adjusted"]) == (200, "before")
    width, height = attempt.params["result_dimensions"]
    assert (view["before"]["width"], view["before"]["height"]) == (width, height)
    assert fetch_size(view["before"]["url"]) == fetch_size(view["after"]["url"]) == (width, height)
    assert pipeline.restored_keys(photo.id) == pipeline.keys_of(attempt)


def test_a_replaced_face_is_flagged_and_never_displaces_the_faithful_selection(
    pipeline: Pipeline, resources: LocalResources
) -> None:
    photo = pipeline.add_photo(portrait())
    faithful_id = restore(pipeline, photo)
    drifted_id = restore(pipeline, photo, Behaviour.face_replaced())

    drifted = pipeline.attempt(drifted_id)
    assert drifted.state == "succeeded"  # flag: stored and marked, not failed
    assert drifted.params["faithfulness"]["verdict"] == "drifted"
    settled = pipeline.photo(photo.id)
    assert settled.status == "ready"
    assert settled.processed_key == pipeline.attempt(faithful_id).s3_key
    status, view = pipeline.call_api("GET", f"/photos/{photo.id}", photo.owner_id)
    assert view["selected_restore_id"] == str(faithful_id)
    assert view["latest_attempt"]["faithfulness"]["verdict"] == "drifted"
    events = pipeline.published_events(resources.events_queue_url)
    assert [e["detail"]["verdict"] for e in events] == ["faithful", "drifted"]

    # The user may still choose it.
    body = json.dumps({"restore_attempt_id": str(drifted_id)}).encode()
    path = f"/photos/{photo.id}/selected-restore"
    status, selected = pipeline.call_api("PUT", path, photo.owner_id, body=body)
    assert (status, selected["selected_restore_id"]) == (200, str(drifted_id))
    assert pipeline.photo(photo.id).processed_key == drifted.s3_key


def test_a_drifted_first_restoration_is_still_selected(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(portrait())
    drifted_id = restore(pipeline, photo, Behaviour.face_replaced())
    assert pipeline.attempt(drifted_id).params["faithfulness"]["verdict"] == "drifted"
    status, view = pipeline.call_api("GET", f"/photos/{photo.id}", photo.owner_id)
    assert (status, view["selected_restore_id"]) == (200, str(drifted_id))


def test_a_photo_without_faces_is_judged_on_structure(pipeline: Pipeline) -> None:
    photo = pipeline.add_photo(old_photo())
    recorded = pipeline.attempt(restore(pipeline, photo)).params["faithfulness"]
    assert recorded["verdict"] == "faithful", recorded["reason"]
    assert recorded["faces_before"] == 0


def test_with_the_policy_off_nothing_is_checked(pipeline: Pipeline) -> None:
    pipeline.reload_worker(faithfulness_policy="off")
    photo = pipeline.add_photo(portrait())
    params = pipeline.attempt(restore(pipeline, photo)).params
    assert "faithfulness" not in params
    status, view = pipeline.call_api("GET", f"/photos/{photo.id}", photo.owner_id)
    assert (status, view["latest_attempt"]["faithfulness"]) == (200, None)


def test_retry_asks_again_after_a_replaced_face_and_keeps_the_faithful_result(
    pipeline: Pipeline, resources: LocalResources
) -> None:
    pipeline.reload_worker(faithfulness_policy="retry", worker_timeout_seconds=600)
    photo = pipeline.add_photo(portrait())
    attempt = pipeline.attempt(restore(pipeline, photo, Behaviour.face_replaced()))

    assert attempt.params["faithfulness"]["verdict"] == "faithful"
    calls = attempt.params["faithfulness_calls"]
    assert [(c["verdict"], c["kept"]) for c in calls] == [("drifted", False), ("faithful", True)]
    first, second = pipeline.standin.requests  # each call costs an image: both recorded
    assert "seed" not in first and second["seed"] == calls[1]["requested_seed"]
    assert (attempt.params["seed"], attempt.params["provider_trace_id"]) == (
        calls[1]["seed"],
        calls[1]["provider_trace_id"],
    )
    [event] = pipeline.published_events(resources.events_queue_url)
    assert event["detail"]["verdict"] == "faithful"

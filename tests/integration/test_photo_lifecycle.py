"""A photo's end on real parts (Postgres, moto S3/SQS/EventBridge, the stand-in): the gallery,
archive and unarchive, delete (also racing a restoration), and an erasure request."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from sqlalchemy import Engine

from photo_restore.lifecycle import wiring as lifecycle
from photo_restore.models import photos
from photo_restore.preprocess import PreprocessLimits, preprocess_image
from photo_restore.queue import RestoreMessage, RestoreQueue
from photo_restore.repository import SqlRepository
from photo_restore.restore_requests import Caller
from photo_restore.restore_runs import RestoreRun, RunOutcome
from photo_restore.result_download import ResultDownloader
from photo_restore.settings import Settings
from photo_restore.siliconflow import SiliconFlowClient
from photo_restore.storage import ObjectStorage
from photo_restore_tools.cli import main
from photo_restore_tools.local.photos import StoredPhoto
from photo_restore_tools.local.services import LocalResources
from tests.helpers import records
from tests.helpers.images import old_photo
from tests.helpers.pipeline import Pipeline

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)


def objects_of(pipeline: Pipeline, photo: StoredPhoto) -> list[str]:
    """Every object under the photo's prefixes: its original's and its attempts'."""
    keys = pipeline.restored_keys(photo.id)
    listing = pipeline.s3.list_objects_v2(
        Bucket=pipeline.settings.bucket_name, Prefix=photo.original_key
    )
    return keys + [o["Key"] for o in listing.get("Contents", [])]


def restored(pipeline: Pipeline, owner_id: str | None = None) -> StoredPhoto:
    photo = pipeline.add_photo(
        old_photo((640, 480)), **({"owner_id": owner_id} if owner_id else {})
    )
    pipeline.request_restore(photo)
    pipeline.drain()
    assert pipeline.photo(photo.id).status == "ready"
    return photo


def test_a_restored_photo_archived_then_deleted_leaves_no_object_and_keeps_its_history(
    pipeline: Pipeline, resources: LocalResources
) -> None:
    photo = restored(pipeline)
    assert len(objects_of(pipeline, photo)) == 4  # original, restoration, before, thumbnail
    pipeline.published_events(resources.events_queue_url)  # RestoreSucceeded, read

    status, body = pipeline.call_api("POST", f"/photos/{photo.id}/archive", photo.owner_id)
    assert (status, body["status"]) == (200, "archived")
    status, body = pipeline.call_api("POST", f"/photos/{photo.id}/restore", photo.owner_id)
    assert (status, body["error"]) == (409, "photo_not_restorable")

    status, body = pipeline.call_api("DELETE", f"/photos/{photo.id}", photo.owner_id)
    assert (status, body) == (200, {"photo_id": str(photo.id), "status": "deleted"})
    assert objects_of(pipeline, photo) == []
    assert pipeline.photo(photo.id).status == "deleted"
    [attempt] = records.attempts_of(pipeline.engine, photo.id)  # the history stays
    assert attempt.restored_key is not None
    for path in (f"/photos/{photo.id}", f"/photos/{photo.id}/restores"):
        status, body = pipeline.call_api("GET", path, photo.owner_id)
        assert (status, body["error"]) == (410, "photo_deleted")
    status, body = pipeline.call_api("GET", f"/photos/{photo.id}", "someone-else")
    assert (status, body["error"]) == (404, "photo_not_found")
    # A repeat (a retry after a lost answer) answers the same; a stranger's is a 404.
    assert pipeline.call_api("DELETE", f"/photos/{photo.id}", photo.owner_id)[0] == 200
    assert pipeline.call_api("DELETE", f"/photos/{photo.id}", "someone-else")[0] == 404
    [event] = pipeline.published_events(resources.events_queue_url)
    assert event["detail-type"] == "PhotoDeleted"
    assert event["detail"] == {
        "photo_id": str(photo.id),
        "owner_id": photo.owner_id,
        "reason": "user",
    }


def test_unarchive_puts_a_photo_back_where_it_was(pipeline: Pipeline) -> None:
    ready = restored(pipeline)
    fresh = pipeline.add_photo(old_photo(), owner_id=ready.owner_id)
    for photo, back in ((ready, "ready"), (fresh, "uploaded")):
        assert pipeline.call_api("POST", f"/photos/{photo.id}/archive", photo.owner_id)[0] == 200
        # Archiving twice answers the same; unarchiving returns it to what it was.
        status, body = pipeline.call_api("POST", f"/photos/{photo.id}/archive", photo.owner_id)
        assert (status, body["status"]) == (200, "archived")
        status, body = pipeline.call_api("POST", f"/photos/{photo.id}/unarchive", photo.owner_id)
        assert (status, body["status"]) == (200, back)
        status, body = pipeline.call_api("POST", f"/photos/{photo.id}/unarchive", photo.owner_id)
        assert (status, body["error"]) == (409, "not_archived")


def test_deleting_a_photo_being_restored_cancels_it_and_the_worker_stores_nothing(
    pipeline: Pipeline, resources: LocalResources
) -> None:
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    status, body = pipeline.call_api("POST", f"/photos/{photo.id}/archive", photo.owner_id)
    assert (status, body["error"]) == (409, "already_processing")

    assert pipeline.call_api("DELETE", f"/photos/{photo.id}", photo.owner_id)[0] == 200
    pipeline.drain()  # the worker finds the attempt canceled
    assert objects_of(pipeline, photo) == []
    assert pipeline.attempt(attempt_id).error["code"] == "canceled"  # type: ignore[index]
    assert pipeline.photo(photo.id).status == "deleted"
    kinds = {e["detail-type"] for e in pipeline.published_events(resources.events_queue_url)}
    assert kinds == {"RestoreCanceled", "PhotoDeleted"}
    assert pipeline.standin.requests == []  # stopped before the provider call


def restore_run(settings: Settings, engine: Engine, **parts: Any) -> RestoreRun:
    downloader = ResultDownloader(
        allow_private_urls=True, max_bytes=settings.result_max_bytes, timeout_seconds=30
    )
    defaults: dict[str, Any] = {
        "repository": SqlRepository(engine),
        "storage": ObjectStorage(boto3.client("s3"), settings.bucket_name),
        "queue": RestoreQueue(boto3.client("sqs"), settings.queue_url),
        "editor": SiliconFlowClient.from_settings(settings, api_key="test-key"),
        "preprocess": partial(preprocess_image, limits=PreprocessLimits.from_settings(settings)),
        "fetch_result": downloader.download,
        "settings": settings,
    }
    return RestoreRun(**(defaults | parts))


def test_a_delete_between_a_duplicate_deliverys_store_and_commit_leaves_no_orphan(
    pipeline: Pipeline,
) -> None:
    """Delivery B is downloading its result when a duplicate delivery A succeeds and the user
    deletes the photo (its objects removed): B's images land after that removal, at A's keys.
    B's commit finds the photo deleted and removes them."""
    photo = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(photo)
    message = RestoreMessage(photo_id=photo.id, restore_attempt_id=attempt_id)
    first = restore_run(pipeline.settings, pipeline.engine)

    def fetch_while_a_duplicate_succeeds_and_the_photo_is_deleted(url: str) -> bytes:
        assert first.run(message).outcome is RunOutcome.SUCCEEDED
        lifecycle.photo_end().delete(Caller(photo.owner_id, None), photo.id)
        assert pipeline.restored_keys(photo.id) == []
        return ResultDownloader(
            allow_private_urls=True, max_bytes=2**26, timeout_seconds=30
        ).download(url)

    second = restore_run(
        pipeline.settings,
        pipeline.engine,
        fetch_result=fetch_while_a_duplicate_succeeds_and_the_photo_is_deleted,
    )
    assert second.run(message).outcome is RunOutcome.SKIPPED
    assert objects_of(pipeline, photo) == []


def test_the_gallery_lists_the_callers_photos_newest_first_a_page_at_a_time(
    pipeline: Pipeline,
) -> None:
    first = restored(pipeline)
    owner = first.owner_id
    later = [pipeline.add_photo(old_photo(), owner_id=owner) for _ in range(4)]
    pipeline.add_photo(old_photo())  # someone else's
    archived = later[1]
    assert pipeline.call_api("POST", f"/photos/{archived.id}/archive", owner)[0] == 200

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, page = pipeline.call_api("GET", "/photos", owner, raw_query=urlencode(query))
        assert status == 200, page
        seen += page["photos"]
        if not (cursor := page["next_cursor"]):
            break
    expected = [p.id for p in reversed(later) if p is not archived] + [first.id]
    assert [uuid.UUID(p["photo_id"]) for p in seen] == expected
    oldest = seen[-1]
    assert oldest["status"] == "ready" and oldest["thumbnail_url"] and oldest["selected_restore_id"]
    assert seen[0]["thumbnail_url"] is None and seen[0]["status"] == "uploaded"

    status, page = pipeline.call_api("GET", "/photos", owner, raw_query="status=archived")
    assert [p["photo_id"] for p in page["photos"]] == [str(archived.id)]
    status, body = pipeline.call_api("GET", "/photos", owner, raw_query="status=deleted")
    assert (status, body["field"]) == (422, "status")
    status, body = pipeline.call_api("GET", "/photos", owner, raw_query="cursor=bm90LWEtY3Vyc29y")
    assert (status, body["field"]) == (422, "cursor")


def test_erase_user_removes_every_object_marks_every_photo_deleted_and_can_run_again(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    done = restored(pipeline)
    owner = done.owner_id
    waiting = pipeline.add_photo(old_photo(), owner_id=owner)
    running = pipeline.add_photo(old_photo(), owner_id=owner)
    pipeline.request_restore(running)
    kept = pipeline.add_photo(old_photo())  # another user's

    assert main(["erase-user", owner]) == 0
    assert "3 photo(s) deleted, 6 object(s) removed" in capsys.readouterr().out
    for photo in (done, waiting, running):
        assert pipeline.photo(photo.id).status == "deleted"
        assert objects_of(pipeline, photo) == []
    assert pipeline.photo(kept.id).status == "uploaded" and objects_of(pipeline, kept)
    assert main(["erase-user", owner]) == 0
    assert "0 photo(s) deleted, 0 object(s) removed" in capsys.readouterr().out


def test_an_original_two_rows_share_is_removed_only_with_the_last_of_them(
    pipeline: Pipeline,
) -> None:
    """Rows of the existing app may name one original (its own dedup): deleting one of them
    keeps the object the other still shows."""
    first = pipeline.add_photo(old_photo())
    second = records.insert_photo(pipeline.engine, owner_id=first.owner_id)
    with pipeline.engine.begin() as conn:
        conn.execute(
            photos.update().where(photos.c.id == second.id).values(original_key=first.original_key)
        )
    assert pipeline.call_api("DELETE", f"/photos/{first.id}", first.owner_id)[0] == 200
    assert objects_of(pipeline, first) == [first.original_key]
    assert pipeline.call_api("DELETE", f"/photos/{second.id}", first.owner_id)[0] == 200
    assert objects_of(pipeline, first) == []

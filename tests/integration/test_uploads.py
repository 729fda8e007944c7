"""Direct uploads on real parts: presigned PUTs over HTTP (httpx) to moto's S3, its object-created
notifications through the ingest queue to the ingest handler, Postgres, and the restore pipeline.

moto neither verifies presigned signatures nor checks x-amz-checksum-sha256: the refusals that
real S3 makes at the PUT (a body of another size or checksum) are made here by the ingest, which
checks the same from the bytes; the README says which does what.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import Engine, select

from photo_restore.events import NoEvents
from photo_restore.lifecycle.ingest import Ingest, IngestOutcome
from photo_restore.lifecycle.queries import LifecycleRepository, LifecycleTransaction
from photo_restore.models import photos, uploads
from photo_restore.repository import SqlRepository
from photo_restore.settings import Settings
from photo_restore.storage import ObjectStorage
from photo_restore_tools.local.event_source import LocalLambdaContext, SqsEventSource
from photo_restore_tools.local.photos import StoredPhoto
from photo_restore_tools.local.services import LocalResources
from tests.helpers.handlers import load_handler
from tests.helpers.images import old_photo, raw_png
from tests.helpers.pipeline import Pipeline

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)

CONCURRENT = 16


class Uploader:
    """A client of POST /uploads that PUTs over HTTP, and the ingest function behind S3."""

    def __init__(self, pipeline: Pipeline, resources: LocalResources) -> None:
        self.pipeline = pipeline
        self.resources = resources
        handler = load_handler("ingest", pipeline.settings)
        self.source = SqsEventSource(
            sqs=pipeline.sqs,
            queue_url=resources.ingest_queue_url,
            handler=handler.lambda_handler,
            function_name="ingest",
            wait_seconds=0,
        )

    def request(
        self, owner: str, data: bytes, *, content_type: str = "image/jpeg", **declared: Any
    ) -> tuple[int, Any]:
        body = {
            "content_type": content_type,
            "size_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        } | declared
        return self.pipeline.call_api("POST", "/uploads", owner, json_body=body)

    def upload(self, owner: str, data: bytes, *, body: bytes | None = None, **declared: Any) -> Any:
        """POST /uploads, then the PUT a browser would make (httpx sets Content-Length)."""
        status, answer = self.request(owner, data, **declared)
        assert status == 201, answer
        put = answer["upload"]
        headers = {k: v for k, v in put["headers"].items() if k != "Content-Length"}
        sent = httpx.put(put["url"], content=data if body is None else body, headers=headers)
        assert sent.status_code == 200, sent.text
        return answer

    def ingest(self) -> None:
        self.pipeline.drain(self.source, queue_url=self.resources.ingest_queue_url)

    def status(self, owner: str, upload_id: str) -> Any:
        status, body = self.pipeline.call_api("GET", f"/uploads/{upload_id}", owner)
        assert status == 200, body
        return body

    def owner_objects(self, owner: str) -> list[str]:
        listing = self.pipeline.s3.list_objects_v2(
            Bucket=self.pipeline.settings.bucket_name, Prefix=f"originals/{owner}/"
        )
        return [o["Key"] for o in listing.get("Contents", [])]


@pytest.fixture
def uploader(pipeline: Pipeline, resources: LocalResources) -> Uploader:
    return Uploader(pipeline, resources)


def photo_with_exif(size: tuple[int, int] = (640, 480)) -> bytes:
    """A JPEG with a capture time and a GPS position, as phones write them."""
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated: the upright size is the stored one swapped
    exif.get_ifd(0x8769)[0x9003] = "2019:05:01 12:34:56"
    exif.get_ifd(0x8825).update({1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)})
    out = io.BytesIO()
    Image.open(io.BytesIO(old_photo(size))).save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def new_owner() -> str:
    return f"user-{uuid.uuid4()}"


def test_an_upload_put_over_http_becomes_an_uploaded_photo_and_dedups_after(
    uploader: Uploader, engine: Engine, resources: LocalResources
) -> None:
    owner, data = new_owner(), photo_with_exif()
    created = uploader.upload(owner, data)
    assert created["status"] == "pending" and created["photo_id"] == created["upload_id"]
    assert created["limits"]["max_bytes"] == uploader.pipeline.settings.max_original_bytes
    assert uploader.status(owner, created["upload_id"])["status"] == "pending"

    uploader.ingest()
    done = uploader.status(owner, created["upload_id"])
    assert (done["status"], done["photo_id"], done["duplicate"]) == (
        "accepted",
        created["upload_id"],
        False,
    )
    with engine.connect() as conn:
        row = conn.execute(select(photos).where(photos.c.id == uuid.UUID(done["photo_id"]))).one()
    assert (row.status, row.owner_id, row.mime_type, row.size_bytes) == (
        "uploaded",
        owner,
        "image/jpeg",
        len(data),
    )
    assert row.checksum_sha256 == hashlib.sha256(data).hexdigest()
    assert row.metadata_json == {
        "dimensions": [480, 640],
        "format": "JPEG",
        "captured_at": "2019-05-01T12:34:56",
    }  # and never the GPS position
    [event] = uploader.pipeline.published_events(resources.events_queue_url)
    assert (event["detail-type"], event["detail"]["photo_id"]) == ("PhotoUploaded", str(row.id))

    # The same file again: the photo the user has, nothing to upload.
    status, again = uploader.request(owner, data)
    assert (status, again["photo_id"], again["duplicate"], again["upload"]) == (
        200,
        str(row.id),
        True,
        None,
    )
    # Someone else's upload of the same file is theirs.
    assert uploader.request(new_owner(), data)[0] == 201


def test_a_heic_declared_under_another_name_is_signed_and_stored_as_image_heic(
    uploader: Uploader, engine: Engine
) -> None:
    owner, data = new_owner(), old_photo((400, 300), fmt="HEIF")
    created = uploader.upload(owner, data, content_type="image/HEIF; q=1")
    assert created["upload"]["headers"]["Content-Type"] == "image/heic"
    uploader.ingest()
    done = uploader.status(owner, created["upload_id"])
    assert done["status"] == "accepted", done
    with engine.connect() as conn:
        row = conn.execute(select(photos).where(photos.c.id == uuid.UUID(done["photo_id"]))).one()
    assert (row.mime_type, row.metadata_json["format"], row.original_key[-5:]) == (
        "image/heic",
        "HEIC",
        ".heic",
    )


def test_unaccepted_uploads_are_refused_up_front_with_a_reason(uploader: Uploader) -> None:
    owner, data = new_owner(), old_photo()
    status, body = uploader.request(owner, data, content_type="application/pdf")
    assert (status, body["error"]) == (415, "unsupported_media_type")
    limit = uploader.pipeline.settings.max_original_bytes
    status, body = uploader.request(owner, data, size_bytes=limit + 1)
    assert (status, body["error"]) == (413, "upload_too_large")
    for malformed in ("abc", "z" * 64, hashlib.sha256(data).hexdigest()[:-1]):
        status, body = uploader.request(owner, data, sha256=malformed)
        assert (status, body["error"], body["field"]) == (422, "invalid_request", "sha256")
    status, body = uploader.pipeline.call_api("GET", f"/uploads/{uuid.uuid4()}", owner)
    assert (status, body["error"]) == (404, "upload_not_found")


def pixel_bomb() -> bytes:
    """A 40,000 x 40,000 PNG header (1.6 GP) over a few bytes of data."""
    return raw_png(40_000, 40_000, 8, 2, zlib.compress(b"\x00" * 1000))


REFUSALS = {
    # declared checksum, content type, body sent: what the ingest finds
    "wrong_checksum": ({"sha256": hashlib.sha256(b"other").hexdigest()}, None, "checksum_mismatch"),
    "lying_content_type": ({"content_type": "image/png"}, None, "content_type_mismatch"),
    "oversize_body": ({}, b"\xff" * 4096, "size_mismatch"),
    "pixel_bomb": ({"content_type": "image/png"}, None, "image_too_large"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_upload_is_deleted_and_says_why(
    uploader: Uploader, engine: Engine, case: str
) -> None:
    declared, extra, code = REFUSALS[case]
    owner = new_owner()
    data = pixel_bomb() if case == "pixel_bomb" else old_photo()
    body = data + extra if extra else None
    created = uploader.upload(owner, data, body=body, **declared)
    uploader.ingest()
    done = uploader.status(owner, created["upload_id"])
    assert (done["status"], done["reason_code"], done["photo_id"]) == ("rejected", code, None)
    assert done["reason"]
    assert uploader.owner_objects(owner) == []
    with engine.connect() as conn:
        assert conn.execute(select(photos.c.id).where(photos.c.owner_id == owner)).all() == []


class ReleasedTogether(LifecycleRepository):
    """The ingest's repository, whose accepting transactions all start checking for a live
    photo of the checksum at one instant: the race a unique constraint would otherwise need."""

    def __init__(self, repository: SqlRepository, parties: int) -> None:
        super().__init__(repository)
        self.start = threading.Barrier(parties)

    @contextmanager
    def transaction(self) -> Iterator[LifecycleTransaction]:
        with super().transaction() as tx:
            yield _AtTheBarrier(tx, self.start)


class _AtTheBarrier(LifecycleTransaction):
    def __init__(self, tx: LifecycleTransaction, start: threading.Barrier) -> None:
        super().__init__(tx.restore)
        self._start = start

    def lock_checksum(self, owner_id: str, checksum_sha256: str) -> None:
        self._start.wait()
        super().lock_checksum(owner_id, checksum_sha256)


def test_sixteen_concurrent_uploads_of_one_file_make_one_photo(
    uploader: Uploader, engine: Engine, settings: Settings
) -> None:
    owner, data = new_owner(), old_photo()
    start = threading.Barrier(CONCURRENT)

    def upload_once(_: int) -> Any:
        start.wait()
        return uploader.upload(owner, data)

    with ThreadPoolExecutor(CONCURRENT) as pool:
        created = list(pool.map(upload_once, range(CONCURRENT)))
    assert len({c["upload_id"] for c in created}) == CONCURRENT  # no live photo yet: 16 PUTs
    keys = [f"originals/{owner}/{c['upload_id']}.jpg" for c in created]
    storage = ObjectStorage(boto3.client("s3"), settings.bucket_name)
    racing = ReleasedTogether(SqlRepository(engine), CONCURRENT)  # a connection each
    ingest = Ingest(racing, storage, NoEvents(), settings)
    with ThreadPoolExecutor(CONCURRENT) as pool:
        reports = list(pool.map(ingest.object_created, keys))
    with engine.connect() as conn:
        made = conn.execute(select(photos.c.id).where(photos.c.owner_id == owner)).scalars().all()
        ended_as = set(
            conn.execute(select(uploads.c.photo_id).where(uploads.c.owner_id == owner)).scalars()
        )
    assert len(made) == 1 and ended_as == set(made)
    outcomes = [r.outcome for r in reports]
    assert outcomes.count(IngestOutcome.ACCEPTED) == 1
    assert outcomes.count(IngestOutcome.DUPLICATE) == CONCURRENT - 1
    assert uploader.owner_objects(owner) == [f"originals/{owner}/{made[0]}.jpg"]
    # Every notification delivered again (and S3's own, still queued) changes nothing.
    again = Ingest(LifecycleRepository(SqlRepository(engine)), storage, NoEvents(), settings)
    assert {again.object_created(key).outcome for key in keys} == {IngestOutcome.SETTLED}
    uploader.ingest()
    assert uploader.owner_objects(owner) == [f"originals/{owner}/{made[0]}.jpg"]


def test_upload_ingest_restore_archive_delete_leaves_no_object_of_the_photo(
    uploader: Uploader,
) -> None:
    owner = new_owner()
    created = uploader.upload(owner, old_photo((800, 600)))
    uploader.ingest()
    photo_id = uuid.UUID(uploader.status(owner, created["upload_id"])["photo_id"])
    pipeline = uploader.pipeline
    photo = StoredPhoto(photo_id, owner, f"originals/{owner}/{photo_id}.jpg")
    pipeline.request_restore(photo)
    pipeline.drain()
    assert pipeline.photo(photo_id).status == "ready"
    assert len(pipeline.restored_keys(photo_id)) == 3
    assert pipeline.call_api("POST", f"/photos/{photo_id}/archive", owner)[0] == 200
    assert pipeline.call_api("DELETE", f"/photos/{photo_id}", owner)[0] == 200
    assert pipeline.restored_keys(photo_id) == [] and uploader.owner_objects(owner) == []
    # A new upload of the same file after the delete is a new photo again.
    assert uploader.request(owner, old_photo((800, 600)))[0] == 201


def load_event_file(name: str) -> Any:
    return json.loads((Path(__file__).resolve().parents[2] / "events" / name).read_text())


def sqs_event(*bodies: str) -> dict[str, Any]:
    template = load_event_file("ingest_sqs.json")["Records"][0]
    return {
        "Records": [
            template | {"messageId": f"m-{index}", "body": body}
            for index, body in enumerate(bodies)
        ]
    }


def test_the_ingest_handler_acknowledges_what_is_not_an_upload_and_retries_outages(
    pipeline_settings: Settings, engine: Engine
) -> None:
    """The event file's object is no upload of ours; S3's test event, a body that is not JSON:
    all acknowledged. An unreachable database fails only its record, for SQS to redeliver."""
    handler = load_handler("ingest", pipeline_settings)
    recorded = load_event_file("ingest_sqs.json")["Records"][0]["body"]
    test_event = '{"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}'
    context = LocalLambdaContext(function_name="ingest")
    answer = handler.lambda_handler(sqs_event(recorded, test_event, "not json"), context)
    assert answer == {"batchItemFailures": []}

    down = pipeline_settings.model_copy(
        update={"database_url": SecretStr("postgresql+pg8000://u@127.0.0.1:9/db")}
    )
    handler = load_handler("ingest", down)
    answer = handler.lambda_handler(sqs_event(test_event, recorded), context)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}


def test_the_sweeper_expires_uploads_never_ingested_and_removes_what_they_left(
    uploader: Uploader, engine: Engine, pipeline_settings: Settings
) -> None:
    owner = new_owner()
    late_data, lost_data = old_photo(seed=1), old_photo(seed=2)
    late = uploader.request(owner, late_data)[1]  # PUT only after the sweep
    lost = uploader.upload(owner, lost_data)  # PUT, its notification lost (dead-lettered)
    uploader.pipeline.sqs.purge_queue(QueueUrl=uploader.resources.ingest_queue_url)
    fresh = uploader.request(owner, old_photo(seed=3))[1]
    expired_ids = [uuid.UUID(late["upload_id"]), uuid.UUID(lost["upload_id"])]
    with engine.begin() as conn:  # their URLs expired over two hours ago, past the grace
        conn.execute(
            uploads.update()
            .where(uploads.c.id.in_(expired_ids))
            .values(expires_at=uploads.c.expires_at - timedelta(hours=2, minutes=15))
        )
    sweeper = load_handler("sweeper", pipeline_settings)
    result = sweeper.lambda_handler({}, LocalLambdaContext(function_name="sweeper"))
    assert result["uploads_expired"] >= 2  # other tests' may expire too
    for upload in (late, lost):
        expired = uploader.status(owner, upload["upload_id"])
        assert (expired["status"], expired["reason_code"]) == ("rejected", "expired")
    assert uploader.status(owner, fresh["upload_id"])["status"] == "pending"
    assert uploader.owner_objects(owner) == []  # the lost one's object removed

    # A PUT that still lands (moto does not enforce the expiry) is deleted by the ingest.
    put = late["upload"]
    headers = {k: v for k, v in put["headers"].items() if k != "Content-Length"}
    assert httpx.put(put["url"], content=late_data, headers=headers).status_code == 200
    uploader.ingest()
    assert uploader.owner_objects(owner) == []

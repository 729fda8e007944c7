"""A photo's life against its floors (issue 19), each a ratio from one run. A benchmark: it
prints figures and ratios, it asserts nothing.

1. Ingesting a 12 MP JPEG upload (head, read, SHA-256, header inspection, the photos row under
   its lock) against the floor every ingest pays: one S3 GET of the object and its SHA-256.
2. A gallery page (20 of an owner's 2,000 photos, first and 50th page) against the bare SELECT
   of the same rows' ids.
3. Deleting a photo with 10 restorations (31 objects) against one listing of its prefix and one
   DeleteObjects of its keys.

moto runs in a process of its own (remote_services.py), Postgres embedded.

    .venv/bin/python benchmarks/bench_lifecycle.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench_hot_paths import twelve_mp_jpeg  # beside this script
from remote_services import remote_services

GALLERY_PHOTOS = 2_000
ATTEMPTS = 10


def median_ms(repeat: int, work: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    import httpx
    from pydantic import SecretStr
    from sqlalchemy import insert, select

    from photo_restore import aws
    from photo_restore.db import create_db_engine
    from photo_restore.events import NoEvents, RestoreAnnouncer
    from photo_restore.lifecycle.gallery import Gallery
    from photo_restore.lifecycle.ingest import Ingest, IngestOutcome
    from photo_restore.lifecycle.photo_end import PhotoEnd
    from photo_restore.lifecycle.queries import LifecycleRepository
    from photo_restore.lifecycle.uploads import Uploads
    from photo_restore.lifecycle.views import UploadRequestBody
    from photo_restore.models import jobs, photos, restore_attempts
    from photo_restore.repository import SqlRepository
    from photo_restore.restore_requests import Caller
    from photo_restore.settings import Settings
    from photo_restore.storage import ObjectStorage, restored_prefix
    from photo_restore_tools.local.services import embedded_postgres, provision, use_local_aws

    data = twelve_mp_jpeg()
    repeat = args.repeat
    with embedded_postgres() as database_url, remote_services() as services:
        use_local_aws(services.aws_endpoint)
        resources = provision(
            name=f"life-{uuid.uuid4().hex[:10]}", visibility_timeout_seconds=60, max_receive_count=3
        )
        settings = Settings(
            database_url=SecretStr(database_url),
            database_ssl_mode="disable",
            **resources.settings_fields(),  # type: ignore[arg-type]
        )
        engine = create_db_engine(database_url, ssl_mode="disable", pool_size=2)
        repository = SqlRepository(engine)
        repository.create_schema()
        s3 = aws.s3_client()
        storage = ObjectStorage(s3, settings.bucket_name)
        lifecycle = LifecycleRepository(repository)
        uploads = Uploads(lifecycle, storage, settings)
        ingest = Ingest(lifecycle, storage, NoEvents(), settings)

        # 1. Ingest: each upload its own file (a changed byte in the JPEG comment is enough).
        keys = []
        for i in range(repeat + 1):
            owner = f"bench-{uuid.uuid4()}"
            variant = data[:-2] + bytes([i % 251]) + data[-1:]
            body = UploadRequestBody(
                content_type="image/jpeg",
                size_bytes=len(variant),
                sha256=hashlib.sha256(variant).hexdigest(),
            )
            put = uploads.request_upload(Caller(owner, None), body).body.upload
            assert put is not None
            headers = {k: v for k, v in put.headers.items() if k != "Content-Length"}
            assert httpx.put(put.url, content=variant, headers=headers, timeout=60).is_success
            keys.append(f"originals/{owner}/{put.url.split('/')[-1].split('?')[0]}")
        ingest.object_created(keys.pop())  # warms the clients, the dialect, Pillow
        ingest_times = []
        for key in keys:
            started = time.perf_counter()
            report = ingest.object_created(key)
            ingest_times.append((time.perf_counter() - started) * 1000)
            assert report.outcome is IngestOutcome.ACCEPTED, report

        def read_and_hash() -> None:
            hashlib.sha256(storage.read(keys[0], max_bytes=2**30)).hexdigest()

        ingest_ms, floor_ms = statistics.median(ingest_times), median_ms(repeat, read_and_hash)
        print(f"1. ingest of a {len(data) / 1e6:.1f} MB 12 MP JPEG: {ingest_ms:.0f} ms median;")
        print(f"   floor (S3 GET + SHA-256): {floor_ms:.0f} ms; ratio {ingest_ms / floor_ms:.2f}x")

        # 2. The gallery over 2,000 photos of one owner.
        owner = f"gallery-{uuid.uuid4()}"
        start = datetime(2026, 1, 1, tzinfo=UTC)
        rows = [
            {
                "id": uuid.uuid4(),
                "owner_id": owner,
                "original_key": f"originals/{owner}/{i}.jpg",
                "status": "ready" if i % 3 else "uploaded",
                "size_bytes": 1,
                "mime_type": "image/jpeg",
                "checksum_sha256": f"{i:064x}",
                "metadata_json": {"dimensions": [4000, 3000]},
                "created_at": start + timedelta(minutes=i),
            }
            for i in range(GALLERY_PHOTOS)
        ]
        with engine.begin() as conn:
            conn.execute(insert(photos), rows)
            conn.execute(insert(jobs), [{"id": r["id"]} for r in rows if r["status"] == "ready"])
        gallery = Gallery(lifecycle, storage, settings)
        caller = Caller(owner, None)
        first = median_ms(repeat, lambda: gallery.list_photos(caller, limit=20, status=None))
        cursor = None
        for _ in range(49):
            cursor = gallery.list_photos(caller, limit=20, cursor=cursor, status=None).next_cursor
        deep = median_ms(
            repeat, lambda: gallery.list_photos(caller, limit=20, cursor=cursor, status=None)
        )
        bare = select(photos.c.id).where(photos.c.owner_id == owner)
        bare = bare.order_by(photos.c.created_at.desc(), photos.c.id.desc()).limit(21)

        def bare_select() -> None:
            with engine.connect() as conn:
                conn.execute(bare).all()

        floor = median_ms(repeat, bare_select)
        print(f"2. gallery page of 20 over {GALLERY_PHOTOS} photos: first {first:.1f} ms, 50th")
        print(f"   {deep:.1f} ms; floor (bare SELECT of the ids): {floor:.1f} ms;")
        print(f"   ratios {first / floor:.2f}x and {deep / floor:.2f}x")

        # 3. Delete a photo with 10 restorations (3 images each) and its original.
        end = PhotoEnd(lifecycle, storage, NoEvents(), RestoreAnnouncer(repository, NoEvents()))
        delete_times, floor_times = [], []
        for _ in range(repeat):
            owner = f"delete-{uuid.uuid4()}"
            photo_id = uuid.uuid4()
            original = f"originals/{owner}/{photo_id}.jpg"
            image_keys = [
                f"{restored_prefix(photo_id)}2026{n:04d}{suffix}"
                for n in range(ATTEMPTS)
                for suffix in (".jpg", ".before.jpg", ".thumb.jpg")
            ]
            for key in [original, *image_keys]:
                s3.put_object(Bucket=settings.bucket_name, Key=key, Body=b"x" * 1000)
            with engine.begin() as conn:
                conn.execute(
                    insert(photos).values(
                        id=photo_id,
                        owner_id=owner,
                        original_key=original,
                        status="ready",
                        size_bytes=1,
                        mime_type="image/jpeg",
                        checksum_sha256="0" * 64,
                        metadata_json={},
                        processed_key=image_keys[0],
                    )
                )
                conn.execute(insert(jobs).values(id=photo_id))
                conn.execute(
                    insert(restore_attempts),
                    [
                        {"job_id": photo_id, "s3_key": key, "model": "m", "params": {}}
                        for key in image_keys[::3]
                    ],
                )
            started = time.perf_counter()
            end.delete(Caller(owner, None), photo_id)
            delete_times.append((time.perf_counter() - started) * 1000)
            for key in [original, *image_keys]:
                s3.put_object(Bucket=settings.bucket_name, Key=key, Body=b"x" * 1000)
            started = time.perf_counter()
            storage.delete_many([*storage.keys_under(restored_prefix(photo_id)), original])
            floor_times.append((time.perf_counter() - started) * 1000)
        delete_ms, floor_ms = statistics.median(delete_times), statistics.median(floor_times)
        print(f"3. delete of a photo with {ATTEMPTS} restorations ({3 * ATTEMPTS + 1} objects):")
        print(f"   {delete_ms:.0f} ms median; floor (one listing + one DeleteObjects):")
        print(f"   {floor_ms:.0f} ms; ratio {delete_ms / floor_ms:.2f}x")
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

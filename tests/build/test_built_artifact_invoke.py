"""The artifact that would be deployed, invoked with the files in events/ against real parts.

Each handler runs in a fresh interpreter that sees only its `sam build` output (function dir +
layers, as Lambda mounts them), talking to the session's Postgres, moto and the stand-in.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from photo_restore.settings import Settings
from tests.helpers import built_artifact, records
from tests.helpers.event_files import EVENT_ATTEMPT_ID, EVENT_OWNER, EVENT_PHOTO_ID, event_file
from tests.helpers.images import old_photo
from tests.helpers.records import insert_photo

pytestmark = pytest.mark.sam

INVOKE = """
import json, sys
import app

class Context:
    function_name = "invoke-test"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-central-1:123456789012:function:invoke-test"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    def get_remaining_time_in_millis(self):
        return 300000

event = json.loads(open(sys.argv[1]).read())
print("RESULT " + json.dumps(app.lambda_handler(event, Context())))
"""


def invoke(function: str, event: Path, build_dir: Path, settings: Settings) -> Any:
    environment = built_artifact.function_environment(function, build_dir, settings)
    code = INVOKE.replace("sys.argv[1]", repr(str(event)))
    result = built_artifact.run_in_function(
        function, code, build_dir=build_dir, environment=environment
    )
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def test_the_built_api_and_worker_restore_a_photo_from_the_event_files(
    build_dir: Path,
    tmp_path: Path,
    engine: Engine,
    pipeline_settings: Settings,
    s3: Any,
) -> None:
    photo = insert_photo(
        engine,
        owner_id=str(uuid.uuid4()),
        original=old_photo(),
        s3=s3,
        bucket=pipeline_settings.bucket_name,
    )
    api_event = event_file(
        tmp_path, "api_restore.json", {EVENT_PHOTO_ID: str(photo.id), EVENT_OWNER: photo.owner_id}
    )
    response = invoke("ApiFunction", api_event, build_dir, pipeline_settings)
    assert response["statusCode"] == 202, response
    attempt_id = json.loads(response["body"])["restore_attempt_id"]

    worker_event = event_file(
        tmp_path, "worker_sqs.json", {EVENT_PHOTO_ID: str(photo.id), EVENT_ATTEMPT_ID: attempt_id}
    )
    assert invoke("WorkerFunction", worker_event, build_dir, pipeline_settings) == {
        "batchItemFailures": []
    }

    assert records.photo(engine, photo.id).status == "ready"
    attempt = records.attempt(engine, uuid.UUID(attempt_id))
    assert attempt.s3_key.startswith(f"restored/{photo.id}/")

    get_event = event_file(
        tmp_path, "api_get_photo.json", {EVENT_PHOTO_ID: str(photo.id), EVENT_OWNER: photo.owner_id}
    )
    response = invoke("ApiFunction", get_event, build_dir, pipeline_settings)
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["status"] == "ready"


def test_the_built_dlq_handler_acknowledges_the_event_file(
    build_dir: Path, tmp_path: Path, pipeline_settings: Settings
) -> None:
    """The event's attempt does not exist here: logged and acknowledged, never a crash loop."""
    event = event_file(tmp_path, "dlq_sqs.json", {EVENT_PHOTO_ID: str(uuid.uuid4())})
    assert invoke("DlqFunction", event, build_dir, pipeline_settings) == {"batchItemFailures": []}


def test_the_built_sweeper_runs_on_the_schedule_event(
    build_dir: Path, tmp_path: Path, pipeline_settings: Settings
) -> None:
    event = event_file(tmp_path, "sweeper_schedule.json", {})
    result = invoke("SweeperFunction", event, build_dir, pipeline_settings)
    assert isinstance(result["settled"], list)


EVENT_UPLOAD_OWNER = "0b6f9c1e-2d4a-4f8e-9c3b-7a5d1e2f3a4b"
EVENT_UPLOAD_ID = "5d2e8f1a-3b4c-4d6e-8f9a-1b2c3d4e5f6a"


def test_the_built_ingest_makes_a_photo_of_an_upload_from_the_event_file(
    build_dir: Path, tmp_path: Path, engine: Engine, pipeline_settings: Settings, s3: Any
) -> None:
    """A real upload (POST /uploads' use case, the PUT over HTTP), then the event file's
    notification naming its key: the built ingest (Pillow from its imaging layer) accepts it."""
    import hashlib

    import httpx

    from photo_restore.lifecycle.queries import LifecycleRepository
    from photo_restore.lifecycle.uploads import Uploads
    from photo_restore.lifecycle.views import UploadRequestBody
    from photo_restore.repository import SqlRepository
    from photo_restore.restore_requests import Caller
    from photo_restore.storage import ObjectStorage

    owner, data = str(uuid.uuid4()), old_photo()
    uploads = Uploads(
        LifecycleRepository(SqlRepository(engine)),
        ObjectStorage(s3, pipeline_settings.bucket_name),
        pipeline_settings,
    )
    declared = UploadRequestBody(
        content_type="image/jpeg", size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    created = uploads.request_upload(Caller(owner, None), declared).body
    assert created.upload is not None and created.upload_id is not None
    headers = {k: v for k, v in created.upload.headers.items() if k != "Content-Length"}
    assert httpx.put(created.upload.url, content=data, headers=headers).status_code == 200

    replacements = {EVENT_UPLOAD_OWNER: owner, EVENT_UPLOAD_ID: str(created.upload_id)}
    event = event_file(tmp_path, "ingest_sqs.json", replacements)
    assert invoke("IngestFunction", event, build_dir, pipeline_settings) == {
        "batchItemFailures": []
    }
    photo = records.photo(engine, created.upload_id)
    assert (photo.status, photo.owner_id, photo.size_bytes) == ("uploaded", owner, len(data))

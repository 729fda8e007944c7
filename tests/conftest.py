"""Real parts, built once per session: Postgres (embedded unless DATABASE_URL), moto S3/SQS."""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, insert

from photo_restore.db import create_db_engine, create_schema
from photo_restore.local.services import (
    LocalResources,
    embedded_postgres,
    moto_server,
    provision,
    use_local_aws,
)
from photo_restore.models import photos
from photo_restore.settings import Settings
from photo_restore.storage import original_key

# moto's server logs every request: keep test output about our code.
logging.getLogger("werkzeug").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def restored_environment() -> Iterator[None]:
    """Handlers read settings from os.environ: one test's settings must not leak into the next."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    with embedded_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    # Large enough for the concurrency tests, which need one connection per request.
    engine = create_db_engine(database_url, ssl_mode="disable", pool_size=40, max_overflow=10)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        use_local_aws(endpoint)
        yield endpoint


@pytest.fixture
def resources(aws_endpoint: str) -> LocalResources:
    """A fresh bucket, queue and DLQ per test, so message counts belong to the test."""
    return provision(
        name=f"t-{uuid.uuid4().hex[:20]}", visibility_timeout_seconds=30, max_receive_count=3
    )


@pytest.fixture
def settings(database_url: str, resources: LocalResources) -> Settings:
    return Settings(
        database_url=database_url,  # type: ignore[arg-type]
        database_ssl_mode="disable",
        queue_url=resources.queue_url,
        dlq_url=resources.dlq_url,
        bucket_name=resources.bucket_name,
        visibility_timeout_seconds=30,
        max_receive_count=3,
    )


@pytest.fixture(scope="session")
def s3(aws_endpoint: str) -> Any:
    return boto3.client("s3")


@pytest.fixture(scope="session")
def sqs(aws_endpoint: str) -> Any:
    return boto3.client("sqs")


@dataclass(frozen=True)
class StoredPhoto:
    id: uuid.UUID
    owner_id: str
    original_key: str


def insert_photo(
    engine: Engine,
    *,
    owner_id: str | None = None,
    status: str = "uploaded",
    original: bytes = b"not read by the API",
    mime_type: str = "image/jpeg",
    s3: Any = None,
    bucket: str | None = None,
    photo_id: uuid.UUID | None = None,
) -> StoredPhoto:
    """Test data as the existing app would have written it (rows only, and the S3 original)."""
    photo_id = photo_id or uuid.uuid4()
    owner_id = owner_id or f"user-{uuid.uuid4()}"
    key = original_key(owner_id, photo_id, ".bin")
    with engine.begin() as conn:
        conn.execute(
            insert(photos).values(
                id=photo_id,
                owner_id=owner_id,
                original_key=key,
                status=status,
                size_bytes=len(original),
                mime_type=mime_type,
                checksum_sha256=hashlib.sha256(original).hexdigest(),
                metadata_json={},
            )
        )
    if s3 is not None and bucket is not None:
        s3.put_object(Bucket=bucket, Key=key, Body=original)
    return StoredPhoto(id=photo_id, owner_id=owner_id, original_key=key)


@pytest.fixture(scope="session")
def standin() -> Iterator[Any]:
    from photo_restore.local.siliconflow_standin import SiliconFlowStandIn

    with SiliconFlowStandIn() as server:
        yield server


@pytest.fixture
def pipeline_settings(settings: Settings, standin: Any) -> Settings:
    return settings.model_copy(
        update={
            "siliconflow_base_url": standin.base_url,
            "siliconflow_api_key": SecretStr("test-key"),
            "siliconflow_allow_private_urls": True,
            "siliconflow_max_retries": 1,
        }
    )


@pytest.fixture
def pipeline(
    pipeline_settings: Settings, engine: Engine, s3: Any, sqs: Any, standin: Any
) -> Iterator[Any]:
    from tests.handlers import load_handler
    from tests.pipeline import Pipeline

    standin.reset()
    api = load_handler("api", pipeline_settings)
    worker = load_handler("worker", pipeline_settings)
    dlq = load_handler("dlq", pipeline_settings)
    yield Pipeline(pipeline_settings, engine, s3, sqs, standin, api, worker, dlq)
    from photo_restore import wiring

    wiring.reset()

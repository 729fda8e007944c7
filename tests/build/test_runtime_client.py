"""The `sam build` output under `awslambdaric`, the runtime interface client that Lambda's own
Python images run, polling a Runtime API emulated over HTTP (tests/helpers/runtime_api.py).

What a direct call of `lambda_handler` cannot show: whether an invocation ends on `/response`
(an answer Lambda hands to API Gateway or to the SQS event source) or on `/error` (an invocation
error: the function's `Errors` metric and its alarm). A failed record must be an answer
(`batchItemFailures`), never an invocation error, even when every record of the batch failed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from photo_restore.settings import Settings
from photo_restore_tools.local.event_source import SqsEventSource
from photo_restore_tools.local.siliconflow_standin import Behaviour, SiliconFlowStandIn
from tests.helpers import built_artifact, records
from tests.helpers.event_files import EVENT_ATTEMPT_ID, EVENT_OWNER, EVENT_PHOTO_ID, event
from tests.helpers.images import old_photo
from tests.helpers.records import insert_photo
from tests.helpers.runtime_api import Invocation, LambdaRuntime, RuntimeApiEmulator

pytestmark = pytest.mark.sam

Container = Callable[[str, Settings], "Runtime"]


class Runtime:
    """One warm container of a function: invoke it as often as a test needs."""

    def __init__(self, emulator: RuntimeApiEmulator, process: LambdaRuntime) -> None:
        self.emulator, self.process = emulator, process

    def invoke(self, event: dict[str, Any]) -> Invocation:
        invocation = self.emulator.invoke(event).wait()
        assert not self.emulator.init_errors, self.emulator.init_errors
        return invocation

    def answer(self, event: dict[str, Any]) -> Any:
        """The handler's answer; an invocation error fails the test with the runtime's log."""
        invocation = self.invoke(event)
        assert invocation.endpoint == "response", (invocation.payload, self.process.output())
        return invocation.payload


@pytest.fixture
def container(build_dir: Path, tmp_path: Path) -> Iterator[Container]:
    with contextlib.ExitStack() as stack:

        def start(function: str, settings: Settings) -> Runtime:
            emulator = stack.enter_context(RuntimeApiEmulator())
            environment = built_artifact.function_environment(function, build_dir, settings)
            process = stack.enter_context(
                LambdaRuntime(function, build_dir, emulator, environment, tmp_path)
            )
            return Runtime(emulator, process)

        yield start


def assert_api_gateway_accepts(response: Any) -> None:
    """A payload-v2 proxy answer API Gateway turns into an HTTP response (not its own 500)."""
    assert isinstance(response, dict), response
    assert isinstance(response["statusCode"], int)
    assert isinstance(response.get("body", ""), str)
    headers = response.get("headers", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()), headers
    assert isinstance(response.get("isBase64Encoded", False), bool)
    assert all(isinstance(cookie, str) for cookie in response.get("cookies", []))


def unreachable_database(settings: Settings) -> Settings:
    """A loopback port with nothing listening: every connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+pg8000://postgres@127.0.0.1:{port}/postgres"
    return settings.model_copy(update={"database_url": SecretStr(url)})


def test_the_built_api_and_worker_restore_the_event_files_photo_under_the_runtime_client(
    container: Container, engine: Engine, pipeline_settings: Settings, s3: Any
) -> None:
    photo = insert_photo(
        engine,
        owner_id=str(uuid.uuid4()),
        original=old_photo(),
        s3=s3,
        bucket=pipeline_settings.bucket_name,
    )
    ids = {EVENT_PHOTO_ID: str(photo.id), EVENT_OWNER: photo.owner_id}
    api = container("ApiFunction", pipeline_settings)

    accepted = api.answer(event("api_restore.json", ids))
    assert_api_gateway_accepts(accepted)
    assert accepted["statusCode"] == 202, accepted
    attempt_id = json.loads(accepted["body"])["restore_attempt_id"]

    worker = container("WorkerFunction", pipeline_settings)
    worker_event = event(
        "worker_sqs.json", {EVENT_PHOTO_ID: str(photo.id), EVENT_ATTEMPT_ID: attempt_id}
    )
    assert worker.answer(worker_event) == {"batchItemFailures": []}
    assert records.photo(engine, photo.id).status == "ready"

    shown = api.answer(event("api_get_photo.json", ids))
    assert_api_gateway_accepts(shown)
    assert shown["statusCode"] == 200
    assert json.loads(shown["body"])["status"] == "ready"


def test_a_refused_api_request_is_an_answer_not_an_invocation_error(
    container: Container, engine: Engine, pipeline_settings: Settings
) -> None:
    api = container("ApiFunction", pipeline_settings)
    unknown = {EVENT_PHOTO_ID: str(uuid.uuid4()), EVENT_OWNER: str(uuid.uuid4())}
    response = api.answer(event("api_get_photo.json", unknown))
    assert_api_gateway_accepts(response)
    assert response["statusCode"] == 404, response
    assert json.loads(response["body"])["error"] == "photo_not_found"


def test_the_built_dlq_handler_and_sweeper_answer_their_event_files(
    container: Container, engine: Engine, pipeline_settings: Settings
) -> None:
    dlq = container("DlqFunction", pipeline_settings)
    dead = event("dlq_sqs.json", {EVENT_PHOTO_ID: str(uuid.uuid4())})
    assert dlq.answer(dead) == {"batchItemFailures": []}

    sweeper = container("SweeperFunction", pipeline_settings)
    assert isinstance(sweeper.answer(event("sweeper_schedule.json"))["settled"], list)


def batch_of(name: str, size: int) -> dict[str, Any]:
    """The event file's record `size` times, each with a message id of its own."""
    [record] = event(name, {EVENT_PHOTO_ID: str(uuid.uuid4())})["Records"]
    return {"Records": [{**record, "messageId": str(uuid.uuid4())} for _ in range(size)]}


@pytest.mark.parametrize(
    "function,event_name",
    [
        ("WorkerFunction", "worker_sqs.json"),
        ("DlqFunction", "dlq_sqs.json"),
    ],
)
def test_a_batch_whose_every_record_fails_is_answered_with_every_record_id(
    container: Container, pipeline_settings: Settings, function: str, event_name: str
) -> None:
    """A database outage fails every record: SQS must retry each, and it is no crash."""
    runtime = container(function, unreachable_database(pipeline_settings))
    batch = batch_of(event_name, 2)

    answer = runtime.answer(batch)

    expected = [{"itemIdentifier": record["messageId"]} for record in batch["Records"]]
    assert sorted(answer["batchItemFailures"], key=str) == sorted(expected, key=str)
    assert runtime.process.exit_code() is None, runtime.process.output()


def test_a_provider_failure_on_a_single_record_batch_comes_back_through_sqs(
    container: Container,
    engine: Engine,
    pipeline_settings: Settings,
    standin: SiliconFlowStandIn,
    s3: Any,
    sqs: Any,
) -> None:
    """BatchSize 1 makes every transient failure an all-records-failed batch: the message stays
    on the queue for its retry, and the invocation is still an answer."""
    photo = insert_photo(
        engine,
        owner_id=str(uuid.uuid4()),
        original=old_photo(),
        s3=s3,
        bucket=pipeline_settings.bucket_name,
    )
    ids = {EVENT_PHOTO_ID: str(photo.id), EVENT_OWNER: photo.owner_id}
    accepted = container("ApiFunction", pipeline_settings).answer(event("api_restore.json", ids))
    assert accepted["statusCode"] == 202, accepted
    standin.enqueue(*[Behaviour.error(500, "Internal server error")] * 4)
    worker = container("WorkerFunction", pipeline_settings)
    invocations: list[Invocation] = []

    def through_the_runtime(batch: dict[str, Any], context: object) -> Any:
        """Lambda's event source mapping: an invocation error fails the whole batch."""
        invocations.append(worker.invoke(batch))
        if invocations[-1].endpoint == "error":
            raise RuntimeError(invocations[-1].payload)
        return invocations[-1].payload

    source = SqsEventSource(
        sqs=sqs,
        queue_url=pipeline_settings.queue_url,
        handler=through_the_runtime,
        function_name="WorkerFunction",
        batch_size=1,
    )
    stats = source.poll_once()

    assert stats.received == 1 and stats.failed == 1
    [invocation] = invocations
    assert invocation.endpoint == "response", (invocation.payload, worker.process.output())
    assert invocation.payload == {"batchItemFailures": [{"itemIdentifier": stats.failures[0]}]}
    assert records.photo(engine, photo.id).status == "processing"

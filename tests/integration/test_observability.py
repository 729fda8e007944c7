"""One process may hold all four handlers (the local stack does): each invocation's domain logs
carry its own function's service, not the last one imported."""

from __future__ import annotations

import io
import json
from typing import Any

from photo_restore.settings import Settings
from photo_restore_tools.local.event_source import SqsEventSource
from tests.helpers.handlers import load_handler
from tests.helpers.pipeline import Pipeline


def logged(output: str, message: str) -> dict[str, Any]:
    """The one JSON log line whose message contains `message`."""
    lines: list[dict[str, Any]] = [
        json.loads(text) for text in output.splitlines() if text.startswith("{")
    ]
    [line] = [line for line in lines if message in line.get("message", "")]
    return line


def test_domain_logs_carry_the_service_of_the_handler_that_runs(
    pipeline: Pipeline, pipeline_settings: Settings
) -> None:
    worker = load_handler("worker", pipeline_settings)
    dlq = load_handler("dlq", pipeline_settings)  # imported last
    output = io.StringIO()
    handlers = [module.tools.logger.registered_handler for module in (worker, dlq)]
    # Assigned, not setStream(): that flushes the old stream, which may be an earlier test's
    # closed capture (Powertools keeps one handler per service across imports).
    previous = [handler.stream for handler in handlers]
    for handler in handlers:
        handler.stream = output
    try:
        check_services(pipeline, pipeline_settings, worker, dlq, output)
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.stream = stream


def check_services(
    pipeline: Pipeline, pipeline_settings: Settings, worker: Any, dlq: Any, output: io.StringIO
) -> None:
    sources = {
        name: SqsEventSource(
            sqs=pipeline.sqs,
            queue_url=queue,
            handler=module.lambda_handler,
            function_name=name,
            wait_seconds=0,
        )
        for name, module, queue in (
            ("worker", worker, pipeline_settings.queue_url),
            ("dlq", dlq, pipeline_settings.dlq_url),
        )
    }
    photo = pipeline.add_photo(b"%PDF not an image")
    pipeline.request_restore(photo)
    sources["worker"].poll_once()
    worker_line = logged(output.getvalue(), "restore failed permanently")
    assert worker_line["service"] == "photo-restore-worker"
    assert worker_line["photo_id"] == str(photo.id)  # the handler's correlation keys too

    pipeline.sqs.send_message(QueueUrl=pipeline_settings.dlq_url, MessageBody="not json")
    sources["dlq"].poll_once()
    dlq_line = logged(output.getvalue(), "dropping a dead message")
    assert dlq_line["service"] == "photo-restore-dlq"

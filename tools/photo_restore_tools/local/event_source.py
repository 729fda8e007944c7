"""A local stand-in for Lambda's SQS event source mapping: poll, batch, invoke, delete.

Like the real one it sends batches as SQS events, deletes only the records the handler did
not report in `batchItemFailures`, and leaves the rest to SQS: they reappear after their
visibility timeout and move to the DLQ after `maxReceiveCount` receives (moto implements it).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalLambdaContext:
    """What a handler reads from Lambda's context object."""

    function_name: str
    memory_limit_in_mb: int = 1024
    aws_request_id: str = "local"
    timeout_seconds: int = 300

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_seconds * 1000


@dataclass
class PollStats:
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    # Invocations that raised: on Lambda each counts in the function's Errors metric.
    invocation_errors: int = 0


class SqsEventSource:
    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        function_name: str,
        batch_size: int = 5,
        wait_seconds: int = 1,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._function_name = function_name
        self._batch_size = batch_size
        self._wait_seconds = wait_seconds
        self._arn = self._queue_arn()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Since the source was made: a handler answers failed records, it never raises for them.
        self.invocation_errors = 0

    def _queue_arn(self) -> str:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url, AttributeNames=["QueueArn"]
        )
        return str(attributes["Attributes"]["QueueArn"])

    def poll_once(self) -> PollStats:
        """Receive one batch and run it through the handler; returns what happened."""
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=self._wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        stats = PollStats(received=len(messages))
        if not messages:
            return stats
        event = {"Records": [self._record(m) for m in messages]}
        context = LocalLambdaContext(
            function_name=self._function_name, aws_request_id=str(uuid.uuid4())
        )
        try:
            result = self._handler(event, context) or {}
            failed_ids = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        except Exception:
            # A crashed invocation fails the whole batch, as on Lambda.
            logger.exception("%s failed the whole batch", self._function_name)
            failed_ids = {m["MessageId"] for m in messages}
            stats.invocation_errors = 1
            self.invocation_errors += 1
        for message in messages:
            if message["MessageId"] in failed_ids:
                # Left to SQS, as Lambda leaves it: back after the visibility timeout, or
                # sooner when the handler shortened it.
                stats.failed += 1
                stats.failures.append(message["MessageId"])
            else:
                stats.succeeded += 1
                self._sqs.delete_message(
                    QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return stats

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        body = message["Body"]
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": body,
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._arn,
            "awsRegion": "us-east-1",
        }

    def start(self) -> None:
        """Poll in a background thread until `stop()`."""
        self._thread = threading.Thread(
            target=self._run, name=f"poller-{self._function_name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                logger.exception("poller %s failed; retrying", self._function_name)
                self._stop.wait(1)

    def request_stop(self) -> None:
        """Ask the poller to stop after its current long poll, without waiting for it."""
        self._stop.set()

    def stop(self) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=self._wait_seconds + 30)

"""DLQ handler Lambda: settles the photos of messages SQS gave up on."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from photo_restore import wiring
from photo_restore.observability import handler_tools

tools = handler_tools("dlq")
logger, metrics = tools.logger, tools.metrics
# A batch whose every record failed is still a partial-failure answer: raising would count as
# an invocation error (the Errors metric and its alarm) for what is only a retry.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def settle_record(record: SQSRecord) -> None:
    """Malformed or unknown messages are logged and acknowledged: never a crash loop."""
    report = wiring.restore_giveup().settle_dead_message(record.body)
    logger.warning(
        "dead restore message settled",
        outcome=report.outcome,
        photo_id=str(report.photo_id),
        restore_attempt_id=str(report.restore_attempt_id),
    )
    metrics.add_metric(name=f"DeadMessages_{report.outcome}", unit=MetricUnit.Count, value=1)


@tools.handler()
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=settle_record, processor=processor, context=context
    )

"""DLQ handler Lambda: settles the photos of messages SQS gave up on."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
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

logger = Logger(service="photo-restore-dlq")
# The domain package logs through the standard library: same JSON, same correlation keys.
copy_config_to_registered_loggers(source_logger=logger, include={"photo_restore"})
metrics = Metrics(service="photo-restore-dlq")
tracer = Tracer(service="photo-restore-dlq")
processor = BatchProcessor(event_type=EventType.SQS)


def settle_record(record: SQSRecord) -> None:
    """Malformed or unknown messages are logged and acknowledged: never a crash loop."""
    report = wiring.restore_giveup().settle_dead_message(
        record.body, receive_count=int(record.attributes.approximate_receive_count or 0) or None
    )
    logger.warning(
        "dead restore message settled",
        outcome=report.outcome,
        photo_id=str(report.photo_id),
        restore_attempt_id=str(report.restore_attempt_id),
    )
    metrics.add_metric(name=f"DeadMessages_{report.outcome}", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=settle_record, processor=processor, context=context
    )

"""Ingest Lambda: S3 object-created notifications (through SQS) of direct uploads become photos."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from photo_restore.lifecycle import ingest_wiring
from photo_restore.observability import handler_tools

tools = handler_tools("ingest")
logger, metrics = tools.logger, tools.metrics
# As the worker: a batch whose every record failed is a partial-failure answer, not an error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def ingest_record(record: SQSRecord) -> None:
    """Raising marks only this record failed: SQS delivers it again (then the DLQ)."""
    try:
        notification = json.loads(record.body)
    except ValueError:
        logger.error("acknowledging a message that is not an S3 notification", body=record.body)
        return
    # S3 sends an s3:TestEvent (no Records) when the notification is configured.
    for s3_record in S3Event(notification).records if "Records" in notification else []:
        # Keys arrive URL-encoded, spaces as "+" (and "/" as %2F from moto).
        report = ingest_wiring.ingest().object_created(unquote_plus(s3_record.s3.get_object.key))
        logger.info("upload ingested", outcome=report.outcome, upload_id=str(report.upload_id))
        metrics.add_metric(name=f"Upload{report.outcome.title()}", unit=MetricUnit.Count, value=1)


@tools.handler()
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=ingest_record, processor=processor, context=context
    )

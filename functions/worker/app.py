"""Worker Lambda: runs restore messages from SQS, reporting partial batch failures."""

from __future__ import annotations

import time
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

from photo_restore import worker_wiring
from photo_restore.observability import handler_tools
from photo_restore.queue import Delivery, parse_restore_message
from photo_restore.restore_runs import RunOutcome, RunReport

tools = handler_tools("worker")
logger, metrics = tools.logger, tools.metrics
# A batch whose every record failed is still a partial-failure answer: raising would count as
# an invocation error (the Errors metric and its alarm) for what is only a retry.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@tools.traced
def run_record(record: SQSRecord) -> None:
    """Raising marks only this record failed; it comes back after the backoff the run set."""
    message = parse_restore_message(record.body)
    if message is None:
        logger.error("acknowledging a message that is not a restore message", body=record.body)
        metrics.add_metric(name="MalformedMessages", unit=MetricUnit.Count, value=1)
        return
    logger.append_keys(
        photo_id=str(message.photo_id), restore_attempt_id=str(message.restore_attempt_id)
    )
    if sent_ms := int(record.attributes.sent_timestamp or 0):
        age = max(0.0, time.time() - sent_ms / 1000)
        metrics.add_metric(name="QueueAgeSeconds", unit=MetricUnit.Seconds, value=age)
    try:
        delivery = Delivery(
            receipt_handle=record.receipt_handle,
            receive_count=int(record.attributes.approximate_receive_count or 1),
        )
        report = worker_wiring.restore_run().run(message, delivery)
    except Exception as error:
        # SiliconFlow support asks for the trace id, failures above all.
        logger.append_keys(provider_trace_id=getattr(error, "trace_id", None))
        logger.warning("restore failed transiently; SQS will redeliver it", exc_info=True)
        metrics.add_metric(name="RestoreRetried", unit=MetricUnit.Count, value=1)
        raise
    logger.append_keys(provider_trace_id=report.trace_id)
    logger.info("restore message done", outcome=report.outcome, code=report.error_code)
    record_metrics(report)


def record_metrics(report: RunReport) -> None:
    metrics.add_metric(name=f"Restore{report.outcome.title()}", unit=MetricUnit.Count, value=1)
    if report.outcome is RunOutcome.FAILED:
        name = f"RestoreFailed_{report.error_code}"
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    if report.provider_calls:  # once per settled attempt: its calls to the provider in all
        metrics.add_metric(name="ProviderCalls", unit=MetricUnit.Count, value=report.provider_calls)
    if report.inference_seconds is not None:
        value = report.inference_seconds
        metrics.add_metric(name="InferenceSeconds", unit=MetricUnit.Seconds, value=value)
    if report.preprocess_ms is not None:
        value = report.preprocess_ms
        metrics.add_metric(name="PreprocessMilliseconds", unit=MetricUnit.Milliseconds, value=value)


@tools.handler()
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=run_record, processor=processor, context=context
    )

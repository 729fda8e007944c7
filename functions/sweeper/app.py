"""Sweeper Lambda (scheduled): settles photos whose restore message was lost."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from photo_restore import wiring

logger = Logger(service="photo-restore-sweeper")
# The domain package logs through the standard library: same JSON, same correlation keys.
copy_config_to_registered_loggers(source_logger=logger, include={"photo_restore"})
metrics = Metrics(service="photo-restore-sweeper")
tracer = Tracer(service="photo-restore-sweeper")


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reports = wiring.restore_giveup().sweep_stuck_photos()
    settled = [str(r.photo_id) for r in reports if r.outcome == "reverted"]
    metrics.add_metric(name="StuckPhotosSettled", unit=MetricUnit.Count, value=len(settled))
    if settled:
        logger.warning("settled photos stuck in processing", photo_ids=settled)
    return {"settled": settled}

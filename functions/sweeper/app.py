"""Sweeper Lambda (scheduled): settles photos whose restore message was lost, and uploads
never made."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from photo_restore import wiring
from photo_restore.lifecycle import wiring as lifecycle
from photo_restore.observability import handler_tools
from photo_restore.restore_giveup import GiveUpOutcome

tools = handler_tools("sweeper")
logger, metrics = tools.logger, tools.metrics


@tools.handler()
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reports = wiring.restore_giveup().sweep_stuck_photos()
    settled = [str(r.photo_id) for r in reports if r.outcome is GiveUpOutcome.REVERTED]
    metrics.add_metric(name="StuckPhotosSettled", unit=MetricUnit.Count, value=len(settled))
    if settled:
        logger.warning("settled photos stuck in processing", photo_ids=settled)
    expired = lifecycle.uploads().expire_stale()
    metrics.add_metric(name="UploadsExpired", unit=MetricUnit.Count, value=expired)
    return {"settled": settled, "uploads_expired": expired}

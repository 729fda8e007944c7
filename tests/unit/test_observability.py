"""Handler tools: metrics never pile up in a container, even where they are disabled."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit

from photo_restore.observability import handler_tools
from photo_restore_tools.local.event_source import LocalLambdaContext


def test_disabled_metrics_are_dropped_each_invocation_not_flushed_later(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As the local stack runs handlers: metrics disabled, and here no namespace either, which
    # Powertools' automatic flush at 100 values would need.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    tools = handler_tools("metrics-test")

    @tools.handler()
    def handler(event: dict[str, Any], context: Any) -> None:
        tools.metrics.add_metric(name="Counted", unit=MetricUnit.Count, value=1)

    for _ in range(150):
        handler({}, LocalLambdaContext("metrics-test"))
    assert tools.metrics.metric_set == {}
    assert '"_aws"' not in capsys.readouterr().out

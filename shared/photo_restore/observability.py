"""One way for every handler to log, measure and trace: Powertools Logger, Metrics and Tracer
named after the function, with the domain package's loggers writing through the handler's.

Every function runs with Lambda's active tracing (template.yaml): a segment per invocation,
init included. The X-Ray SDK (Powertools' Tracer) adds subsegments for the calls a function
makes, and costs ~0.35 s of cold start to import: the API, whose cold starts a user waits for,
goes without it; the worker, DLQ handler and sweeper keep it."""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

Handler = TypeVar("Handler", bound=Callable[..., Any])

SERVICE_PREFIX = "photo-restore-"
DOMAIN_LOGGER = "photo_restore"

# The logger of the handler now running: one process may hold several handlers (the local
# stack runs all four), and each invocation's domain logs must carry its own service and keys.
_current: contextvars.ContextVar[Logger] = contextvars.ContextVar("photo_restore_handler_logger")
_current_metrics: contextvars.ContextVar[Metrics] = contextvars.ContextVar(
    "photo_restore_handler_metrics"
)
_first: list[Logger] = []


class _ThroughHandlerLogger(logging.Handler):
    """Formats domain records as the running handler's Powertools logger formats its own."""

    def emit(self, record: logging.LogRecord) -> None:
        owner = _current.get(_first[0] if _first else None)
        if owner is not None:
            owner.registered_handler.handle(record)


def _route_domain_logs(logger: Logger) -> None:
    if not _first:
        _first.append(logger)
        domain = logging.getLogger(DOMAIN_LOGGER)
        domain.addHandler(_ThroughHandlerLogger())
        domain.propagate = False
    logging.getLogger(DOMAIN_LOGGER).setLevel(logger.log_level)


@dataclass(frozen=True)
class HandlerTools:
    logger: Logger
    metrics: Metrics
    tracer: Tracer | None  # None: Lambda's active tracing only, no X-Ray SDK loaded

    def handler(self, *, correlation_id_path: str | None = None) -> Callable[[Handler], Handler]:
        """Logger context (fresh keys each invocation), metrics flushed, the invocation traced."""

        def decorate(handler: Handler) -> Handler:
            @functools.wraps(handler)
            def observed(event: Any, context: Any) -> Any:
                token = _current.set(self.logger)
                metrics_token = _current_metrics.set(self.metrics)
                try:
                    return handler(event, context)
                finally:
                    _current.reset(token)
                    _current_metrics.reset(metrics_token)
                    # Flushed only when there is something to say: most API reads emit none.
                    if self.metrics.metric_set:
                        self.metrics.flush_metrics()
                        # With metrics disabled (local runs) Powertools keeps them, and its
                        # 100-value automatic flush would then print them anyway.
                        self.metrics.clear_metrics()

            traced = self.tracer.capture_lambda_handler(observed) if self.tracer else observed
            logged = self.logger.inject_lambda_context(
                correlation_id_path=correlation_id_path, clear_state=True
            )(traced)
            return cast(Handler, logged)

        return decorate

    def traced(self, method: Handler) -> Handler:
        """`method` as a subsegment of the invocation's trace, where the SDK traces calls."""
        return self.tracer.capture_method(method) if self.tracer else method


def handler_tools(function: str, *, trace_calls: bool = True) -> HandlerTools:
    """The Logger, Metrics and Tracer of `function` (service `photo-restore-<function>`);
    without `trace_calls`, no Tracer: the X-Ray SDK is never imported."""
    service = SERVICE_PREFIX + function
    logger = Logger(service=service)
    _route_domain_logs(logger)
    tracer = Tracer(service=service) if trace_calls else None
    return HandlerTools(logger=logger, metrics=Metrics(service=service), tracer=tracer)


def count_in_current_handler(name: str) -> None:
    """Count one `name` in the running handler's metrics (nothing outside a handler): for
    domain events that do not fail the invocation, such as an event publish left for later."""
    metrics = _current_metrics.get(None)
    if metrics is not None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)

"""Load a function's `app.py` as Lambda would, with settings taken from the environment, and
invoke it with HTTP API events."""

from __future__ import annotations

import json
import os
from types import ModuleType
from typing import Any

from photo_restore import wiring
from photo_restore.settings import Settings
from photo_restore_tools.local.event_source import LocalLambdaContext
from photo_restore_tools.local.functions import (
    functions_dir,
    load_handler_module,
    settings_environment,
)
from photo_restore_tools.local.http_gateway import http_api_event

TEST_ENVIRONMENT = {
    "POWERTOOLS_METRICS_NAMESPACE": "PhotoRestoreTest",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def use_settings(settings: Settings) -> None:
    """Every setting as the environment variable a deployed function would get (None: unset)."""
    for name, value in settings_environment(settings).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    os.environ.update(TEST_ENVIRONMENT)
    wiring.reset()


def load_handler(name: str, settings: Settings) -> ModuleType:
    """A fresh import of functions/<name>/app.py, as a new Lambda container would do."""
    use_settings(settings)
    return load_handler_module(name, functions_dir())


def call_api(
    api: ModuleType,
    method: str,
    path: str,
    *,
    claims: dict[str, Any] | None = None,
    **event: Any,
) -> tuple[int, Any]:
    """One HTTP API event through the API handler; (status, JSON body)."""
    status, _, body = call_api_with_headers(api, method, path, claims=claims, **event)
    return status, body


def call_api_with_headers(
    api: ModuleType,
    method: str,
    path: str,
    *,
    claims: dict[str, Any] | None = None,
    **event: Any,
) -> tuple[int, dict[str, str], Any]:
    """(status, response headers lower-cased, JSON body)."""
    response = api.lambda_handler(
        http_api_event(method=method, raw_path=path, claims=claims, **event),
        LocalLambdaContext(function_name="photo-restore-api"),
    )
    headers = {str(k).lower(): str(v) for k, v in (response.get("headers") or {}).items()}
    return int(response["statusCode"]), headers, json.loads(response.get("body") or "null")

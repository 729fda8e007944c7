"""HTTP API (payload v2) events as API Gateway sends them after its JWT authorizer."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass
class FakeLambdaContext:
    function_name: str = "photo-restore-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:photo-restore-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def http_event(
    method: str,
    path: str,
    *,
    claims: dict[str, Any] | None = None,
    body: Any = None,
    raw_body: str | None = None,
    route_key: str | None = None,
) -> dict[str, Any]:
    request_context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "local",
        "domainName": "local.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "local",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": "pytest",
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": route_key or f"{method} {path}",
        "stage": "$default",
        "time": "25/Nov/2026:12:00:00 +0000",
        "timeEpoch": 1795608000000,
    }
    if claims is not None:
        request_context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    text = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": request_context["routeKey"],
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "localhost"},
        "requestContext": request_context,
        "isBase64Encoded": False,
    }
    if text is not None:
        event["body"] = text
    return event

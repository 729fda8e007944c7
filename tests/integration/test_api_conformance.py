"""openapi.json against what `serve`'s gateway and the API handler really answer: Schemathesis
generates requests from the document (a bounded, derandomized set per operation) and checks
every answer's status, content type, headers and body against it, and that none is a 5xx.

Half the cases name a photo the caller owns (uploaded and restored through the gateway) and its
restoration, so success bodies, 409s and the restore's 202 are checked too, not only 404s and
422s."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from photo_restore_tools.local.http_gateway import HttpGateway, make_token
from photo_restore_tools.local.photos import old_photo
from photo_restore_tools.local.stack import LocalStack
from scripts.export_openapi import ROOT

SECRET = "conformance-test-secret-of-at-least-32-bytes"
OWNER = "user-conformance"
# Enough to reach every documented answer of each operation, few enough for a loaded CI.
EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_path(ROOT / "openapi.json")
# Schemathesis' own strategies use `random`, which Hypothesis warns about.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


@dataclass
class Served:
    url: str
    photo_id: str
    restore_attempt_id: str
    token: str


@pytest.fixture(scope="module")
def served(database_url: str, aws_endpoint: str) -> Iterator[Served]:
    with LocalStack(database_url=database_url, aws_endpoint_url=aws_endpoint) as stack:
        gateway = HttpGateway(stack, jwt_secret=SECRET, port=0).start()
        token = make_token(SECRET, sub=OWNER)
        auth = {"Authorization": f"Bearer {token}"}
        try:
            with httpx.Client(base_url=gateway.url, headers=auth, timeout=30) as client:
                uploaded = client.post("/local/photos", content=old_photo())
                assert uploaded.status_code == 201, uploaded.text
                photo_id = uploaded.json()["photo_id"]
                accepted = client.post(f"/photos/{photo_id}/restore")
                assert accepted.status_code == 202, accepted.text
                deadline = time.monotonic() + 60
                while client.get(f"/photos/{photo_id}").json()["status"] != "ready":
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
            attempt_id = accepted.json()["restore_attempt_id"]
            yield Served(gateway.url, photo_id, attempt_id, token)
        finally:
            gateway.stop()


_alternate = itertools.cycle([True, False])


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_one_the_document_describes(
    case: schemathesis.Case[Any], served: Served
) -> None:
    if next(_alternate) and "photo_id" in (case.path_parameters or {}):
        case.path_parameters = {**(case.path_parameters or {}), "photo_id": served.photo_id}
        if isinstance(case.body, dict) and "restore_attempt_id" in case.body:
            case.body = {**case.body, "restore_attempt_id": served.restore_attempt_id}
    case.call_and_validate(
        base_url=served.url,
        headers={"Authorization": f"Bearer {served.token}"},
        checks=CHECKS,
        timeout=30,
    )

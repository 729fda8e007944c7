"""The committed OpenAPI document is the one Powertools generates from the routes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from photo_restore.attempts import Phase
from photo_restore.status import PhotoStatus
from photo_restore_tools.template import api_routes
from scripts.export_openapi import ROOT, openapi_document, render


def test_the_committed_document_matches_the_routes() -> None:
    committed = Path(ROOT / "openapi.json").read_text()
    assert committed == render(), "run `make openapi` and commit openapi.json"


def test_the_handler_serves_exactly_the_routes_the_template_gives_api_gateway() -> None:
    document = openapi_document()
    paths = document["paths"]
    assert isinstance(paths, dict)
    handler_routes = {(m.upper(), p) for p, methods in paths.items() for m in methods}
    assert handler_routes == {(route.method, route.template) for route in api_routes()}
    assert len(handler_routes) == 11
    assert document["security"] == [{"supabaseJwt": []}]
    restore = paths["/photos/{photo_id}/restore"]["post"]
    assert {"202", "401", "404", "409", "422", "429"} <= set(restore["responses"])
    cancel = paths["/photos/{photo_id}/restore"]["delete"]
    assert {"200", "404", "409"} <= set(cancel["responses"])


def _properties(name: str) -> set[str]:
    schemas: dict[str, Any] = openapi_document()["components"]["schemas"]  # type: ignore[index]
    return set(schemas[name]["properties"])


def test_the_frontend_fields_headers_and_statuses_are_documented() -> None:
    paths: dict[str, Any] = openapi_document()["paths"]  # type: ignore[assignment]
    restore = paths["/photos/{photo_id}/restore"]["post"]
    assert [p["name"] for p in restore["parameters"] if p["in"] == "header"] == ["idempotency-key"]
    assert set(restore["responses"]["202"]["headers"]) == {"Idempotent-Replayed"}
    assert set(restore["responses"]["429"]["headers"]) == {"Retry-After"}
    listing = paths["/photos/{photo_id}/restores"]["get"]
    assert {p["name"] for p in listing["parameters"] if p["in"] == "query"} == {"limit", "cursor"}
    assert {
        "before",
        "after",
        "urls_expire_at",
        "selected_restore_id",
        "estimated_seconds_remaining",
    } <= _properties("PhotoView")
    assert {"phase", "started_at", "finished_at", "after", "thumbnail_url"} <= _properties(
        "AttemptView"
    )
    assert {"next_cursor", "selected_restore_id"} <= _properties("AttemptList")
    assert _properties("AttemptError") == {"code", "retryable", "message"}
    assert _properties("ImageView") == {"url", "width", "height", "provenance"}
    assert _properties("ImageProvenance") == {
        "digital_source_type",
        "model",
        "software_agent",
        "created_at",
        "c2pa",
    }


# What API Gateway answers itself, before (or instead of) the function.
# Answered by API Gateway, or (401 unauthenticated, 413 upload_too_large, 429 quota_exceeded)
# by the function where a route says so.
GATEWAY_OR_FUNCTION = {
    "401": "GatewayUnauthorized",
    "413": "GatewayPayloadTooLarge",
    "429": "GatewayThrottled",
}


def test_every_error_answer_has_the_one_error_shape_but_the_gateways_own() -> None:
    for method, path, operation in _operations():
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                continue
            if status in GATEWAY_OR_FUNCTION:
                expected_refs = {GATEWAY_OR_FUNCTION[status], "ErrorBody"}
                assert GATEWAY_OR_FUNCTION[status] in _schema_refs(response), (method, path)
                assert _schema_refs(response) <= expected_refs, (method, path, status)
                continue
            assert _schema_ref(response) == "ErrorBody", (method, path, status)
        assert {"401", "413", "422", "429", "500"} <= set(operation["responses"]), (method, path)


def test_only_routes_that_read_a_body_document_a_400() -> None:
    for method, path, operation in _operations():
        reads_body = "requestBody" in operation
        assert ("400" in operation["responses"]) == reads_body, (method, path)
    assert {(m, p) for m, p, op in _operations() if "requestBody" in op} == {
        ("post", "/photos/{photo_id}/restore"),
        ("put", "/photos/{photo_id}/selected-restore"),
        ("post", "/uploads"),
    }


def test_codes_statuses_and_phases_are_enums_and_always_sent_fields_required() -> None:
    schemas: dict[str, Any] = openapi_document()["components"]["schemas"]  # type: ignore[index]
    assert "anonymous_not_allowed" in schemas["ErrorBody"]["properties"]["error"]["enum"]
    assert "internal_error" in schemas["ErrorBody"]["properties"]["error"]["enum"]
    assert "provider_content_refused" in schemas["AttemptError"]["properties"]["code"]["enum"]
    assert schemas["PhotoStatus"]["enum"] == [status.value for status in PhotoStatus]
    assert schemas["Phase"]["enum"] == [phase.value for phase in Phase]
    for name in ("PhotoView", "RestoreAccepted"):
        assert schemas[name]["properties"]["status"] == {"$ref": "#/components/schemas/PhotoStatus"}
    assert schemas["AttemptView"]["properties"]["phase"] == {"$ref": "#/components/schemas/Phase"}
    # A success body sends every field (null when it does not apply): all are required.
    for name in ("PhotoView", "AttemptList", "AttemptView", "ImageView", "RestoreAccepted"):
        assert set(schemas[name]["required"]) == set(schemas[name]["properties"]), name
    # An error body leaves out what does not apply (never null).
    assert set(schemas["ErrorBody"]["required"]) == {"error", "message", "retryable"}
    assert all("anyOf" not in field for field in schemas["ErrorBody"]["properties"].values())


def test_no_schema_is_unused() -> None:
    document = openapi_document()
    schemas: dict[str, Any] = document["components"]["schemas"]  # type: ignore[index]
    text = json.dumps(document["paths"]) + json.dumps(schemas)
    for name in schemas:
        assert f'"#/components/schemas/{name}"' in text, name
    assert not {"ValidationError", "HTTPValidationError"} & set(schemas)


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    paths: dict[str, dict[str, Any]] = openapi_document()["paths"]  # type: ignore[assignment]
    return [(method, path, op) for path, ops in paths.items() for method, op in ops.items()]


def _schema_ref(response: dict[str, Any]) -> str:
    ref: str = response["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def _schema_refs(response: dict[str, Any]) -> set[str]:
    schema = response["content"]["application/json"]["schema"]
    return {str(s["$ref"]).rsplit("/", 1)[-1] for s in schema.get("anyOf", [schema])}


def test_every_operation_documents_its_success_body() -> None:
    schemas = openapi_document()["components"]["schemas"]  # type: ignore[index]
    for method, path, operation in _operations():
        successes = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        assert len(successes) == 1, (method, path)
        [response] = successes.values()
        assert _schema_ref(response) in schemas, (method, path)


def test_the_documented_401_is_what_api_gateways_authorizer_sends() -> None:
    schemas = openapi_document()["components"]["schemas"]  # type: ignore[index]
    for method, path, operation in _operations():
        [name] = _schema_refs(operation["responses"]["401"]) - {"ErrorBody"}
        assert set(schemas[name]["properties"]) == {"message"}, (method, path)
        assert schemas[name]["properties"]["message"]["default"] == "Unauthorized"

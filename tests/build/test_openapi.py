"""The committed OpenAPI document is the one Powertools generates from the routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    assert _properties("ImageView") == {"url", "width", "height"}


def test_every_error_answer_has_the_one_error_shape_but_the_gateways_401() -> None:
    for method, path, operation in _operations():
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                continue
            expected = "GatewayUnauthorized" if status == "401" else "ErrorBody"
            assert _schema_ref(response) == expected, (method, path, status)


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    paths: dict[str, dict[str, Any]] = openapi_document()["paths"]  # type: ignore[assignment]
    return [(method, path, op) for path, ops in paths.items() for method, op in ops.items()]


def _schema_ref(response: dict[str, Any]) -> str:
    ref: str = response["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


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
        name = _schema_ref(operation["responses"]["401"])
        assert set(schemas[name]["properties"]) == {"message"}, (method, path)
        assert schemas[name]["properties"]["message"]["default"] == "Unauthorized"

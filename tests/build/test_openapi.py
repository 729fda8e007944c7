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
    assert len(handler_routes) == 4
    assert document["security"] == [{"supabaseJwt": []}]
    restore = paths["/photos/{photo_id}/restore"]["post"]
    assert {"202", "401", "404", "409", "422"} <= set(restore["responses"])


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

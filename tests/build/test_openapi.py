"""The committed OpenAPI document is the one Powertools generates from the routes."""

from __future__ import annotations

from pathlib import Path

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

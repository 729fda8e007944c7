"""The committed OpenAPI document is the one Powertools generates from the routes."""

from __future__ import annotations

from pathlib import Path

from scripts.export_openapi import ROOT, openapi_document, render

ROUTES = {
    ("post", "/photos/{photo_id}/restore"),
    ("get", "/photos/{photo_id}"),
    ("get", "/photos/{photo_id}/restores"),
    ("put", "/photos/{photo_id}/selected-restore"),
}


def test_the_committed_document_matches_the_routes() -> None:
    committed = Path(ROOT / "openapi.json").read_text()
    assert committed == render(), "run `make openapi` and commit openapi.json"


def test_the_document_lists_exactly_the_four_routes_behind_the_jwt() -> None:
    document = openapi_document()
    paths = document["paths"]
    assert isinstance(paths, dict)
    assert {(m, p) for p, methods in paths.items() for m in methods} == ROUTES
    assert document["security"] == [{"supabaseJwt": []}]
    restore = paths["/photos/{photo_id}/restore"]["post"]
    assert {"202", "401", "404", "409", "422"} <= set(restore["responses"])

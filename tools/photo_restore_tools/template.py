"""template.yaml read as data: the one source of the HTTP API's routes for the local gateway and
the tests (CloudFormation's short tags, `!Ref` and the like, become their long forms)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from photo_restore_tools.local.functions import project_root

API_FUNCTION = "ApiFunction"


def load_template(path: Path | None = None) -> dict[str, Any]:
    """The template as a dict; `!Ref`, `!Sub`, `!GetAtt`... become `{"Ref": ...}` etc."""
    from cfnlint.decode import cfn_yaml

    template: dict[str, Any] = cfn_yaml.load(str(path or project_root() / "template.yaml"))
    return template


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # as in template.yaml, e.g. /photos/{photo_id}

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when `method path` is this route; None otherwise."""
        if method != self.method:
            return None
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        found = re.fullmatch(pattern, path)
        return {k: unquote(v) for k, v in found.groupdict().items()} if found else None


@cache
def api_routes(path: Path | None = None) -> tuple[Route, ...]:
    """The HttpApi events of the API function: the routes API Gateway serves."""
    events = load_template(path)["Resources"][API_FUNCTION]["Properties"]["Events"]
    return tuple(
        Route(event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for event in events.values()
        if event["Type"] == "HttpApi"
    )

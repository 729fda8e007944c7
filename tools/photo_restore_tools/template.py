"""template.yaml read as data: the one source of the HTTP API's routes for the local gateway and
the tests (CloudFormation's short tags, `!Ref` and the like, become their long forms)."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from photo_restore_tools.local.functions import project_root

API_FUNCTION = "ApiFunction"
HTTP_API = "HttpApi"


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


@dataclass(frozen=True)
class CorsRules:
    """The HTTP API's CorsConfiguration as API Gateway applies it; its origins come from the
    CorsAllowedOrigins parameter, so a caller names them (`*` in one matches any characters)."""

    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    max_age: int

    def allows(self, origin: str) -> bool:
        return any(fnmatch.fnmatchcase(origin.lower(), o.lower()) for o in self.allow_origins)


def cors_rules(allow_origins: tuple[str, ...], path: Path | None = None) -> CorsRules:
    """The template's CorsConfiguration (what HasCors turns on) for these origins."""
    api = load_template(path)["Resources"][HTTP_API]["Properties"]
    _, configuration, _ = api["CorsConfiguration"]["Fn::If"]
    return CorsRules(
        allow_origins=allow_origins,
        allow_methods=tuple(configuration["AllowMethods"]),
        allow_headers=tuple(configuration["AllowHeaders"]),
        expose_headers=tuple(configuration["ExposeHeaders"]),
        max_age=int(configuration["MaxAge"]),
    )

"""A local API Gateway (HTTP API + JWT authorizer) for `photo-restore serve`: real HTTP requests
in, payload v2 events to the API handler, its responses back out."""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import jwt

from photo_restore.status import PhotoStatus
from photo_restore_tools.local.photos import UnsupportedUpload, UploadedPhoto
from photo_restore_tools.template import CorsRules, Route, api_routes, cors_rules

logger = logging.getLogger(__name__)

JWT_AUDIENCE = "authenticated"
JWT_ALGORITHM = "HS256"
# API Gateway refuses HTTP API payloads above 10 MB before any route or authorizer runs.
API_PAYLOAD_LIMIT = 10 * 1024 * 1024
UPLOAD_PATH = "/local/photos"
# The browser origins `serve` allows by default: a frontend's dev server on this machine. A
# deployment names its own in the template's CorsAllowedOrigins parameter.
LOCAL_CORS_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*")
_TEXT_TYPES = re.compile(
    r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded)|[^;]*\+(json|xml))", re.I
)


# The local-only upload route (the existing app's upload is not part of this API).
UPLOAD_ROUTE = Route("POST", UPLOAD_PATH)


class GatewayBackend(Protocol):
    """What the gateway calls: the API handler, and the local-only upload."""

    @property
    def max_upload_bytes(self) -> int: ...

    def invoke_api(self, event: dict[str, Any]) -> Any: ...

    def upload_photo(self, owner_id: str, data: bytes) -> UploadedPhoto: ...


def make_token(
    secret: str,
    *,
    sub: str,
    email: str | None = None,
    ttl_seconds: float = 3600,
    **claims: Any,
) -> str:
    """An HS256 token shaped like a Supabase access token (audience and role `authenticated`)."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": sub,
        "aud": JWT_AUDIENCE,
        "role": "authenticated",
        "iat": now,
        "exp": now + int(ttl_seconds),
    }
    if email is not None:
        payload["email"] = email
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm=JWT_ALGORITHM)


def verify_token(token: str, secret: str, *, issuer: str | None = None) -> dict[str, Any]:
    """Signature, `exp` and audience, like the JWT authorizer; raises jwt.InvalidTokenError."""
    return jwt.decode(
        token,
        secret,
        algorithms=[JWT_ALGORITHM],  # never trust the token's own `alg`
        audience=JWT_AUDIENCE,
        issuer=issuer,
        options={"require": ["exp"]},
    )


def claims_as_api_gateway_passes(claims: Mapping[str, Any]) -> dict[str, str]:
    """API Gateway hands every claim over as a string: numbers as written, arrays as `[a b]`,
    objects in Go's `map[k:v]` form. Handlers must cope with that, so the local gateway does it too.
    """
    return {name: _claim_text(value) for name, value in claims.items()}


def _claim_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = " ".join(f"{k}:{_claim_text(v)}" for k, v in sorted(value.items()))
        return f"map[{inner}]"
    if value is None:
        return "<nil>"
    return str(value)


def http_api_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    route_key: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    claims: Mapping[str, Any] | None = None,
    source_ip: str = "127.0.0.1",
    json_body: Any = None,
) -> dict[str, Any]:
    """A payload v2 event as API Gateway builds it after the JWT authorizer accepted `claims`.

    `json_body` is a shortcut for a JSON `body` sent with `content-type: application/json`.
    """
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers = {"content-type": "application/json", **(headers or {})}
    lowered: dict[str, str] = {}
    for name, value in (headers or {}).items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    cookie_header = lowered.pop("cookie", None)
    host = lowered.get("host", "localhost")
    now = datetime.now(UTC)
    request_context: dict[str, Any] = {
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": lowered.get("user-agent", ""),
        },
        "requestId": base64.b64encode(secrets.token_bytes(10)).decode(),
        "routeKey": route_key or "$default",
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if claims is not None:
        scopes = claims.get("scope")
        request_context["authorizer"] = {
            "jwt": {
                "claims": claims_as_api_gateway_passes(claims),
                "scopes": scopes.split() if isinstance(scopes, str) and scopes else None,
            }
        }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": request_context["routeKey"],
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": request_context,
        "isBase64Encoded": False,
    }
    if cookie_header:
        event["cookies"] = [c.strip() for c in cookie_header.split(";") if c.strip()]
    if raw_query:
        query: dict[str, str] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            query[name] = f"{query[name]},{value}" if name in query else value
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        event["body"], event["isBase64Encoded"] = _event_body(body, lowered.get("content-type", ""))
    return event


def _event_body(body: bytes, content_type: str) -> tuple[str, bool]:
    """Text payloads arrive as text, everything else base64-encoded, as API Gateway does."""
    if _TEXT_TYPES.match(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


class _Unauthorized(Exception):
    def __init__(self, description: str | None) -> None:
        super().__init__(description)
        self.description = description


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # an open keep-alive connection must not block shutdown

    def __init__(self, address: tuple[str, int], gateway: HttpGateway) -> None:
        super().__init__(address, _Handler)
        self.gateway = gateway

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        logger.debug("gateway connection from %s failed", client_address, exc_info=True)


class HttpGateway:
    """Binds when built (a busy port fails before the stack starts); serves after start()."""

    def __init__(
        self,
        backend: GatewayBackend,
        *,
        jwt_secret: str,
        host: str = "127.0.0.1",
        port: int = 3000,
        jwt_issuer: str | None = None,
        cors_origins: tuple[str, ...] = LOCAL_CORS_ORIGINS,
    ) -> None:
        self.backend = backend
        # As the template's CorsConfiguration (for the origins given); none: no CORS at all.
        self.cors: CorsRules | None = cors_rules(cors_origins) if cors_origins else None
        self._secret = jwt_secret
        self._issuer = jwt_issuer
        self._server = _Server((host, port), self)
        self.routes = (*api_routes(), UPLOAD_ROUTE)
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> HttpGateway:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="http-gateway",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> HttpGateway:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- used by the request handler -------------------------------------------------------

    def authorize(self, header: str | None) -> dict[str, Any]:
        if not header or not header.strip():
            raise _Unauthorized(None)
        scheme, _, rest = header.strip().partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" else header.strip()
        try:
            return verify_token(token, self._secret, issuer=self._issuer)
        except jwt.ExpiredSignatureError:
            raise _Unauthorized("the token has expired") from None
        except jwt.InvalidTokenError as error:
            raise _Unauthorized(f"the token is invalid: {error}") from None


class _Handler(BaseHTTPRequestHandler):
    """Every method reaches `_handle`: what matches no route is 404, as API Gateway answers."""

    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "photo-restore-local-gateway"

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler looks up do_<METHOD>; unknown methods would otherwise be 501.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s " + format, self.address_string(), *args)

    def _handle(self) -> None:
        gateway = self.server.gateway
        split = urlsplit(self.path)
        path = split.path or "/"
        body = self._read_body(path)
        if body is None:
            return
        if self._is_preflight():
            self._preflight()
            return
        route, path_parameters = _find_route(gateway.routes, self.command, path)
        if route is None:
            self._send_json(404, {"message": "Not Found"})
            return
        try:
            claims = gateway.authorize(self.headers.get("Authorization"))
        except _Unauthorized as denied:
            self._unauthorized(denied.description)
            return
        if route is UPLOAD_ROUTE:
            self._upload(claims, body)
            return
        event = http_api_event(
            method=self.command,
            raw_path=path,
            raw_query=split.query,
            headers=dict(self.headers.items()),
            body=body,
            route_key=route.key,
            path_parameters=path_parameters,
            claims=claims,
            source_ip=self.client_address[0],
        )
        try:
            response = gateway.backend.invoke_api(event)
        except Exception:
            # What API Gateway answers when the integration itself fails.
            logger.exception("the API handler raised")
            self._send_json(500, {"message": "Internal Server Error"})
            return
        self._send_lambda_response(response)

    def _read_body(self, path: str) -> bytes | None:
        """The request body; None when it was refused (an answer has been sent)."""
        gateway = self.server.gateway
        limit = gateway.backend.max_upload_bytes if path == UPLOAD_PATH else API_PAYLOAD_LIMIT
        declared = self.headers.get("Content-Length") or "0"
        if not declared.isdigit():  # negative or garbage: never read on a client's word
            self.close_connection = True
            self._send_json(400, {"message": "Bad Request"})
            return None
        if int(declared) > limit:
            self.close_connection = True  # the unread body makes the connection unusable
            self._send_json(413, {"message": "Request Entity Too Large"})
            return None
        return self.rfile.read(int(declared)) if int(declared) else b""

    def _upload(self, claims: dict[str, Any], body: bytes) -> None:
        owner = claims.get("sub")
        if not isinstance(owner, str) or not owner:
            self._unauthorized("the token has no subject")
            return
        try:
            photo = self.server.gateway.backend.upload_photo(owner, body)
        except UnsupportedUpload as error:
            self._send_json(415 if body else 400, {"message": str(error)})
            return
        except Exception:
            logger.exception("local upload failed")
            self._send_json(500, {"message": "Internal Server Error"})
            return
        self._send_json(
            201,
            {
                "photo_id": str(photo.id),
                "status": PhotoStatus.UPLOADED.value,
                "original_key": photo.original_key,
                "mime_type": photo.mime_type,
                "size_bytes": photo.size_bytes,
            },
        )

    # --- CORS, as API Gateway answers it with a CorsConfiguration ------------------------------

    def _allowed_origin(self) -> str | None:
        cors, origin = self.server.gateway.cors, self.headers.get("Origin")
        return origin if cors is not None and origin and cors.allows(origin) else None

    def _is_preflight(self) -> bool:
        """API Gateway answers a preflight itself, before routes and the authorizer."""
        return (
            self.command == "OPTIONS"
            and self.server.gateway.cors is not None
            and bool(self.headers.get("Origin"))
            and bool(self.headers.get("Access-Control-Request-Method"))
        )

    def _preflight(self) -> None:
        """204; with the Access-Control headers only when the origin, the method and every
        requested header are allowed (otherwise the browser refuses the request)."""
        cors = self.server.gateway.cors
        assert cors is not None
        method = (self.headers.get("Access-Control-Request-Method") or "").upper()
        asked = self.headers.get("Access-Control-Request-Headers") or ""
        headers = {h.strip().lower() for h in asked.split(",") if h.strip()}
        allowed = (
            self._allowed_origin() is not None
            and method in cors.allow_methods
            and headers <= set(cors.allow_headers)
        )
        answer = {}
        if allowed:
            answer = {
                "access-control-allow-methods": ",".join(cors.allow_methods),
                "access-control-allow-headers": ",".join(cors.allow_headers),
                "access-control-max-age": str(cors.max_age),
            }
        self._send(204, b"", answer)

    def _cors_headers(self) -> dict[str, str]:
        origin = self._allowed_origin()
        if origin is None:
            return {}
        cors = self.server.gateway.cors
        assert cors is not None
        exposed = {"access-control-expose-headers": ",".join(cors.expose_headers)}
        return {"access-control-allow-origin": origin, "vary": "origin", **exposed}

    def _unauthorized(self, description: str | None) -> None:
        challenge = "Bearer"
        if description:
            detail = description.replace('"', "'")
            challenge = f'Bearer scope="" error="invalid_token" error_description="{detail}"'
        self._send_json(401, {"message": "Unauthorized"}, {"www-authenticate": challenge})

    def _send_lambda_response(self, response: Any) -> None:
        if not isinstance(response, dict) or "statusCode" not in response:
            # Payload v2 lets a handler return a bare value: API Gateway makes it JSON 200.
            self._send_json(200, response)
            return
        body = response.get("body") or ""
        data = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()
        headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
        if not any(name.lower() == "content-type" for name in headers):
            headers["content-type"] = "application/json"
        cookies = [str(c) for c in response.get("cookies") or []]
        self._send(int(response["statusCode"]), data, headers, cookies)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        all_headers = {"content-type": "application/json", **(headers or {})}
        self._send(status, json.dumps(payload).encode(), all_headers)

    def _send(
        self,
        status: int,
        data: bytes,
        headers: dict[str, str],
        cookies: list[str] | None = None,
    ) -> None:
        headers = {**headers, **self._cors_headers()}
        try:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            for cookie in cookies or []:
                self.send_header("set-cookie", cookie)
            self.send_header("content-length", str(len(data)))
            self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
            self.end_headers()
            if self.command != "HEAD":  # a HEAD answer has headers only
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _find_route(
    routes: tuple[Route, ...], method: str, path: str
) -> tuple[Route | None, dict[str, str]]:
    for route in routes:
        found = route.match(method, path)
        if found is not None:
            return route, found
    return None, {}

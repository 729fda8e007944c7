"""The local stack: `photo-restore demo` end to end, the local API Gateway over real HTTP, and a
shutdown that leaves no port, thread or environment change behind."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from PIL import Image

from photo_restore_tools.local.http_gateway import (
    HttpGateway,
    claims_as_api_gateway_passes,
    http_api_event,
    make_token,
)
from photo_restore_tools.local.photos import old_photo
from photo_restore_tools.local.stack import LocalStack, local_cors_origins, run_demo
from photo_restore_tools.template import cors_rules

SECRET = "local-test-secret-of-at-least-32-bytes"
OWNER = "user-gateway-test"


def _decodes_as_image(data: bytes) -> str | None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.format


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.fixture
def demo_environment(monkeypatch: pytest.MonkeyPatch, database_url: str, aws_endpoint: str) -> None:
    """The session's Postgres and moto, picked up from the environment as the CLI would."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("DATABASE_SSL_MODE", raising=False)
    monkeypatch.delenv("SILICONFLOW_API_KEY", raising=False)


def test_demo_restores_an_image_and_writes_the_three_files(
    demo_environment: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "grandma.png"
    Image.open(io.BytesIO(old_photo((800, 600)))).save(image, format="PNG")
    environment = dict(os.environ)
    # A previous run's files: none may pass for this run's.
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "original.heic").write_bytes(b"previous run")
    (tmp_path / "out" / "restored.jpg").write_bytes(b"previous run")

    assert run_demo(image, tmp_path / "out") == 0

    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == {"original.png", "preprocessed.jpg", "restored.jpg"}
    assert (tmp_path / "out" / "original.png").read_bytes() == image.read_bytes()
    assert _decodes_as_image((tmp_path / "out" / "preprocessed.jpg").read_bytes()) == "JPEG"
    assert _decodes_as_image((tmp_path / "out" / "restored.jpg").read_bytes()) == "JPEG"
    output = capsys.readouterr().out
    assert "status: ready" in output
    assert "offline stand-in, not the Qwen-Image-Edit model" in output
    assert '"provider": "siliconflow"' in output
    assert dict(os.environ) == environment  # handlers' settings and AWS variables undone


def test_demo_refuses_a_bad_image_path_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_demo(tmp_path / "missing.jpg", tmp_path / "out") == 2
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello")
    assert run_demo(not_an_image, tmp_path / "out") == 2
    errors = capsys.readouterr().err
    assert "cannot read" in errors
    assert "not a supported image" in errors


@dataclass
class Served:
    stack: LocalStack
    gateway: HttpGateway
    client: httpx.Client

    def auth(self, token: str | None = None, sub: str = OWNER) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or make_token(SECRET, sub=sub)}"}


@pytest.fixture
def served(database_url: str, aws_endpoint: str) -> Iterator[Served]:
    with LocalStack(database_url=database_url, aws_endpoint_url=aws_endpoint) as stack:
        gateway = HttpGateway(stack, jwt_secret=SECRET, port=0).start()
        try:
            with httpx.Client(base_url=gateway.url, timeout=10) as client:
                yield Served(stack, gateway, client)
        finally:
            gateway.stop()


def test_the_gateway_runs_a_restore_from_upload_to_the_restored_image(served: Served) -> None:
    client, auth = served.client, served.auth()
    uploaded = client.post("/local/photos", content=old_photo(), headers=auth)
    assert uploaded.status_code == 201, uploaded.text
    photo_id = uploaded.json()["photo_id"]

    accepted = client.post(f"/photos/{photo_id}/restore", headers=auth)
    assert accepted.status_code == 202, accepted.text
    attempt_id = accepted.json()["restore_attempt_id"]

    deadline = time.monotonic() + 30
    while (view := client.get(f"/photos/{photo_id}", headers=auth).json())["status"] != "ready":
        assert time.monotonic() < deadline, view
        time.sleep(0.1)
    assert view["latest_attempt"]["outcome"] == "succeeded"
    restored = httpx.get(view["restored_image_url"], timeout=10)
    assert restored.status_code == 200
    assert _decodes_as_image(restored.content) == "JPEG"

    listing = client.get(f"/photos/{photo_id}/restores", headers=auth)
    assert [r["restore_attempt_id"] for r in listing.json()["restores"]] == [attempt_id]
    selected = client.put(
        f"/photos/{photo_id}/selected-restore",
        json={"restore_attempt_id": attempt_id},
        headers=auth,
    )
    assert selected.status_code == 200, selected.text
    # The caller comes from the token: another user's valid token sees no such photo.
    stranger = client.get(f"/photos/{photo_id}", headers=served.auth(sub="someone-else"))
    assert stranger.status_code == 404


def test_the_gateway_refuses_requests_without_a_valid_token(served: Served) -> None:
    tokens = {
        "missing": None,
        "bad signature": make_token("another-secret-of-at-least-32-bytes!!", sub=OWNER),
        "expired": make_token(SECRET, sub=OWNER, ttl_seconds=-60),
        "wrong audience": jwt.encode({"sub": OWNER, "aud": "x", "exp": time.time() + 60}, SECRET),
        "no exp": jwt.encode({"sub": OWNER, "aud": "authenticated"}, SECRET),
        "not a JWT": "not-a-jwt",
    }
    photo_id = "00000000-0000-4000-8000-000000000000"
    for case, token in tokens.items():
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        for method, path in [("GET", f"/photos/{photo_id}"), ("POST", "/local/photos")]:
            response = served.client.request(method, path, headers=headers, content=b"x")
            assert response.status_code == 401, (case, method, path)
            assert response.json() == {"message": "Unauthorized"}


def test_the_gateway_answers_404_outside_its_routes_and_415_for_non_images(served: Served) -> None:
    auth = served.auth()
    photo_id = "00000000-0000-4000-8000-000000000000"
    for method, path in [
        ("GET", "/"),
        ("PUT", "/photos"),
        ("PATCH", f"/photos/{photo_id}"),
        ("GET", f"/photos/{photo_id}/restore"),
        ("GET", "/local/objects/originals/x.jpg"),
    ]:
        response = served.client.request(method, path, headers=auth)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"message": "Not Found"}
    # API Gateway answers 404 for any method no route has, HEAD included (headers only).
    for method in ("HEAD", "PROPFIND", "TRACE"):
        response = served.client.request(method, f"/photos/{photo_id}", headers=auth)
        assert response.status_code == 404, method
        assert response.content == (b"" if method == "HEAD" else b'{"message": "Not Found"}')
    assert served.client.get("/photos/x", headers=auth).status_code != 501  # still serving
    not_an_image = served.client.post("/local/photos", content=b"plain text", headers=auth)
    assert not_an_image.status_code == 415


def test_every_answer_carries_one_content_type(served: Served) -> None:
    """fetch() joins repeated headers: two would read `application/json, application/json`."""
    photo_id = "00000000-0000-4000-8000-000000000000"
    answers = [
        served.client.get(f"/photos/{photo_id}", headers=served.auth()),  # the function's 404
        served.client.get("/photos/not-a-uuid", headers=served.auth()),  # its 422
        served.client.get(f"/photos/{photo_id}"),  # the gateway's 401
        served.client.get("/nowhere", headers=served.auth()),  # the gateway's 404
    ]
    assert [a.status_code for a in answers] == [404, 422, 401, 404]
    for answer in answers:
        assert answer.headers.get_list("content-type") == ["application/json"], answer.text


def preflight(served: Served, origin: str, method: str = "POST", **headers: str) -> httpx.Response:
    return served.client.options(
        "/photos/00000000-0000-4000-8000-000000000000/restore",
        headers={"Origin": origin, "Access-Control-Request-Method": method, **headers},
    )


def test_preflights_from_the_allowed_origins_are_answered_before_the_authorizer(
    served: Served,
) -> None:
    rules = cors_rules(("x",))  # the template's methods, headers and max age
    asked = {"Access-Control-Request-Headers": "authorization,content-type,idempotency-key"}
    for origin in ("http://localhost:5173", "http://127.0.0.1:3001"):
        answer = preflight(served, origin, **asked)
        assert answer.status_code == 204, origin  # no token needed
        assert answer.headers["access-control-allow-origin"] == origin
        assert answer.headers["access-control-allow-methods"].split(",") == list(
            rules.allow_methods
        )
        assert set(answer.headers["access-control-allow-headers"].split(",")) == set(
            rules.allow_headers
        )
        assert answer.headers["access-control-max-age"] == str(rules.max_age)
    for origin, method, extra in [
        ("https://evil.example", "POST", {}),
        ("http://localhost.evil.example", "POST", {}),
        ("http://localhost:5173", "PATCH", {}),
        ("http://localhost:5173", "POST", {"Access-Control-Request-Headers": "x-secret"}),
    ]:
        refused = preflight(served, origin, method, **extra)
        assert refused.status_code == 204
        assert "access-control-allow-methods" not in refused.headers, (origin, method, extra)


def test_answers_to_an_allowed_origin_carry_the_cors_headers(served: Served) -> None:
    photo_id = "00000000-0000-4000-8000-000000000000"
    origin = {"Origin": "http://localhost:5173"}
    for answer in (
        served.client.get(f"/photos/{photo_id}", headers=served.auth() | origin),  # function
        served.client.get(f"/photos/{photo_id}", headers=origin),  # the gateway's 401
    ):
        assert answer.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert answer.headers["access-control-expose-headers"] == "retry-after,idempotent-replayed"
    other = served.client.get(f"/photos/{photo_id}", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    # Without CORS origins (LOCAL_CORS_ALLOWED_ORIGINS empty) an OPTIONS is no route: 404.
    closed = HttpGateway(served.stack, jwt_secret=SECRET, port=0, cors_origins=()).start()
    try:
        answer = httpx.options(
            f"{closed.url}/photos/{photo_id}/restore",
            headers=origin | {"Access-Control-Request-Method": "POST"},
        )
        assert answer.status_code == 404 and "access-control-allow-origin" not in answer.headers
    finally:
        closed.stop()


def test_claims_reach_the_handler_as_api_gateway_passes_them() -> None:
    claims = {
        "sub": "u1",
        "exp": 1795608000,
        "is_anonymous": False,
        "amr": ["password", "otp"],
        "app_metadata": {"provider": "email"},
    }
    event = http_api_event(method="GET", raw_path="/photos/x", claims=claims)
    assert event["requestContext"]["authorizer"]["jwt"]["claims"] == {
        "sub": "u1",
        "exp": "1795608000",
        "is_anonymous": "false",
        "amr": "[password otp]",
        "app_metadata": "map[provider:email]",
    }
    assert claims_as_api_gateway_passes({"n": 1.5}) == {"n": "1.5"}


def test_shutdown_releases_ports_threads_and_environment(database_url: str) -> None:
    environment = dict(os.environ)
    before = set(threading.enumerate())  # the session's own stand-in, for one
    # No aws_endpoint_url: this stack starts (and must stop) a moto server of its own.
    with LocalStack(database_url=database_url) as stack:
        gateway = HttpGateway(stack, jwt_secret=SECRET, port=0).start()
        ports = [*stack.owned_ports, gateway.port]
        assert len(ports) == 3  # moto, the SiliconFlow stand-in, the gateway
        assert not any(_refuses_connections(port) for port in ports)
        with pytest.raises(RuntimeError, match="already running"), LocalStack():
            pass  # one stack per process: settings live in os.environ
        gateway.stop()

    assert all(_refuses_connections(port) for port in ports)
    assert dict(os.environ) == environment
    ours = ("poller-", "sweeper", "siliconflow-standin", "http-gateway")
    deadline = time.monotonic() + 5
    while leftover := [
        t for t in threading.enumerate() if t.name.startswith(ours) and t not in before
    ]:
        assert time.monotonic() < deadline, leftover
        time.sleep(0.1)


def test_serve_takes_its_cors_origins_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_CORS_ALLOWED_ORIGINS", raising=False)
    assert local_cors_origins() == ("http://localhost:*", "http://127.0.0.1:*")
    monkeypatch.setenv("LOCAL_CORS_ALLOWED_ORIGINS", "https://app.example.com, http://x:*")
    assert local_cors_origins() == ("https://app.example.com", "http://x:*")
    monkeypatch.setenv("LOCAL_CORS_ALLOWED_ORIGINS", "")
    assert local_cors_origins() == ()

"""The API Lambda, invoked with HTTP API v2 events on real Postgres and moto SQS/S3."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from photo_restore.http_errors import INTERNAL_ERROR_METRIC
from photo_restore.models import jobs
from photo_restore.settings import Settings
from photo_restore_tools.local.event_source import LocalLambdaContext
from photo_restore_tools.local.http_gateway import http_api_event
from tests.helpers import records
from tests.helpers.handlers import call_api, load_handler
from tests.helpers.records import insert_photo
from tests.integration.test_observability import logged as logged_line

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)


Call = Callable[..., tuple[int, Any]]


@pytest.fixture
def api(settings: Settings, engine: Engine) -> Iterator[Call]:
    module = load_handler("api", settings)

    def call(
        method: str,
        path: str,
        *,
        owner: str | None = None,
        email: str | None = "ada@example.com",
        claims: dict[str, Any] | None = None,
        edit_event: Callable[[dict[str, Any]], dict[str, Any]] = lambda event: event,
        **event: Any,
    ) -> tuple[int, Any]:
        if claims is None and owner is not None:
            claims = {"sub": owner, "email": email, "aud": "authenticated", "role": "authenticated"}
        built = http_api_event(method=method, raw_path=path, claims=claims, **event)
        response = module.lambda_handler(edit_event(built), LocalLambdaContext("photo-restore-api"))
        return response["statusCode"], json.loads(response["body"] or "null")

    yield call
    module.wiring.repository().engine.dispose()


def json_or_raw(body: Any) -> dict[str, Any]:
    """A text body as sent, anything else as JSON; both with content-type application/json."""
    if isinstance(body, str):
        return {"body": body.encode(), "headers": {"content-type": "application/json"}}
    return {"json_body": body}


def queued_bodies(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in response.get("Messages", [])]


def test_restore_request_claims_the_photo_and_enqueues_the_attempt(
    api: Call, engine: Engine, sqs: Any, settings: Settings
) -> None:
    photo = insert_photo(engine)
    status, body = api("POST", f"/photos/{photo.id}/restore", owner=photo.owner_id)

    assert status == 202
    assert body["photo_id"] == str(photo.id)
    assert body["status"] == "processing"
    attempt_id = uuid.UUID(body["restore_attempt_id"])
    assert records.photo(engine, photo.id).status == "processing"
    with engine.connect() as conn:
        job = conn.execute(select(jobs).where(jobs.c.id == photo.id)).one()
    attempt = records.attempt(engine, attempt_id)
    assert job.email == "ada@example.com"
    assert attempt.photo_id == photo.id
    assert attempt.s3_key == "pending"
    assert attempt.model == "Qwen/Qwen-Image-Edit"
    assert attempt.params["provider"] == "siliconflow"
    assert attempt.params["num_inference_steps"] == 20
    assert attempt.params["guidance_scale"] == 4.0  # the model's documented cfg
    assert attempt.params["guidance_field"] == "cfg"
    assert attempt.params["prompt"] == settings.restore_prompt
    assert queued_bodies(sqs, settings.queue_url) == [
        {
            "photo_id": str(photo.id),
            "restore_attempt_id": str(attempt_id),
            "rate_limit_deferrals": 0,
        }
    ]


def test_second_restore_request_while_processing_gets_409_with_the_in_flight_attempt(
    api: Call, engine: Engine
) -> None:
    photo = insert_photo(engine)
    _, first = api("POST", f"/photos/{photo.id}/restore", owner=photo.owner_id)
    status, body = api("POST", f"/photos/{photo.id}/restore", owner=photo.owner_id)
    assert status == 409
    assert body["error"] == "already_processing"
    assert body["restore_attempt_id"] == first["restore_attempt_id"]


@pytest.mark.parametrize("photo_status", ["archived", "deleted"])
def test_archived_or_deleted_photos_cannot_be_restored(
    api: Call, engine: Engine, photo_status: str
) -> None:
    photo = insert_photo(engine, status=photo_status)
    status, body = api("POST", f"/photos/{photo.id}/restore", owner=photo.owner_id)
    assert status == 409
    assert body["error"] == "photo_not_restorable"


def test_a_ready_photo_can_be_restored_again(api: Call, engine: Engine) -> None:
    photo = insert_photo(engine, status="ready")
    status, _ = api("POST", f"/photos/{photo.id}/restore", owner=photo.owner_id)
    assert status == 202


def test_someone_elses_photo_looks_exactly_like_a_missing_one(api: Call, engine: Engine) -> None:
    photo = insert_photo(engine)
    stranger = f"user-{uuid.uuid4()}"
    foreign = api("POST", f"/photos/{photo.id}/restore", owner=stranger)
    missing = api("POST", f"/photos/{uuid.uuid4()}/restore", owner=stranger)
    assert foreign == missing
    assert foreign[0] == 404
    for path in (f"/photos/{photo.id}", f"/photos/{photo.id}/restores"):
        assert api("GET", path, owner=stranger)[0] == 404
    assert records.photo(engine, photo.id).status == "uploaded"


# API Gateway passes every claim as a string, so a non-string `sub` cannot arrive here (the
# unit tests of Caller.from_claims cover it).
@pytest.mark.parametrize("claims", [None, {}, {"email": "x@example.com"}, {"sub": ""}], ids=str)
def test_missing_identity_is_401(api: Call, engine: Engine, claims: dict[str, Any] | None) -> None:
    photo = insert_photo(engine)
    event_claims = claims
    status, _ = api("POST", f"/photos/{photo.id}/restore", claims=event_claims)
    assert status == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/photos/not-a-uuid/restore", None),
        ("GET", "/photos/123", None),
        ("GET", "/photos/%27%3B--/restores", None),
        ("PUT", "/photos/{id}/selected-restore", {"restore_attempt_id": "nope"}),
        ("PUT", "/photos/{id}/selected-restore", {}),
        ("PUT", "/photos/{id}/selected-restore", {"restore_attempt_id": "{id}", "extra": 1}),
        ("PUT", "/photos/{id}/selected-restore", "[1, 2]"),
    ],
)
def test_malformed_ids_and_bodies_get_a_4xx_with_a_reason(
    api: Call, engine: Engine, method: str, path: str, body: Any
) -> None:
    photo = insert_photo(engine)
    path = path.replace("{id}", str(photo.id))
    if isinstance(body, dict):
        body = {
            k: (v.replace("{id}", str(photo.id)) if isinstance(v, str) else v)
            for k, v in body.items()
        }
    status, response = api(method, path, owner=photo.owner_id, **json_or_raw(body))
    assert 400 <= status < 500
    # The one error shape, with nothing null: a 422 names the field at fault.
    assert response["error"] in ("invalid_request", "unreadable_body") and response["message"]
    assert None not in response.values()
    if status == 422:
        assert response["error"] == "invalid_request" and response["field"]
        assert response["message"].startswith(response["field"])


def test_a_body_that_is_not_json_is_a_4xx(api: Call, engine: Engine) -> None:
    photo = insert_photo(engine)
    status, _ = api(
        "PUT", f"/photos/{photo.id}/selected-restore", owner=photo.owner_id, **json_or_raw("{oops")
    )
    assert 400 <= status < 500


def test_get_photo_shows_status_and_the_pending_attempt(api: Call, engine: Engine) -> None:
    photo = insert_photo(engine)
    _, accepted = api("POST", f"/photos/{photo.id}/restore", owner=photo.owner_id)
    status, body = api("GET", f"/photos/{photo.id}", owner=photo.owner_id)
    assert status == 200
    assert body["status"] == "processing"
    assert body["latest_attempt"]["restore_attempt_id"] == accepted["restore_attempt_id"]
    assert body["latest_attempt"]["outcome"] == "pending"
    assert body["restored_image_url"] is None


def test_a_body_that_is_not_utf8_or_nests_too_deep_is_a_400(api: Call, engine: Engine) -> None:
    photo = insert_photo(engine)
    path = f"/photos/{photo.id}/selected-restore"
    status, body = api("PUT", path, owner=photo.owner_id, **json_or_raw("[" * 100_000))
    assert (status, body["error"]) == (400, "unreadable_body")

    import base64

    def not_utf8(event: dict[str, Any]) -> dict[str, Any]:
        event["body"] = base64.b64encode(b'{"restore_attempt_id": "\xff"}').decode()
        event["isBase64Encoded"] = True
        return event

    status, body = api("PUT", path, owner=photo.owner_id, json_body={}, edit_event=not_utf8)
    assert (status, body["error"]) == (400, "unreadable_body")


def test_identity_is_checked_before_any_dependency_is_built(
    settings: Settings, engine: Engine
) -> None:
    """With no identity the answer is 401 even when SSM (or the database) is unreachable."""
    broken = settings.model_copy(update={"database_url_parameter": "/nowhere/database-url"})
    api = load_handler("api", broken)
    photo = insert_photo(engine)
    assert call_api(api, "POST", f"/photos/{photo.id}/restore")[0] == 401


def test_an_unreachable_parameter_store_is_a_503(settings: Settings, engine: Engine) -> None:
    broken = settings.model_copy(update={"database_url_parameter": "/nowhere/database-url"})
    api = load_handler("api", broken)
    photo = insert_photo(engine)
    status, body = call_api(api, "GET", f"/photos/{photo.id}", claims={"sub": photo.owner_id})
    assert status == 503
    assert body["error"] == "dependency_unavailable"


@pytest.mark.parametrize(
    "raw",
    [
        '{"restore_attempt_id": ' + "1" * 5000 + "}",  # past Python's int-digit limit
        "{oops",
        "[" * 100_000,
    ],
    ids=["huge-integer", "invalid", "deeply-nested"],
)
def test_a_body_the_parser_cannot_read_is_a_400_with_a_reason(
    api: Call, engine: Engine, raw: str
) -> None:
    photo = insert_photo(engine)
    path = f"/photos/{photo.id}/selected-restore"
    status, body = api("PUT", path, owner=photo.owner_id, **json_or_raw(raw))
    assert (status, body["error"]) == (400, "unreadable_body")
    assert body["message"]


# --- The edge: anonymous sessions, one error shape --------------------------------------------


def test_an_anonymous_session_gets_403_on_restore_and_nothing_is_claimed(
    api: Call, engine: Engine, sqs: Any, settings: Settings
) -> None:
    photo = insert_photo(engine)
    claims = {"sub": photo.owner_id, "is_anonymous": True, "role": "authenticated"}
    status, body = api("POST", f"/photos/{photo.id}/restore", claims=claims)
    assert (status, body["error"], body["retryable"]) == (403, "anonymous_not_allowed", False)
    assert records.photo(engine, photo.id).status == "uploaded"
    assert records.attempts_of(engine, photo.id) == []
    assert queued_bodies(sqs, settings.queue_url) == []
    assert api("GET", f"/photos/{photo.id}", claims=claims)[0] == 200


def test_an_anonymous_session_restores_within_its_own_quota_when_allowed(
    settings: Settings, engine: Engine
) -> None:
    allowing = settings.model_copy(update={"daily_restores_per_anonymous_session": 1})
    api = load_handler("api", allowing)
    first = insert_photo(engine)
    second = insert_photo(engine, owner_id=first.owner_id)
    claims = {"sub": first.owner_id, "is_anonymous": True}
    assert call_api(api, "POST", f"/photos/{first.id}/restore", claims=claims)[0] == 202
    status, body = call_api(api, "POST", f"/photos/{second.id}/restore", claims=claims)
    assert (status, body["error"]) == (429, "quota_exceeded")
    # The same user signed in with an account has the ordinary quota.
    account = {"sub": first.owner_id, "is_anonymous": False}
    assert call_api(api, "POST", f"/photos/{second.id}/restore", claims=account)[0] == 202
    api.wiring.repository().engine.dispose()


def test_an_unexpected_exception_in_a_route_is_the_functions_500_body(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = load_handler("api", settings)
    output = io.StringIO()
    # Assigned, not setStream() (see test_observability): the log lines land in `output`.
    monkeypatch.setattr(api.tools.logger.registered_handler, "stream", output)
    counted: list[str] = []
    monkeypatch.setattr(api.tools.metrics, "add_metric", lambda name, **_: counted.append(name))

    class Broken:
        def get_photo(self, *args: Any) -> Any:
            raise RuntimeError("a bug")

    monkeypatch.setattr(api.wiring, "restore_requests", lambda: Broken())
    photo = insert_photo(engine)
    event = http_api_event(
        method="GET", raw_path=f"/photos/{photo.id}", claims={"sub": photo.owner_id}
    )
    response = api.lambda_handler(event, LocalLambdaContext("photo-restore-api"))
    request_id = event["requestContext"]["requestId"]
    assert response["statusCode"] == 500
    assert json.loads(response["body"]) == {
        "error": "internal_error",
        "message": "Something went wrong on our side; the request id names it in our logs.",
        "retryable": True,
        "request_id": request_id,
    }
    assert [k.lower() for k in response["headers"]] == ["content-type"]
    logged = logged_line(output.getvalue(), "unexpected error")
    assert logged["correlation_id"] == request_id and "RuntimeError: a bug" in logged["exception"]
    assert counted == [INTERNAL_ERROR_METRIC]  # what ApiInternalErrorsAlarm watches


def test_every_error_body_says_whether_retrying_may_help(api: Call, engine: Engine) -> None:
    photo = insert_photo(engine)
    missing = uuid.uuid4()
    answers = [
        api("GET", f"/photos/{missing}", owner=photo.owner_id),
        api("GET", "/photos/not-a-uuid", owner=photo.owner_id),
        api("DELETE", f"/photos/{photo.id}/restore", owner=photo.owner_id),
        api("POST", f"/photos/{photo.id}/restore", claims={"email": "x@example.com"}),
    ]
    assert [(status, body["retryable"]) for status, body in answers] == [
        (404, False),
        (422, False),
        (409, False),
        (401, False),
    ]

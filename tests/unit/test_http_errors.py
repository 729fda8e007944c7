"""HTTP statuses live at the API's edge: the domain errors carry a code, a kind and whether
retrying may help; photo_restore.http_errors says which of them the API answers, and how."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from photo_restore import errors
from photo_restore.errors import (
    ERRORS_BY_CODE,
    DependencyUnavailable,
    ProviderUnavailable,
    QuotaExceeded,
    RestoreError,
)
from photo_restore.events import EventPublishFailed
from photo_restore.http_errors import API_ERROR_CODES, HTTP_STATUS, INTERNAL_ERROR, answered_status
from photo_restore.views import AttemptError, ErrorBody


def test_no_domain_error_knows_an_http_status() -> None:
    assert not any(hasattr(error, "http_status") for error in ERRORS_BY_CODE.values())


def test_every_code_the_api_answers_is_one_domain_errors_code_but_internal_error() -> None:
    assert len(API_ERROR_CODES) == len(set(API_ERROR_CODES))
    assert set(API_ERROR_CODES) - set(ERRORS_BY_CODE) == {INTERNAL_ERROR}
    assert all(400 <= status < 600 for status in HTTP_STATUS.values())


def test_a_subclass_is_answered_as_its_parent_and_a_pipeline_error_not_at_all() -> None:
    assert answered_status(EventPublishFailed("bus down")) == 503
    assert answered_status(QuotaExceeded("over", retry_after_seconds=5)) == 429
    assert answered_status(ProviderUnavailable("worker only")) is None
    assert answered_status(RestoreError("base")) is None


@pytest.mark.parametrize(
    ("model", "codes"),
    [(ErrorBody, set(API_ERROR_CODES)), (AttemptError, errors.ATTEMPT_ERROR_CODES)],
)
def test_the_documented_code_enums_are_exactly_the_codes_sent(
    model: type[BaseModel], codes: set[str]
) -> None:
    schema = model.model_json_schema()
    name = "error" if model is ErrorBody else "code"
    assert set(schema["properties"][name]["enum"]) == codes


def test_an_attempt_error_of_an_unknown_code_is_shown_as_the_base_error() -> None:
    shown = errors.public_error({"code": "something_an_old_version_wrote", "message": "x"})
    assert shown["code"] == "restore_error" and shown["code"] in errors.ATTEMPT_ERROR_CODES
    known = errors.public_error({"code": DependencyUnavailable.code, "message": "x"})
    assert known == {
        "code": "dependency_unavailable",
        "retryable": True,
        "message": DependencyUnavailable.user_message,
    }

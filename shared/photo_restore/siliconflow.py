"""HTTP client for SiliconFlow's image-edit endpoint: bounded retries, and every failure mapped to a
domain error that keeps the provider's trace id."""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx

from photo_restore.edit_request import EditRequest
from photo_restore.errors import (
    FailureKind,
    InvalidProviderResult,
    ProviderAuthFailed,
    ProviderMisconfigured,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
    RestoreError,
)
from photo_restore.provider_models import contract_for
from photo_restore.result_download import deadline_transport, wall_time_deadline
from photo_restore.settings import BACKOFF_BASE_SECONDS, backoff_ceiling_seconds

if TYPE_CHECKING:
    from photo_restore.settings import Settings

logger = logging.getLogger(__name__)

TRACE_ID_HEADER = "x-siliconcloud-trace-id"
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
MAX_ERROR_TEXT = 500
# Failures after which the request had left (in part or whole): the provider may have generated,
# and billed, an image. Connect and pool failures never reached it.
_SENT_FAILURES = (httpx.WriteError, httpx.WriteTimeout, httpx.ReadError, httpx.ReadTimeout,
                  httpx.RemoteProtocolError)  # fmt: skip


@dataclass(frozen=True)
class SiliconFlowRequest:
    edit: EditRequest
    image: str  # https URL or data URI "data:image/jpeg;base64,..."

    def to_json(self) -> dict[str, Any]:
        """The request body: only fields the model's documented contract accepts (edit models
        get no image_size or batch_size), the guidance in the field the model takes."""
        edit, contract = self.edit, contract_for(self.edit.model)
        body: dict[str, Any] = {
            "model": edit.model,
            "prompt": edit.prompt,
            "image": self.image,
            "num_inference_steps": edit.num_inference_steps,
            contract.guidance_field: edit.guidance_scale,
        }
        if edit.negative_prompt is not None:
            body["negative_prompt"] = edit.negative_prompt
        if edit.seed is not None:
            body["seed"] = edit.seed
        if not set(body) <= contract.accepted:  # a programming error, never the user's
            raise AssertionError(f"fields {set(body) - contract.accepted} not for {edit.model}")
        return body

    def recorded_fields(self) -> dict[str, Any]:
        """The body as sent, for the attempt's record: the image named by how it travelled,
        never its bytes nor a URL that grants access to it."""
        return {**self.to_json(), "image": "data_uri" if self.image.startswith("data:") else "url"}

    def __repr__(self) -> str:
        # A data URI can be megabytes long: keep logs and tracebacks readable.
        image = self.image if len(self.image) <= 80 else f"{self.image[:60]}...({len(self.image)})"
        edit = self.edit
        return (
            f"SiliconFlowRequest(image={image!r}, model={edit.model!r}, "
            f"num_inference_steps={edit.num_inference_steps}, "
            f"{edit.guidance_field}={edit.guidance_scale}, seed={edit.seed})"
        )


@dataclass(frozen=True)
class SiliconFlowResponse:
    image_url: str
    inference_time: float | None
    seed: int | None
    trace_id: str | None  # x-siliconcloud-trace-id header
    calls: int = 1  # requests sent for it, retries included (each may have been billed)


class SiliconFlowClient:
    """Calls `POST {base_url}/images/generations`; 429 is raised at once for the worker to defer."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | Callable[[], str],
        connect_timeout: float,
        read_timeout: float,
        max_retries: int,
        call_deadline_seconds: float | None = None,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff_base_seconds: float = BACKOFF_BASE_SECONDS,
    ) -> None:
        self._url = base_url.rstrip("/") + "/images/generations"
        # A callable is asked on every request (it caches), so a rotated key is picked up.
        self._api_key = api_key
        # write covers uploading a multi-megabyte data URI, so it gets the read budget too.
        self._timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        )
        # httpx's timeouts apply to each read: a provider dripping its answer would reset them
        # forever. The deadline transport ends each call (connect to last byte) by this.
        self._call_deadline = call_deadline_seconds or (connect_timeout + read_timeout)
        self._max_retries = max(0, max_retries)
        self._sleep = sleep
        self._backoff_base = backoff_base_seconds
        self._owns_client = http_client is None
        # follow_redirects stays off: a redirected POST is a misconfigured base URL, not success.
        self._http = http_client or httpx.Client(
            # A fresh connection per call (seconds of inference dwarf its setup).
            transport=deadline_transport(),
            timeout=self._timeout,
            follow_redirects=False,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, api_key: str | Callable[[], str] | None = None
    ) -> SiliconFlowClient:
        """`api_key` (the worker's SSM lookup) overrides the key in settings."""
        key = api_key if api_key is not None else settings.siliconflow_api_key.get_secret_value()
        return cls(
            base_url=settings.siliconflow_base_url,
            api_key=key,
            connect_timeout=settings.siliconflow_connect_timeout_seconds,
            read_timeout=settings.siliconflow_read_timeout_seconds,
            max_retries=settings.siliconflow_max_retries,
            # What the settings' worker-timeout check counts one call as.
            call_deadline_seconds=settings.siliconflow_call_deadline_seconds,
        )

    def __repr__(self) -> str:
        return f"SiliconFlowClient(url={self._url!r}, max_retries={self._max_retries})"

    @property
    def call_deadline_seconds(self) -> float:
        """The wall time each try may take, connect to last byte."""
        return self._call_deadline

    def __enter__(self) -> SiliconFlowClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_client:
            self._http.close()

    def _current_key(self) -> str:
        key = self._api_key() if callable(self._api_key) else self._api_key
        # Stripped: a key pasted into SSM with a trailing newline would make an invalid header.
        return key.strip()

    def edit_image(self, request: SiliconFlowRequest) -> SiliconFlowResponse:
        """The answer, with how many requests were sent for it; every error raised carries
        that count too (`provider_calls`): a request sent may have been billed."""
        api_key = self._current_key()
        if not api_key:
            raise ProviderAuthFailed("no SiliconFlow API key is configured")
        if not (api_key.isascii() and api_key.isprintable()):
            # httpx would refuse the header as a transport error, which we would retry for nothing.
            raise ProviderAuthFailed("the SiliconFlow API key has characters a header cannot hold")
        body = request.to_json()
        attempts = self._max_retries + 1
        calls = 0
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                with wall_time_deadline(time.monotonic() + self._call_deadline):
                    response = self._http.post(
                        self._url,
                        json=body,
                        headers={"Authorization": f"Bearer {api_key}"},
                        timeout=self._timeout,
                        follow_redirects=False,
                    )
            except httpx.TransportError as exc:
                calls += isinstance(exc, _SENT_FAILURES)
                # Timeouts are TransportErrors too; the message names the class, never the key.
                reason = f"{type(exc).__name__}: {exc}"
                if last:
                    unreachable = ProviderUnavailable(
                        f"SiliconFlow unreachable after {attempts} attempt(s): {reason}"
                    )
                    unreachable.provider_calls = calls
                    raise unreachable from exc
                self._backoff(attempt, reason)
                continue

            calls += 1
            trace_id = response.headers.get(TRACE_ID_HEADER)
            status = response.status_code
            if 200 <= status < 300:
                try:
                    return _parse_success(response, trace_id, calls)
                except InvalidProviderResult as invalid:
                    invalid.provider_calls = calls
                    raise
            error = _error_for(response, trace_id, attempts=attempt + 1, sent=body.keys())
            if status in RETRYABLE_STATUSES and not last and error.kind is FailureKind.TRANSIENT:
                self._backoff(attempt, f"HTTP {status} (trace {trace_id})")
                continue
            error.provider_calls = calls
            raise error
        raise AssertionError("unreachable: the last attempt always returns or raises")

    def _backoff(self, attempt: int, reason: str) -> None:
        # Full jitter: uniform in [0, base * 2^attempt] spreads retries of many workers apart.
        delay = random.uniform(0, backoff_ceiling_seconds(attempt, self._backoff_base))
        logger.warning(
            "SiliconFlow attempt %d failed (%s); retrying in %.2fs", attempt + 1, reason, delay
        )
        self._sleep(delay)


def _parse_success(
    response: httpx.Response, trace_id: str | None, calls: int
) -> SiliconFlowResponse:
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidProviderResult(
            f"SiliconFlow answered {response.status_code} with a non-JSON body: "
            f"{_truncate(response.text)!r}",
            trace_id=trace_id,
        ) from exc
    if not isinstance(payload, dict):
        raise InvalidProviderResult("SiliconFlow answer is not a JSON object", trace_id=trace_id)
    images = payload.get("images")
    first = images[0] if isinstance(images, list) and images else None
    url = first.get("url") if isinstance(first, dict) else None
    if not isinstance(url, str) or not url:
        raise InvalidProviderResult("SiliconFlow answer has no image URL", trace_id=trace_id)
    timings = payload.get("timings")
    inference = timings.get("inference") if isinstance(timings, dict) else None
    seed = payload.get("seed")
    return SiliconFlowResponse(
        image_url=url,
        inference_time=(
            float(inference)
            if isinstance(inference, int | float) and not isinstance(inference, bool)
            else None
        ),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        trace_id=trace_id,
        calls=calls,
    )


def _error_for(
    response: httpx.Response, trace_id: str | None, *, attempts: int, sent: Collection[str] = ()
) -> RestoreError:
    status = response.status_code
    code, message = _error_body(response)
    detail = f"SiliconFlow answered {status}: {_described(code, message)}"
    if status == 429 or (status == 503 and code == SYSTEM_BUSY):
        # Both say "no capacity for you now": deferred, without using up the message's receives.
        return ProviderRateLimited(
            detail,
            retry_after_seconds=parse_retry_after(response.headers.get("retry-after")),
            limit=_rate_limit_named(message),
            trace_id=trace_id,
        )
    if status in (401, 403):
        return ProviderAuthFailed(detail, trace_id=trace_id)
    if status == 404:
        # The endpoint itself is not there: the base URL is wrong for every request.
        return ProviderMisconfigured(f"{detail} (check SILICONFLOW_BASE_URL)", trace_id=trace_id)
    if 400 <= status < 500:
        return _refusal(detail, code, message, sent, trace_id)
    if status >= 500:
        return ProviderUnavailable(f"{detail} (after {attempts} attempt(s))", trace_id=trace_id)
    # 1xx/3xx: the base URL points somewhere that is not the API.
    return InvalidProviderResult(f"{detail} (unexpected status)", trace_id=trace_id)


# 503 {"code": 50603, "message": "System is really busy"}: a capacity signal, some relays
# answer it as a 429 (docs/siliconflow.md).
SYSTEM_BUSY = 50603
# 20012: "Model does not exist. Please check it carefully." (the error-handling FAQ).
MODEL_DOES_NOT_EXIST = 20012
# The one request field that changes with the photo; every other field we send is configuration.
PHOTO_FIELD = "image"
MAX_REFUSAL_TEXT = 200
_RATE_LIMITS = re.compile(r"\b(RPM|RPH|RPD|TPM|TPD|IPM|IPD)\b")


def _refusal(
    detail: str, code: int | None, message: str, sent: Collection[str], trace_id: str | None
) -> RestoreError:
    """A 400 by what it says: the documented unknown-model code, else which of the fields we
    sent it names. Naming only configuration fields (model, prompt, cfg, steps, seed...):
    every request would get it. Naming the image, or nothing of ours: this photo's refusal,
    permanent (RestoreRun infers a systemic one when it hits several photos)."""
    if code == MODEL_DOES_NOT_EXIST:
        return ProviderMisconfigured(f"{detail} (check SILICONFLOW_MODEL)", trace_id=trace_id)
    named = fields_named(message, sent)
    if named and PHOTO_FIELD not in named:
        fields = ", ".join(sorted(named))
        return ProviderMisconfigured(
            f"{detail} (it names {fields}: the same in every request)", trace_id=trace_id
        )
    refusal = f"{code}: {message.strip()[:MAX_REFUSAL_TEXT]}"
    return ProviderRejected(detail, trace_id=trace_id, refusal=refusal)


def fields_named(message: str, sent: Collection[str]) -> set[str]:
    """The fields of `sent` that `message` names as identifiers: the whole name, any case
    ("cfg must be...", "'num_inference_steps' is invalid"); "negative_prompt" is not "prompt"."""
    return {
        field
        for field in sent
        if re.search(rf"(?<![\w]){re.escape(field)}(?![\w])", message, re.IGNORECASE)
    }


def _rate_limit_named(message: str) -> str | None:
    """The limit a 429 names ("... Details: IPM limit reached."), e.g. "IPM"; None if none."""
    found = _RATE_LIMITS.search(message)
    return found.group(1) if found else None


def _error_body(response: httpx.Response) -> tuple[int | None, str]:
    """(code, message) of a JSON error body `{"code": ..., "message": ..., "data": null}`;
    (None, the text) for the plain-text bodies some statuses get."""
    text = response.text.strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return None, text
    if not isinstance(payload, dict):
        return None, text
    message, code = payload.get("message"), payload.get("code")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        message if isinstance(message, str) and message else text,
    )


def _described(code: int | None, message: str) -> str:
    described = f"{message} (code {code})" if code is not None else message
    return _truncate(described) or "(empty body)"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP-date); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; an unlabelled one is taken as UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _truncate(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."

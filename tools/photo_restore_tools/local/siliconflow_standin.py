"""Offline stand-in for SiliconFlow's image-edit API: implements the HTTP contract with cheap Pillow
filters, for tests and the local stack. It is NOT the Qwen-Image-Edit model.

It is as strict as the service's documentation (docs/siliconflow.md): it refuses, with the
service's error shapes, fields a model does not take and values out of their ranges, answers in
plain text where the service does, serves results at URLs that expire, and returns results near
1 MP keeping the input's aspect, which is our reading of the reference pipeline, not a fact the
service documents."""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import hashlib
import hmac
import io
import json
import logging
import math
import random
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
from PIL import Image, ImageFilter, ImageOps

logger = logging.getLogger(__name__)

TRACE_ID_HEADER = "x-siliconcloud-trace-id"
GENERATIONS_PATH = "/v1/images/generations"
RESULTS_PREFIX = "/results/"
MAX_REQUEST_BYTES = 64 * 1024 * 1024
MAX_INPUT_BYTES = 50 * 1024 * 1024
MAX_SEED = 9_999_999_999
STARTUP_NOTICE = (
    "SiliconFlow stand-in (offline; implements the API contract, NOT the Qwen-Image-Edit model)"
)

BehaviourKind = Literal[
    "rate_limited",
    "error",
    "delay",
    "hang",
    "malformed_body",
    "empty_images",
    "result_url",
    "not_an_image_result",
    "held",
    "result_error",
    "slow_result",
    "drip",
    "zoomed",
    "face_replaced",
]


@dataclass(frozen=True)
class Behaviour:
    """A one-shot script for the next authenticated generation request."""

    kind: BehaviourKind
    status: int = 200
    message: str | None = None
    seconds: float = 0.0
    retry_after: str | None = None
    url: str | None = None

    code: int | None = None
    zoom: tuple[float, float, float] = (1.0, 0.0, 0.0)  # scale, dx, dy (fractions of the frame)

    @classmethod
    def rate_limited(
        cls, retry_after: float | str | None = None, *, limit: str = "IPM"
    ) -> Behaviour:
        """429 naming `limit` (RPM, IPM, IPD...) as the service's message does, without a code;
        `retry_after` is sent as given (seconds or an HTTP-date), no header when None (usual)."""
        header = None
        if retry_after is not None:
            header = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
        message = f"Request was rejected due to rate limiting. Details: {limit} limit reached."
        return cls(kind="rate_limited", status=429, retry_after=header, message=message)

    @classmethod
    def error(cls, status: int, message: str | None = None, code: int | None = None) -> Behaviour:
        """Any status in the shape the service sends it (plain text for 401, 404 and 504)."""
        return cls(kind="error", status=status, message=message, code=code)

    @classmethod
    def model_not_found(cls) -> Behaviour:
        """The error-handling FAQ's example: 400, code 20012."""
        return cls.error(400, "Model does not exist. Please check it carefully.", 20012)

    @classmethod
    def invalid_parameter(cls, message: str) -> Behaviour:
        return cls.error(400, message, 20015)

    @classmethod
    def content_refused(cls) -> Behaviour:
        """A content-filter refusal; its wording is undocumented: this is our assumption."""
        return cls.error(400, "The input image contains sensitive content.", 20015)

    @classmethod
    def overloaded(cls) -> Behaviour:
        return cls.error(503, "Model service overloaded. Please try again later.", 50505)

    @classmethod
    def system_busy(cls) -> Behaviour:
        """The 503 seen in a real log (docs/siliconflow.md): a capacity signal."""
        return cls.error(503, "System is really busy", 50603)

    @classmethod
    def delay(cls, seconds: float) -> Behaviour:
        """Wait, then succeed."""
        return cls(kind="delay", seconds=seconds)

    @classmethod
    def hang(cls, seconds: float) -> Behaviour:
        """Say nothing for `seconds`, then drop the connection (triggers client read timeouts)."""
        return cls(kind="hang", seconds=seconds)

    @classmethod
    def held(cls, max_seconds: float = 60.0) -> Behaviour:
        """Say nothing until the test calls release_held() (then answer as usual) or the
        client gives up (its timeout closes the connection: counted, see wait_for_abandoned);
        after `max_seconds`, drop the connection. Unlike `hang`, nothing races a clock."""
        return cls(kind="held", seconds=max_seconds)

    @classmethod
    def malformed_body(cls) -> Behaviour:
        return cls(kind="malformed_body")

    @classmethod
    def empty_images(cls) -> Behaviour:
        return cls(kind="empty_images")

    @classmethod
    def result_url(cls, url: str) -> Behaviour:
        """Succeed, but answer with this URL (e.g. a private or non-image one)."""
        return cls(kind="result_url", url=url)

    @classmethod
    def not_an_image_result(cls) -> Behaviour:
        """Succeed, but serve bytes that are not an image at the result URL."""
        return cls(kind="not_an_image_result")

    @classmethod
    def result_error(cls, status: int = 503) -> Behaviour:
        """Succeed, but answer the first download of the result with `status` (later ones
        get the image): a CDN's passing failure."""
        return cls(kind="result_error", status=status)

    @classmethod
    def slow_result(cls, seconds: float) -> Behaviour:
        """Succeed, but hold the first download of the result silent for `seconds` (later
        ones get the image at once)."""
        return cls(kind="slow_result", seconds=seconds)

    @classmethod
    def drip(cls, seconds_per_byte: float) -> Behaviour:
        """Succeed, but send the whole answer (status line, headers, body) one byte every
        `seconds_per_byte`: each read gets a byte in time, the answer takes minutes."""
        return cls(kind="drip", seconds=seconds_per_byte)

    @classmethod
    def zoomed(cls, scale: float = 1.025, dx: float = -0.012, dy: float = 0.008) -> Behaviour:
        """Succeed with the result zoomed and shifted, as Qwen-Image-Edit-2509 does by a few
        percent (dx, dy: fractions of the frame)."""
        return cls(kind="zoomed", zoom=(scale, dx, dy))

    @classmethod
    def face_replaced(cls) -> Behaviour:
        """Succeed with the largest face of the result replaced by Grace Hopper's, blended in:
        a generative edit that changed who is in the photo (dev dependencies: dlib,
        matplotlib's sample photo)."""
        return cls(kind="face_replaced")


_DEFAULT_MESSAGES = {
    400: "Invalid request parameters",
    401: "Invalid token",
    403: "Forbidden: this API key is not permitted to use the model",
    404: "404 page not found",
    429: "Request was rejected due to rate limiting. Details: IPM limit reached.",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Model service overloaded. Please try again later.",
    504: "upstream request timeout",
}
_DEFAULT_CODES = {400: 20015, 403: 30011, 503: 50505}
# The statuses the service answers in plain text, not its JSON error shape.
_PLAIN_TEXT_STATUSES = frozenset({401, 404, 504})

# The models the stand-in knows, as the API reference documents them. Written out here on its
# own, not imported from photo_restore.provider_models: the stand-in checks the client's table
# instead of agreeing with it by construction.
_QWEN_EDIT_FIELDS = {
    "model",
    "prompt",
    "negative_prompt",
    "image",
    "num_inference_steps",
    "cfg",
    "seed",
}
DOCUMENTED_MODELS: dict[str, tuple[frozenset[str], str, float, float]] = {
    # model: (accepted fields, guidance field, its lowest value, its highest)
    "Qwen/Qwen-Image-Edit": (frozenset(_QWEN_EDIT_FIELDS), "cfg", 0.1, 20),
    "Qwen/Qwen-Image-Edit-2509": (frozenset(_QWEN_EDIT_FIELDS), "cfg", 0.1, 20),
    "Kwai-Kolors/Kolors": (
        frozenset(
            {"model", "prompt", "negative_prompt", "image", "image_size", "batch_size",
             "num_inference_steps", "guidance_scale", "seed"}
        ),
        "guidance_scale",
        0,
        20,
    ),
}  # fmt: skip
MODEL_DOES_NOT_EXIST = 20012
INVALID_PARAMETER = 20015
# The reference pipeline's working size (our assumption of what the service returns).
RESULT_AREA = 1024 * 1024


class _BadRequest(Exception):
    def __init__(self, message: str, code: int = INVALID_PARAMETER) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _StoredResult:
    body: bytes
    content_type: str
    expires: float  # in the stand-in's clock
    first_download: Behaviour | None = None  # what the first GET of it gets instead


@dataclass
class _State:
    behaviours: collections.deque[Behaviour] = field(default_factory=collections.deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, _StoredResult] = field(default_factory=dict)
    admitted: collections.deque[float] = field(default_factory=collections.deque)  # last minute
    refused_for_rate: int = 0  # 429s of the images-per-minute limit
    held: int = 0  # requests a `held` behaviour has held
    abandoned: int = 0  # ... whose client gave up while held
    result_downloads: int = 0  # GETs of stored results that started


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung handler must not keep the process (or stop()) waiting

    def __init__(self, address: tuple[str, int], standin: SiliconFlowStandIn) -> None:
        super().__init__(address, _Handler)
        self.standin = standin

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        # socketserver prints tracebacks to stderr; clients dropping connections are routine here.
        logger.debug("stand-in connection from %s failed", client_address, exc_info=True)


class SiliconFlowStandIn:
    """`POST /v1/images/generations` and `GET /results/<id>.jpg` on a daemon thread."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        latency_seconds: float = 0.0,
        result_ttl_seconds: float = 3600.0,
        public_base_url: str | None = None,
        images_per_minute: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        # An account's IPM for the model: more images in any 60 s are refused with a 429.
        self.images_per_minute = images_per_minute
        self.port = port
        self.api_key = api_key
        self.latency_seconds = latency_seconds
        self.result_ttl_seconds = result_ttl_seconds
        # Result URLs use this, else the Host the request came in on (reachable by that caller).
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self._clock = clock
        self._secret = uuid.uuid4().bytes  # signs result URLs
        self._lock = threading.Lock()
        self._state = _State()
        # Set by stop()/reset() so sleeping delay/hang handlers end at once.
        self._wake = threading.Event()
        # `held` answers: let go by release_held(); held and abandoned counts are waited on.
        self._release = threading.Event()
        self._held_changed = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> SiliconFlowStandIn:
        if self._server is not None:
            return self
        self._wake.clear()
        server = _Server((self.host, self.port), self)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so stop() returns quickly
            name="siliconflow-standin",
            daemon=True,
        )
        self._thread.start()
        logger.info("%s listening on %s", STARTUP_NOTICE, self.base_url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._wake.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SiliconFlowStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The API base to give the client, e.g. http://127.0.0.1:PORT/v1."""
        return f"{self.root_url}/v1"

    @property
    def root_url(self) -> str:
        return self.public_base_url or f"http://{_url_host(self.host)}:{self.port}"

    # --- scripting -------------------------------------------------------------------------

    def enqueue(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._state.behaviours.extend(behaviours)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """JSON bodies received on the generation endpoint, image field shortened."""
        with self._lock:
            return list(self._state.requests)

    @property
    def admitted_times(self) -> list[float]:
        """When the calls of the last minute were admitted (its clock), with a limit set."""
        with self._lock:
            return list(self._state.admitted)

    @property
    def refused_for_rate(self) -> int:
        """How many calls the images-per-minute limit refused."""
        with self._lock:
            return self._state.refused_for_rate

    @property
    def result_downloads(self) -> int:
        """How many downloads of stored results have started."""
        with self._lock:
            return self._state.result_downloads

    @property
    def pending_behaviours(self) -> int:
        with self._lock:
            return len(self._state.behaviours)

    def release_held(self) -> None:
        """Let every held answer (and any held later, until reset) go, answered as usual."""
        self._release.set()

    def wait_for_held(self, count: int, timeout: float = 60.0) -> bool:
        """Whether `count` requests were held (since reset) within `timeout` seconds."""
        with self._held_changed:
            return self._held_changed.wait_for(lambda: self._state.held >= count, timeout)

    def wait_for_abandoned(self, count: int, timeout: float = 60.0) -> bool:
        """Whether `count` held requests' clients gave up (since reset) within `timeout`."""
        with self._held_changed:
            return self._held_changed.wait_for(lambda: self._state.abandoned >= count, timeout)

    def reset(self) -> None:
        """Forget queued behaviours, recorded requests and stored results; wake sleepers."""
        with self._lock:
            self._state = _State()
        self._wake.set()
        self._wake = threading.Event()
        self._release = threading.Event()

    # --- used by the handler ---------------------------------------------------------------

    def _record(self, body: dict[str, Any]) -> None:
        shown = dict(body)
        image = shown.get("image")
        if isinstance(image, str) and len(image) > 80:
            shown["image"] = f"{image[:60]}...({len(image)} chars)"
        with self._lock:
            self._state.requests.append(shown)

    def _admit_image(self) -> bool:
        """Whether an image fits in the last 60 s under `images_per_minute` (a sliding
        window: the provider's own window is undocumented, this is the strict reading)."""
        if self.images_per_minute is None:
            return True
        now = self._clock()
        with self._lock:
            window = self._state.admitted
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= self.images_per_minute:
                self._state.refused_for_rate += 1
                return False
            window.append(now)
            return True

    def _next_behaviour(self) -> Behaviour | None:
        with self._lock:
            return self._state.behaviours.popleft() if self._state.behaviours else None

    def _store(
        self,
        body: bytes,
        content_type: str = "image/jpeg",
        first_download: Behaviour | None = None,
    ) -> str:
        """A stored result's path and query: `/results/<id>.jpg?expires=...&signature=...`."""
        result_id = uuid.uuid4().hex
        expires = self._clock() + self.result_ttl_seconds
        with self._lock:
            self._state.results[result_id] = _StoredResult(
                body, content_type, expires, first_download
            )
        signature = self._sign(result_id, expires)
        return f"{RESULTS_PREFIX}{result_id}.jpg?expires={expires:.3f}&signature={signature}"

    def _lookup(self, result_id: str, expires: str, signature: str) -> _StoredResult | str:
        """The result, or why it is not served: "missing", "forbidden" or "expired"."""
        with self._lock:
            stored = self._state.results.get(result_id)
            self._state.result_downloads += stored is not None
        if stored is None:
            return "missing"
        if not hmac.compare_digest(signature, self._sign(result_id, stored.expires)):
            return "forbidden"
        if f"{stored.expires:.3f}" != expires:
            return "forbidden"
        if self._clock() > stored.expires:
            with self._lock:
                self._state.results.pop(result_id, None)
            return "expired"  # like the real one-hour URLs
        return stored

    def _sign(self, result_id: str, expires: float) -> str:
        message = f"{result_id}:{expires:.3f}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._wake.wait(seconds)

    def _stop_event(self) -> threading.Event:
        """Set by the next stop() or reset(): a long answer being sent gives up then."""
        return self._wake

    def _hold(self, connection: socket.socket, max_seconds: float) -> bool:
        """Hold a request until released (True), or until its client leaves, the stand-in
        stops or `max_seconds` pass (False)."""
        wake, release = self._wake, self._release
        deadline = time.monotonic() + max_seconds
        self._count_held("held")
        while not (wake.is_set() or release.is_set()) and time.monotonic() < deadline:
            readable, _, _ = select.select([connection], [], [], 0.05)
            if readable and _peer_closed(connection):
                self._count_held("abandoned")
                return False
        return release.is_set()

    def _count_held(self, field_name: Literal["held", "abandoned"]) -> None:
        with self._held_changed:
            setattr(self._state, field_name, getattr(self._state, field_name) + 1)
            self._held_changed.notify_all()


def _peer_closed(connection: socket.socket) -> bool:
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:  # reset by the peer
        return True


def result_size(width: int, height: int) -> tuple[int, int]:
    """Near 1 MP with the input's aspect, sides multiples of 32: the reference pipeline's
    `calculate_dimensions(1024 * 1024, width / height)`. Our assumption for the service."""
    ratio = width / height
    result_width = math.sqrt(RESULT_AREA * ratio)
    result_height = result_width / ratio
    return max(32, round(result_width / 32) * 32), max(32, round(result_height / 32) * 32)


def restore_image(data: bytes) -> bytes:
    """A visibly "restored" JPEG near 1 MP: cheap, deterministic Pillow filters only."""
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    image = image.resize(result_size(*image.size), Image.Resampling.BICUBIC)
    image = image.filter(ImageFilter.MedianFilter(3))  # dust and speckle
    image = _neutral_balance(image)  # old prints drift warm: pull the channels back together
    image = ImageOps.autocontrast(image, cutoff=1)  # faded prints lose their blacks and whites
    image = image.filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=3))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _drifted(restored: bytes, behaviour: Behaviour | None) -> bytes:
    """The result as a zooming or face-replacing behaviour changes it."""
    if behaviour is None or behaviour.kind not in ("zoomed", "face_replaced"):
        return restored
    from photo_restore_tools import faithfulness_samples as samples

    with Image.open(io.BytesIO(restored)) as opened:
        image = opened.convert("RGB")
    if behaviour.kind == "zoomed":
        return samples.jpeg(samples.zoomed(image, *behaviour.zoom))
    if not samples.face_boxes(image):
        logger.warning("stand-in: no face to replace in this result; sent unchanged")
        return restored
    return samples.jpeg(samples.replace_face(image, samples.photo("grace_hopper")))


def _neutral_balance(image: Image.Image) -> Image.Image:
    # Grey-world balance, halfway only, so the change is visible but not garish.
    means = [sum(i * n for i, n in enumerate(h)) / max(1, sum(h)) for h in _channel_hists(image)]
    grey = sum(means) / 3
    scales = [1 + 0.5 * (grey / m - 1) if m > 0 else 1.0 for m in means]
    lut = [min(255, round(i * s)) for s in scales for i in range(256)]
    return image.point(lut)


def _channel_hists(image: Image.Image) -> list[list[int]]:
    hist = image.histogram()
    return [hist[0:256], hist[256:512], hist[512:768]]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _error_answer(status: int, message: str | None, code: int | None = None) -> tuple[bytes, str]:
    """The body and content type the service answers `status` with."""
    text = message or _DEFAULT_MESSAGES.get(status, f"HTTP {status}")
    if status in _PLAIN_TEXT_STATUSES:
        return text.encode(), "text/plain; charset=utf-8"
    payload: dict[str, Any] = {"message": text, "data": None}
    if status != 429:  # a 429 carries no code
        payload = {"code": code or _DEFAULT_CODES.get(status, 50000 + status), **payload}
    return json.dumps(payload).encode(), "application/json"


def _validate(body: object) -> dict[str, Any]:
    """The request as the documented contract of its model accepts it, or _BadRequest."""
    if not isinstance(body, dict):
        raise _BadRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("model is required")
    if model not in DOCUMENTED_MODELS:
        raise _BadRequest("Model does not exist. Please check it carefully.", MODEL_DOES_NOT_EXIST)
    accepted, guidance_field, low, high = DOCUMENTED_MODELS[model]
    for name in sorted(set(body) - accepted):
        raise _BadRequest(f"{name} is not supported by {model}")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _BadRequest("prompt is required and must not be empty")
    image = body.get("image")
    if not isinstance(image, str) or not image:
        raise _BadRequest("image is required for image editing models")
    _check_range(body, "num_inference_steps", 1, 100, integer=True)
    _check_range(body, guidance_field, low, high, integer=False)
    _check_range(body, "seed", 0, MAX_SEED, integer=True)
    _check_range(body, "batch_size", 1, 4, integer=True)
    negative = body.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        raise _BadRequest("negative_prompt must be a string")
    return body


def _check_range(
    body: dict[str, Any], name: str, low: float, high: float, *, integer: bool
) -> None:
    if name not in body:
        return
    value = body[name]
    kind_ok = _is_int(value) if integer else _is_number(value)
    if not kind_ok or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise _BadRequest(f"{name} must be {kind} in [{low:g}, {high:g}]")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _load_input(image: str) -> bytes:
    """The input image from a data URI or an http(s) URL (a presigned URL of the local S3)."""
    if image.startswith("data:"):
        header, sep, payload = image.partition(",")
        if not sep or not header.endswith(";base64"):
            raise _BadRequest("image data URI must be base64 encoded")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _BadRequest(f"image data URI is not valid base64: {exc}") from exc
    if not image.startswith(("http://", "https://")):
        raise _BadRequest("image must be an http(s) URL or a data URI")
    try:
        with httpx.stream("GET", image, timeout=10.0, follow_redirects=True) as response:
            if response.status_code != 200:
                raise _BadRequest(f"failed to download image: HTTP {response.status_code}")
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_INPUT_BYTES:
                    raise _BadRequest("image is too large")
            return bytes(data)
    except httpx.HTTPError as exc:
        raise _BadRequest(f"failed to download image: {exc}") from exc


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects from a real API
    server_version = "SiliconFlowStandIn/1"

    @property
    def standin(self) -> SiliconFlowStandIn:
        return self.server.standin

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        if path.startswith(RESULTS_PREFIX) and path.endswith(".jpg"):
            found = self.standin._lookup(
                path[len(RESULTS_PREFIX) : -len(".jpg")],
                query.get("expires", [""])[0],
                query.get("signature", [""])[0],
            )
            if isinstance(found, _StoredResult):
                first, found.first_download = found.first_download, None
                if first is not None and first.kind == "result_error":
                    self._send(first.status, b"result unavailable", "text/plain; charset=utf-8")
                    return
                if first is not None and first.kind == "slow_result":
                    self.standin._sleep(first.seconds)
                self._send(200, found.body, found.content_type)
                return
            if found in ("forbidden", "expired"):
                reason = "Request has expired" if found == "expired" else "Signature mismatch"
                self._send(403, reason.encode(), "text/plain; charset=utf-8")
                return
        self._send_error(404)

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True
            self._send_error(413, "request body too large")
            return
        raw = self.rfile.read(length)
        if path != GENERATIONS_PATH:
            self._send_error(404)
            return
        body: object
        try:
            body = json.loads(raw)
        except ValueError:
            body = None  # _validate answers 400 for it
        self.standin._record(
            body if isinstance(body, dict) else {"_raw": raw[:200].decode("utf-8", "replace")}
        )
        if not self._authorised():
            self._send_error(401)
            return
        behaviour = self.standin._next_behaviour()
        if behaviour is not None and self._short_circuit(behaviour):
            return
        if not self.standin._admit_image():
            self._send_error(429, _DEFAULT_MESSAGES[429])
            return
        try:
            request = _validate(body)
            started = time.monotonic()
            restored = _drifted(restore_image(_load_input(request["image"])), behaviour)
        except _BadRequest as exc:
            self._send_error(400, str(exc), exc.code)
            return
        except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
            self._send_error(400, f"image could not be decoded: {exc}")
            return
        extra = behaviour.seconds if behaviour and behaviour.kind == "delay" else 0.0
        self.standin._sleep(self.standin.latency_seconds + extra)
        self._succeed(request, restored, behaviour, time.monotonic() - started)

    def _authorised(self) -> bool:
        scheme, _, key = (self.headers.get("Authorization") or "").partition(" ")
        key = key.strip()
        if scheme != "Bearer" or not key:
            return False
        return self.standin.api_key is None or key == self.standin.api_key

    def _short_circuit(self, behaviour: Behaviour) -> bool:
        if behaviour.kind == "rate_limited":
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
            self._send_error(429, behaviour.message, headers=headers)
        elif behaviour.kind == "error":
            self._send_error(behaviour.status, behaviour.message, behaviour.code)
        elif behaviour.kind == "hang":
            self.standin._sleep(behaviour.seconds)
            self.close_connection = True  # drop it without an answer
        elif behaviour.kind == "held":
            if self.standin._hold(self.connection, behaviour.seconds):
                return False  # released: answered as usual
            self.close_connection = True
        elif behaviour.kind == "malformed_body":
            self._send(200, b"<html><body>upstream hiccup</body></html>", "text/html")
        else:
            return False
        return True

    def _succeed(
        self,
        request: dict[str, Any],
        restored: bytes,
        behaviour: Behaviour | None,
        elapsed: float,
    ) -> None:
        kind = behaviour.kind if behaviour else None
        if kind == "result_url" and behaviour is not None and behaviour.url is not None:
            images = [{"url": behaviour.url}]
        elif kind == "empty_images":
            images = []
        else:
            stored = b"this is not an image" if kind == "not_an_image_result" else restored
            first = behaviour if kind in ("result_error", "slow_result") else None
            path = self.standin._store(stored, first_download=first)
            images = [{"url": f"{self._root_url()}{path}"}]
        seed = request.get("seed")
        answer = {
            "images": images,
            "timings": {"inference": round(elapsed, 3)},
            "seed": seed if seed is not None else random.randint(0, MAX_SEED),
        }
        if kind == "drip" and behaviour is not None:
            self._drip(json.dumps(answer).encode(), behaviour.seconds)
            return
        self._send_json(200, answer)

    def _drip(self, body: bytes, seconds_per_byte: float) -> None:
        """The whole answer one byte at a time, until sent or the client hangs up."""
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{TRACE_ID_HEADER}: ti_{uuid.uuid4().hex}\r\n\r\n"
        ).encode()
        self.close_connection = True
        answer, stopped = head + body, self.standin._stop_event()
        try:
            for index in range(len(answer)):
                self.wfile.write(answer[index : index + 1])
                self.wfile.flush()
                if stopped.wait(seconds_per_byte):
                    return
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up (its deadline)

    def _root_url(self) -> str:
        if self.standin.public_base_url:
            return self.standin.public_base_url
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.standin.root_url

    def _send_json(
        self, status: int, payload: object, headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_error(
        self,
        status: int,
        message: str | None = None,
        code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body, content_type = _error_answer(status, message, code)
        self._send(status, body, content_type, headers)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header(TRACE_ID_HEADER, f"ti_{uuid.uuid4().hex}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its read timeout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=STARTUP_NOTICE)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--api-key", default=None, help="require this key (default: any)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--public-base-url", default=None, help="base used in result URLs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    standin = SiliconFlowStandIn(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        latency_seconds=args.latency,
        public_base_url=args.public_base_url,
    )
    standin.start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()


if __name__ == "__main__":
    main()

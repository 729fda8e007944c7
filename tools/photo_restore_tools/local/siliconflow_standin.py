"""Offline stand-in for SiliconFlow's image-edit API: implements the HTTP contract with cheap Pillow
filters, for tests and the local stack. It is NOT the Qwen-Image-Edit model."""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import io
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx
from PIL import Image, ImageFilter, ImageOps

logger = logging.getLogger(__name__)

TRACE_ID_HEADER = "x-siliconcloud-trace-id"
GENERATIONS_PATH = "/v1/images/generations"
RESULTS_PREFIX = "/results/"
MAX_REQUEST_BYTES = 64 * 1024 * 1024
MAX_INPUT_BYTES = 50 * 1024 * 1024
MAX_SEED = 9_999_999_999
MEDIAN_MAX_PIXELS = 4_000_000
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

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = None) -> Behaviour:
        """429; `retry_after` is sent as given (seconds or an HTTP-date), no header when None."""
        header = None
        if retry_after is not None:
            header = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
        return cls(kind="rate_limited", status=429, retry_after=header)

    @classmethod
    def error(cls, status: int, message: str | None = None) -> Behaviour:
        return cls(kind="error", status=status, message=message)

    @classmethod
    def delay(cls, seconds: float) -> Behaviour:
        """Wait, then succeed."""
        return cls(kind="delay", seconds=seconds)

    @classmethod
    def hang(cls, seconds: float) -> Behaviour:
        """Say nothing for `seconds`, then drop the connection (triggers client read timeouts)."""
        return cls(kind="hang", seconds=seconds)

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


_DEFAULT_MESSAGES = {
    400: "Invalid request parameters",
    401: "Invalid token",
    403: "Forbidden: this API key is not permitted to use the model",
    429: "Request was rejected due to rate limiting. Please try again later.",
    500: "Internal server error",
    502: "Bad gateway",
    503: "The model is overloaded. Please try again later.",
    504: "Gateway timeout",
}
_DEFAULT_CODES = {400: 20015, 401: 20001, 403: 30011, 429: 50603, 503: 50505}


class _BadRequest(Exception):
    pass


@dataclass
class _StoredResult:
    body: bytes
    content_type: str
    created: float


@dataclass
class _State:
    behaviours: collections.deque[Behaviour] = field(default_factory=collections.deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, _StoredResult] = field(default_factory=dict)


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.latency_seconds = latency_seconds
        self.result_ttl_seconds = result_ttl_seconds
        # Result URLs use this, else the Host the request came in on (reachable by that caller).
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self._clock = clock
        self._lock = threading.Lock()
        self._state = _State()
        # Set by stop()/reset() so sleeping delay/hang handlers end at once.
        self._wake = threading.Event()
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
    def pending_behaviours(self) -> int:
        with self._lock:
            return len(self._state.behaviours)

    def reset(self) -> None:
        """Forget queued behaviours, recorded requests and stored results; wake sleepers."""
        with self._lock:
            self._state = _State()
        self._wake.set()
        self._wake = threading.Event()

    # --- used by the handler ---------------------------------------------------------------

    def _record(self, body: dict[str, Any]) -> None:
        shown = dict(body)
        image = shown.get("image")
        if isinstance(image, str) and len(image) > 80:
            shown["image"] = f"{image[:60]}...({len(image)} chars)"
        with self._lock:
            self._state.requests.append(shown)

    def _next_behaviour(self) -> Behaviour | None:
        with self._lock:
            return self._state.behaviours.popleft() if self._state.behaviours else None

    def _store(self, body: bytes, content_type: str = "image/jpeg") -> str:
        result_id = uuid.uuid4().hex
        with self._lock:
            self._state.results[result_id] = _StoredResult(body, content_type, self._clock())
        return result_id

    def _lookup(self, result_id: str) -> _StoredResult | None:
        with self._lock:
            stored = self._state.results.get(result_id)
            if stored is not None and self._clock() - stored.created > self.result_ttl_seconds:
                del self._state.results[result_id]  # expired, like the real one-hour URLs
                return None
            return stored

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._wake.wait(seconds)


def restore_image(data: bytes) -> bytes:
    """A visibly "restored" JPEG of the same size: cheap, deterministic Pillow filters only."""
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    # Dust and speckle; a median costs ~2 s on a 12 MP photo, so big ones get a cheap smoothing.
    small = image.width * image.height <= MEDIAN_MAX_PIXELS
    image = image.filter(ImageFilter.MedianFilter(3) if small else ImageFilter.SMOOTH)
    image = _neutral_balance(image)  # old prints drift warm: pull the channels back together
    image = ImageOps.autocontrast(image, cutoff=1)  # faded prints lose their blacks and whites
    image = image.filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=3))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


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


def _error_body(status: int, message: str | None) -> dict[str, Any]:
    return {
        "code": _DEFAULT_CODES.get(status, 50000 + status),
        "message": message or _DEFAULT_MESSAGES.get(status, f"HTTP {status}"),
        "data": None,
    }


def _validate(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _BadRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("model is required")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _BadRequest("prompt is required and must not be empty")
    image = body.get("image")
    if not isinstance(image, str) or not image:
        raise _BadRequest("image is required for image editing models")
    if "image_size" in body:
        raise _BadRequest(f"image_size is not supported by {model}")
    steps = body.get("num_inference_steps", 20)
    if not _is_int(steps) or not 1 <= steps <= 100:
        raise _BadRequest("num_inference_steps must be an integer in [1, 100]")
    guidance = body.get("guidance_scale", 7.5)
    if not _is_number(guidance) or not 0 <= guidance <= 20:
        raise _BadRequest("guidance_scale must be a number in [0, 20]")
    seed = body.get("seed")
    if seed is not None and (not _is_int(seed) or not 0 <= seed <= MAX_SEED):
        raise _BadRequest(f"seed must be an integer in [0, {MAX_SEED}]")
    return body


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
        path = self.path.split("?", 1)[0]
        if path.startswith(RESULTS_PREFIX) and path.endswith(".jpg"):
            stored = self.standin._lookup(path[len(RESULTS_PREFIX) : -len(".jpg")])
            if stored is not None:
                self._send(200, stored.body, stored.content_type)
                return
        self._send_json(404, _error_body(404, "not found"))

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True
            self._send_json(413, _error_body(413, "request body too large"))
            return
        raw = self.rfile.read(length)
        if path != GENERATIONS_PATH:
            self._send_json(404, _error_body(404, "not found"))
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
            self._send_json(401, _error_body(401, None))
            return
        behaviour = self.standin._next_behaviour()
        if behaviour is not None and self._short_circuit(behaviour):
            return
        try:
            request = _validate(body)
            started = time.monotonic()
            restored = restore_image(_load_input(request["image"]))
        except _BadRequest as exc:
            self._send_json(400, _error_body(400, str(exc)))
            return
        except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
            self._send_json(400, _error_body(400, f"image could not be decoded: {exc}"))
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
            self._send_json(429, _error_body(429, behaviour.message), headers)
        elif behaviour.kind == "error":
            self._send_json(behaviour.status, _error_body(behaviour.status, behaviour.message))
        elif behaviour.kind == "hang":
            self.standin._sleep(behaviour.seconds)
            self.close_connection = True  # drop it without an answer
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
            if kind == "not_an_image_result":
                result_id = self.standin._store(b"this is not an image", "image/jpeg")
            else:
                result_id = self.standin._store(restored)
            images = [{"url": f"{self._root_url()}{RESULTS_PREFIX}{result_id}.jpg"}]
        seed = request.get("seed")
        self._send_json(
            200,
            {
                "images": images,
                "timings": {"inference": round(elapsed, 3)},
                "seed": seed if seed is not None else random.randint(0, MAX_SEED),
            },
        )

    def _root_url(self) -> str:
        if self.standin.public_base_url:
            return self.standin.public_base_url
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.standin.root_url

    def _send_json(
        self, status: int, payload: object, headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

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

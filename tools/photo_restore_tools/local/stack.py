"""The Docker-free local stack: Postgres, moto S3/SQS, SiliconFlow (stand-in or real) and the four
Lambda handlers wired as on AWS; `photo-restore demo` and `photo-restore serve` run on it."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, ClassVar, TextIO

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine

from photo_restore import aws, wiring, worker_wiring
from photo_restore.attempts import Attempt, AttemptState
from photo_restore.db import SslMode, create_db_engine
from photo_restore.lifecycle import ingest_wiring
from photo_restore.lifecycle import wiring as lifecycle
from photo_restore.photos import Photo
from photo_restore.preprocess import PreprocessLimits
from photo_restore.repository import SqlRepository
from photo_restore.settings import Settings
from photo_restore.status import PhotoStatus
from photo_restore_tools.local.c2pa_credentials import local_c2pa_settings
from photo_restore_tools.local.direct_upload import UploadRefused, upload_directly
from photo_restore_tools.local.event_source import LocalLambdaContext, SqsEventSource
from photo_restore_tools.local.functions import (
    functions_dir,
    load_handler_module,
    settings_environment,
)
from photo_restore_tools.local.http_gateway import (
    LOCAL_CORS_ORIGINS,
    HttpGateway,
    http_api_event,
    make_token,
)
from photo_restore_tools.local.photos import (
    DEMO_USER_EMAIL,
    DEMO_USER_ID,
    UnsupportedUpload,
    UploadedPhoto,
    sample_photo,
    sniff_mime_type,
)
from photo_restore_tools.local.services import (
    embedded_postgres,
    moto_server,
    provision,
    use_local_aws,
)
from photo_restore_tools.local.siliconflow_standin import SiliconFlowStandIn

logger = logging.getLogger(__name__)

HANDLERS = ("api", "worker", "dlq", "sweeper", "ingest")
STANDIN_API_KEY = "local-standin-key"
STANDIN_NOTICE = "offline stand-in, not the Qwen-Image-Edit model"
# Short enough that a crashed local delivery comes back soon; the real SiliconFlow can take a
# minute and more, so then the message must stay hidden for a whole worker run.
STANDIN_VISIBILITY_SECONDS = 30
REAL_VISIBILITY_SECONDS = 360
MAX_RECEIVE_COUNT = 3
# Backoff after transient failures, shorter than production's so a demo shows the retry.
DEMO_RETRY_DELAYS_SECONDS = [2, 5, 10]
SWEEP_INTERVAL_SECONDS = 60.0
DEMO_TIMEOUT_SECONDS = 120.0
TOKEN_TTL_SECONDS = 24 * 3600
# What `photo-restore demo` writes into its output folder (and clears there first).
DEMO_FILES = ("original.", "preprocessed.jpg", "restored.jpg")


_ACTIVE_LOCK = threading.Lock()


def _release_active() -> None:
    with _ACTIVE_LOCK:
        LocalStack._active = False


class LocalStack:
    """Context manager: everything started on enter is stopped on exit, environment restored.

    `database_url` / `aws_endpoint_url` None means start an embedded Postgres / a moto server;
    `siliconflow_api_key` None means the offline stand-in instead of the real SiliconFlow.
    """

    _active: ClassVar[bool] = False

    def __init__(
        self,
        *,
        database_url: str | None = None,
        database_ssl_mode: SslMode = "disable",
        aws_endpoint_url: str | None = None,
        siliconflow_api_key: str | None = None,
        siliconflow_base_url: str | None = None,
        sweep_interval_seconds: float | None = None,
        log_level: str = "WARNING",
        functions: Path | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._on_event = on_event
        self._database_url = database_url
        self._database_ssl_mode: SslMode = database_ssl_mode
        self._aws_endpoint_url = aws_endpoint_url
        self._real_api_key = siliconflow_api_key or None
        self._real_base_url = siliconflow_base_url
        self._sweep_interval = sweep_interval_seconds
        self._log_level = log_level
        self._functions = functions
        self._exit: ExitStack | None = None
        self._api_lock = threading.Lock()
        self._stop = threading.Event()
        self.handlers: dict[str, ModuleType] = {}
        self.standin: SiliconFlowStandIn | None = None
        self.database_description = ""
        self.aws_endpoint = ""
        self.owned_ports: list[int] = []  # ports of servers this stack started

    @classmethod
    def from_environment(cls, **options: Any) -> LocalStack:
        """DATABASE_URL, AWS_ENDPOINT_URL and SILICONFLOW_API_KEY pick existing services."""
        modes: dict[str, SslMode] = {"verify": "verify", "require": "require"}
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            # A local DATABASE_URL rarely speaks TLS; DATABASE_SSL_MODE asks for it.
            database_ssl_mode=modes.get(os.environ.get("DATABASE_SSL_MODE", ""), "disable"),
            aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
            siliconflow_api_key=os.environ.get("SILICONFLOW_API_KEY") or None,
            siliconflow_base_url=os.environ.get("SILICONFLOW_BASE_URL") or None,
            **options,
        )

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        with _ACTIVE_LOCK:
            # Settings live in os.environ and wiring's caches: one stack per process only.
            if LocalStack._active:
                raise RuntimeError("a LocalStack is already running in this process")
            LocalStack._active = True
        self._exit = ExitStack()
        self._exit.callback(_release_active)
        try:
            self._start(self._exit)
        except BaseException:
            self._exit.close()
            self._exit = None
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        exit_stack, self._exit = self._exit, None
        if exit_stack is not None:
            exit_stack.close()

    def _start(self, stack: ExitStack) -> None:
        saved = dict(os.environ)
        stack.callback(_restore_environment, saved)
        scratch = tempfile.mkdtemp(prefix="photo-restore-local-")
        stack.callback(shutil.rmtree, scratch, ignore_errors=True)
        # moto's server logs every request; keep the output about the pipeline.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

        if self._database_url is None:
            database_url = stack.enter_context(embedded_postgres())
            self.database_description = "embedded Postgres (temporary)"
        else:
            database_url = self._database_url
            self.database_description = "DATABASE_URL"
        if self._aws_endpoint_url is None:
            self.aws_endpoint = stack.enter_context(moto_server())
            self.owned_ports.append(int(self.aws_endpoint.rsplit(":", 1)[1]))
            name = "photo-restore-local"
        else:
            self.aws_endpoint = self._aws_endpoint_url
            name = f"photo-restore-local-{uuid.uuid4().hex[:8]}"  # a shared endpoint
        use_local_aws(self.aws_endpoint)
        visibility = REAL_VISIBILITY_SECONDS if self._real_api_key else STANDIN_VISIBILITY_SECONDS
        resources = provision(
            name=name, visibility_timeout_seconds=visibility, max_receive_count=MAX_RECEIVE_COUNT
        )

        overrides: dict[str, Any] = {
            "database_url": SecretStr(database_url),
            "database_url_parameter": None,
            "database_ssl_mode": self._database_ssl_mode,
            **resources.settings_fields(),
            "visibility_timeout_seconds": visibility,
            "max_receive_count": MAX_RECEIVE_COUNT,
            "transient_retry_delays_seconds": DEMO_RETRY_DELAYS_SECONDS,
            # The four handlers and the gateway's threads share this process, unlike on Lambda.
            "database_pool_size": 4,
            "siliconflow_api_key_parameter": None,
        }
        if self._real_api_key:
            overrides |= {
                "siliconflow_api_key": SecretStr(self._real_api_key),
                # SiliconFlow cannot reach a local S3, so the image travels in the request.
                "image_transport": "data_uri",
                "siliconflow_allow_private_urls": False,
            }
            if self._real_base_url:
                overrides["siliconflow_base_url"] = self._real_base_url
        else:
            self.standin = SiliconFlowStandIn().start()
            stack.callback(self.standin.stop)
            self.owned_ports.append(self.standin.port)
            overrides |= {
                "siliconflow_api_key": SecretStr(STANDIN_API_KEY),
                "siliconflow_base_url": self.standin.base_url,
                "image_transport": "presigned_url",
                # The stand-in answers with 127.0.0.1 result URLs: allow them locally only.
                "siliconflow_allow_private_urls": True,
            }
        overrides |= local_c2pa_settings()
        self.settings = Settings(**overrides)

        # Handlers read their settings from the environment, as on Lambda.
        for key, value in settings_environment(self.settings).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.environ |= {
            "POWERTOOLS_METRICS_NAMESPACE": "PhotoRestoreLocal",
            "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines would drown the output
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": self._log_level,
        }
        wiring.reset()
        stack.callback(wiring.reset)  # disposes the handlers' engine, forgets these settings

        self.engine: Engine = create_db_engine(
            database_url, ssl_mode=self._database_ssl_mode, pool_size=2
        )
        stack.callback(self.engine.dispose)
        self.repository = SqlRepository(self.engine)
        self.repository.create_schema()
        self.s3: Any = aws.s3_client()
        folder = self._functions or functions_dir()
        self.handlers = {name: load_handler_module(name, folder) for name in HANDLERS}
        # Build the shared parts now, on this thread: @cache is not a lock, and pollers and
        # gateway threads would otherwise race to build them.
        wiring.restore_requests()
        worker_wiring.restore_run()
        wiring.restore_giveup()
        ingest_wiring.ingest()
        lifecycle.uploads()

        self._stop.clear()
        stack.callback(self._stop.set)
        sources = [
            SqsEventSource(
                sqs=aws.sqs_client(),
                queue_url=queue_url,
                handler=self.handlers[name].lambda_handler,
                function_name=f"photo-restore-{name}",
                wait_seconds=1,
            )
            for name, queue_url in (
                ("worker", self.settings.queue_url),
                ("dlq", self.settings.dlq_url),
                # moto's S3 notifications of created originals, as on AWS.
                ("ingest", resources.ingest_queue_url),
            )
        ]
        for source in sources:
            source.start()
        stack.callback(_stop_all, sources)
        if self._on_event is not None:
            # What a subscriber of the bus receives: the rule's queue, read as events arrive.
            events = threading.Thread(
                target=self._event_loop,
                args=(resources.events_queue_url, self._on_event),
                name="events",
                daemon=True,
            )
            events.start()
            stack.callback(events.join, 10)
            stack.callback(self._stop.set)
        if self._sweep_interval:
            sweeper = threading.Thread(
                target=self._sweep_loop, args=(self._sweep_interval,), name="sweeper", daemon=True
            )
            sweeper.start()
            stack.callback(sweeper.join, 10)
            stack.callback(self._stop.set)

    def _event_loop(self, queue_url: str, on_event: Callable[[dict[str, Any]], None]) -> None:
        sqs = aws.sqs_client()
        while not self._stop.is_set():
            try:
                answer = sqs.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
                for message in answer.get("Messages", []):
                    on_event(json.loads(message["Body"]))
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            except Exception:
                if not self._stop.is_set():
                    logger.exception("reading published events failed")
                    self._stop.wait(1)

    def _sweep_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.sweep()
            except Exception:
                logger.exception("sweeper run failed")

    # --- using it --------------------------------------------------------------------------

    @property
    def uses_standin(self) -> bool:
        return self.standin is not None

    @property
    def siliconflow_description(self) -> str:
        if self.standin is not None:
            return f"{STANDIN_NOTICE} ({self.standin.base_url})"
        return f"the real SiliconFlow API at {self.settings.siliconflow_base_url}"

    @property
    def max_upload_bytes(self) -> int:
        return self.settings.max_original_bytes

    def invoke_api(self, event: dict[str, Any]) -> Any:
        """One API invocation at a time: the resolver keeps the current event in a global,
        as a Lambda container may, so concurrent requests would read each other's caller."""
        with self._api_lock:
            return self.handlers["api"].lambda_handler(event, _context("photo-restore-api"))

    def call_api(
        self, method: str, path: str, *, owner_id: str, email: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        """The API handler behind an accepted JWT of `owner_id`; returns (status, JSON body)."""
        claims: dict[str, Any] = {"sub": owner_id, "aud": "authenticated", "role": "authenticated"}
        if email:
            claims["email"] = email
        event = http_api_event(
            method=method,
            raw_path=path,
            headers={"host": "localhost", "content-type": "application/json"},
            body=json.dumps(body).encode() if body is not None else None,
            claims=claims,
        )
        response = self.invoke_api(event)
        return int(response["statusCode"]), json.loads(response.get("body") or "null")

    def upload_photo(self, owner_id: str, data: bytes) -> UploadedPhoto:
        """The real flow (direct_upload): POST /uploads, the PUT to moto's S3, the ingest."""
        try:
            photo_id = upload_directly(self.call_api, owner_id, data)
        except UploadRefused as refused:
            raise UnsupportedUpload(str(refused)) from refused
        photo = self.photo(photo_id)
        return UploadedPhoto(
            id=photo.id,
            owner_id=photo.owner_id,
            original_key=photo.original_key,
            mime_type=photo.mime_type,
            size_bytes=photo.size_bytes,
        )

    def sweep(self) -> Any:
        """One scheduled run of the sweeper handler."""
        event = {"version": "0", "source": "aws.events", "detail-type": "Scheduled Event"}
        return self.handlers["sweeper"].lambda_handler(event, _context("photo-restore-sweeper"))

    def photo(self, photo_id: uuid.UUID) -> Photo:
        with self.repository.transaction() as tx:
            found = tx.photo(photo_id)
        assert found is not None, f"no photo {photo_id}"
        return found

    def attempt(self, attempt_id: uuid.UUID) -> Attempt:
        with self.repository.transaction() as tx:
            found = tx.attempt(attempt_id)
        assert found is not None, f"no attempt {attempt_id}"
        return found


def _stop_all(sources: list[SqsEventSource]) -> None:
    """Stop the pollers side by side: each may sit in a one-second long poll."""
    for source in sources:
        source.request_stop()
    for source in sources:
        source.stop()


def _context(function_name: str) -> LocalLambdaContext:
    return LocalLambdaContext(function_name=function_name, aws_request_id=str(uuid.uuid4()))


def _restore_environment(saved: dict[str, str]) -> None:
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so `with LocalStack()` still stops everything."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- photo-restore demo ----------------------------------------------------------------------


def run_demo(image: Path | None, out: Path, *, stream: TextIO | None = None) -> int:
    """Restore one image through the whole local pipeline; 0 only if the photo ended ready."""
    stream = stream or sys.stdout
    if image is None:
        data, label = sample_photo(), "the bundled sample photo"
    else:
        try:
            data, label = image.read_bytes(), str(image)
        except OSError as error:
            print(f"error: cannot read {image}: {error.strerror or error}", file=sys.stderr)
            return 2
        if sniff_mime_type(data) is None:
            print(f"error: {image} is not a supported image file", file=sys.stderr)
            return 2
    try:
        out.mkdir(parents=True, exist_ok=True)
        # A failed run must not leave the previous run's restoration looking like its own.
        for previous in out.glob("*"):
            if previous.is_file() and previous.name.startswith(DEMO_FILES):
                previous.unlink()
    except OSError as error:
        print(f"error: cannot create {out}: {error.strerror or error}", file=sys.stderr)
        return 2

    def say(text: str = "") -> None:
        print(text, file=stream, flush=True)

    say("starting the local stack (Postgres, moto S3/SQS, SiliconFlow, 4 handlers)...")
    try:
        with _sigterm_interrupts(), LocalStack.from_environment() as stack:
            return _demo(stack, data, label, out, say)
    except KeyboardInterrupt:
        say("interrupted; the local stack was stopped")
        return 130
    except (FileNotFoundError, RuntimeError) as error:  # no functions/ folder, a stack running
        print(f"error: {error}", file=sys.stderr)
        return 1


def _demo(stack: LocalStack, data: bytes, label: str, out: Path, say: Any) -> int:
    settings = stack.settings
    say(f"  database:    {stack.database_description}")
    say(f"  S3/SQS:      moto at {stack.aws_endpoint} (bucket {settings.bucket_name})")
    say(f"  SiliconFlow: {stack.siliconflow_description}")
    try:
        photo = stack.upload_photo(DEMO_USER_ID, data)
    except UnsupportedUpload as error:
        say(f"error: {error}")
        return 2
    (out / f"original{photo.extension}").write_bytes(data)
    say(f"uploaded {label} ({photo.size_bytes} bytes, {photo.mime_type}) as photo {photo.id}")
    say(f"  s3://{settings.bucket_name}/{photo.original_key}")

    requested = time.monotonic()
    status, body = stack.call_api(
        "POST", f"/photos/{photo.id}/restore", owner_id=DEMO_USER_ID, email=DEMO_USER_EMAIL
    )
    say(f"POST /photos/{photo.id}/restore -> {status} {json.dumps(body)}")
    if status != 202:
        return 1
    attempt_id = uuid.UUID(body["restore_attempt_id"])

    final = _follow(stack, photo.id, attempt_id, requested, say)
    if final is None:
        say(f"gave up waiting after {DEMO_TIMEOUT_SECONDS:.0f} s; the photo is still processing")
        return 1
    settled, attempt, ready_after = final
    outcome = attempt.state

    status, view = stack.call_api("GET", f"/photos/{photo.id}", owner_id=DEMO_USER_ID)
    say(f"GET /photos/{photo.id} -> {status}, status {view.get('status')!r}")
    started = time.perf_counter()
    from photo_restore.preprocess import preprocess_image

    try:
        prepared = preprocess_image(data, PreprocessLimits.from_settings(settings))
        (out / "preprocessed.jpg").write_bytes(prepared.image_bytes)
        preprocess_ms: float | None = (time.perf_counter() - started) * 1000
    except Exception as error:  # the worker already reported why; the demo still ends cleanly
        say(f"preprocessing failed here too: {error}")
        preprocess_ms = None
    if outcome is AttemptState.SUCCEEDED and view.get("restored_image_url"):
        # The presigned URL the API hands out, fetched as a client would.
        fetched = httpx.get(view["restored_image_url"], timeout=30)
        if fetched.status_code == 200:
            (out / "restored.jpg").write_bytes(fetched.content)
        else:
            say(f"fetching the restored image failed: HTTP {fetched.status_code}")
            outcome = AttemptState.FAILED

    say()
    say(f"status: {settled.status} (attempt {outcome.value})")
    _say_report(say, attempt, ready_after, preprocess_ms)
    written = sorted(p.name for p in out.iterdir() if p.is_file() and p.name.startswith(DEMO_FILES))
    say(f"wrote {', '.join(written)} to {out}")
    if stack.uses_standin:
        say(f"NOTE: SiliconFlow was the {STANDIN_NOTICE}: a few Pillow filters stand in for it.")
        say("      Set SILICONFLOW_API_KEY to restore with the real SiliconFlow API.")
    ok = settled.status is PhotoStatus.READY and outcome is AttemptState.SUCCEEDED
    return 0 if ok else 1


def _follow(
    stack: LocalStack, photo_id: uuid.UUID, attempt_id: uuid.UUID, requested: float, say: Any
) -> tuple[Photo, Attempt, float] | None:
    """Watch the rows until the attempt is settled; print each change. None on timeout."""
    last_status: str | None = PhotoStatus.UPLOADED
    last_state = AttemptState.PENDING
    last_transient: str | None = None
    deadline = requested + DEMO_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        photo = stack.photo(photo_id)
        attempt = stack.attempt(attempt_id)
        elapsed = time.monotonic() - requested
        if photo.status != last_status:
            say(f"[{elapsed:6.2f}s] photo {last_status} -> {photo.status}")
            last_status = photo.status
        transient = attempt.last_transient_error
        if transient and json.dumps(transient, sort_keys=True) != last_transient:
            last_transient = json.dumps(transient, sort_keys=True)
            say(
                f"[{elapsed:6.2f}s] attempt delivery failed: {transient.get('code')}: "
                f"{transient.get('message')} (SQS redelivers it)"
            )
        if attempt.state is not last_state:
            detail = attempt.restored_key or attempt.error
            say(f"[{elapsed:6.2f}s] attempt {attempt_id} {attempt.state.value}: {detail}")
            last_state = attempt.state
        if attempt.state is not AttemptState.PENDING and photo.status is not PhotoStatus.PROCESSING:
            return photo, attempt, elapsed
        time.sleep(0.1)
    return None


def _say_report(
    say: Any, attempt: Attempt, ready_after: float, preprocess_ms: float | None
) -> None:
    params = dict(attempt.params)
    if failure := attempt.error:
        say(f"error:  {failure.get('code')}: {failure.get('message')}")
    say("timings:")
    say(f"  request -> settled: {ready_after:.2f} s")
    inference = params.get("inference_time_seconds")
    if isinstance(inference, int | float):
        say(f"  inference (reported by SiliconFlow): {inference:.2f} s")
    shapes = params.get("preprocessed") or {}
    if preprocess_ms is not None:
        dims = ""
        if shapes:
            (ow, oh), (nw, nh) = shapes["original_dimensions"], shapes["submitted_dimensions"]
            dims = f", {ow}x{oh} -> {nw}x{nh}, resized={shapes['resized']}"
        say(f"  preprocessing (re-run here): {preprocess_ms:.0f} ms{dims}")
    if faithfulness := attempt.faithfulness:
        say(f"faithfulness: {faithfulness.get('verdict')}: {faithfulness.get('reason')}")
    say("attempt params:")
    say(json.dumps(params, indent=2, sort_keys=True, default=str))
    say()


# --- photo-restore serve ---------------------------------------------------------------------


# Libraries that log every request or command at INFO; embedded_postgres logs initdb's whole
# output (~40 lines) before the banner.
NOISY_LOGGERS = ("httpx", "botocore", "werkzeug", "embedded_postgres")


def serve_logging() -> None:
    """Request lines and warnings on stderr, as `sam local start-api` prints them."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_serve(host: str, port: int, *, stream: TextIO | None = None) -> int:
    """The local stack behind a local API Gateway until Ctrl-C or SIGTERM."""
    stream = stream or sys.stdout
    serve_logging()
    secret = os.environ.get("LOCAL_JWT_SECRET") or ""
    generated = not secret
    secret = secret or secrets.token_urlsafe(32)
    stack = LocalStack.from_environment(
        log_level="INFO",
        sweep_interval_seconds=SWEEP_INTERVAL_SECONDS,
        on_event=lambda event: print(describe_event(event), file=stream, flush=True),
    )
    try:
        gateway = HttpGateway(
            stack,
            jwt_secret=secret,
            host=host,
            port=port,
            jwt_issuer=os.environ.get("LOCAL_JWT_ISSUER") or None,
            cors_origins=local_cors_origins(),
        )
    except OSError as error:
        print(f"error: cannot listen on {host}:{port}: {error.strerror or error}", file=sys.stderr)
        return 2
    try:
        with _sigterm_interrupts():
            print("starting the local stack...", file=stream, flush=True)
            with stack:
                gateway.start()
                token = make_token(
                    secret, sub=DEMO_USER_ID, email=DEMO_USER_EMAIL, ttl_seconds=TOKEN_TTL_SECONDS
                )
                print(_serve_banner(stack, gateway, secret, generated, token), file=stream)
                stream.flush()
                try:
                    while True:
                        time.sleep(3600)
                finally:
                    gateway.stop()  # no request may reach a stack being torn down
    except KeyboardInterrupt:
        print("stopped", file=stream, flush=True)
    except (FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        gateway.stop()
    return 0


def local_cors_origins() -> tuple[str, ...]:
    """LOCAL_CORS_ALLOWED_ORIGINS (comma-separated, `*` matches any characters; empty turns
    CORS off), or the local dev servers' origins."""
    configured = os.environ.get("LOCAL_CORS_ALLOWED_ORIGINS")
    if configured is None:
        return LOCAL_CORS_ORIGINS
    return tuple(origin.strip() for origin in configured.split(",") if origin.strip())


def describe_event(event: dict[str, Any]) -> str:
    """One line per published event, as `photo-restore serve` prints them."""
    detail = event.get("detail") or {}
    code = detail.get("error_code")
    attempt = detail.get("restore_attempt_id")
    return (
        f"event {event.get('detail-type')}: photo {detail.get('photo_id')}"
        + (f" attempt {attempt}" if attempt else "")  # photo events name none
        + (f" ({code})" if code else "")
        + f"  {json.dumps(event)}"
    )


def _serve_banner(
    stack: LocalStack, gateway: HttpGateway, secret: str, generated: bool, token: str
) -> str:
    url = gateway.url
    auth = '-H "Authorization: Bearer $TOKEN"'
    origins = ", ".join(gateway.cors.allow_origins) if gateway.cors else "off"
    cors_line = f"{origins}  (LOCAL_CORS_ALLOWED_ORIGINS; deployed: CorsAllowedOrigins)"
    secret_line = (
        f"{secret}  (generated; set LOCAL_JWT_SECRET to choose one)"
        if generated
        else "from LOCAL_JWT_SECRET"
    )
    return f"""
photo-restore local API on {url}  (HTTP API + JWT authorizer, like sam local start-api)
  database:    {stack.database_description}
  S3/SQS:      moto at {stack.aws_endpoint} (bucket {stack.settings.bucket_name})
  events:      moto EventBridge bus {stack.settings.event_bus_name}; printed here as published
  SiliconFlow: {stack.siliconflow_description}
  JWT:         HS256, audience "authenticated"; secret: {secret_line}
  pollers:     worker, DLQ, ingest (S3 notifications); sweeper every {SWEEP_INTERVAL_SECONDS:.0f} s
  CORS:        {cors_line}

demo token (sub={DEMO_USER_ID}, valid 24 h):
  export TOKEN={token}

try it (README, "For a frontend": the same upload through POST /uploads and a presigned PUT):
  curl -s -X POST {auth} --data-binary @photo.jpg {url}/local/photos
  curl -s {auth} '{url}/photos?limit=20'
  curl -s -X POST {auth} -H 'Idempotency-Key: KEY' {url}/photos/PHOTO_ID/restore
  curl -s {auth} {url}/photos/PHOTO_ID
  curl -s -X DELETE {auth} {url}/photos/PHOTO_ID/restore
  curl -s {auth} '{url}/photos/PHOTO_ID/restores?limit=20'
  curl -s -X PUT {auth} -H 'content-type: application/json' \\
       -d '{{"restore_attempt_id": "ATTEMPT_ID"}}' {url}/photos/PHOTO_ID/selected-restore
  curl -s -X POST {auth} {url}/photos/PHOTO_ID/archive
  curl -s -X DELETE {auth} {url}/photos/PHOTO_ID

Ctrl-C stops everything."""

"""Lambda's Runtime API, emulated over real HTTP, for running the built handlers under
`awslambdaric` (the runtime interface client of Lambda's own Python images).

The client polls `GET /2018-06-01/runtime/invocation/next`, then answers each invocation with
`POST .../invocation/{id}/response` or `.../invocation/{id}/error`; an import failure is
`POST .../init/error`. The emulator records which endpoint each invocation ended on, so a test can
tell a handled answer (what Lambda passes to API Gateway or to the SQS event source) from an
invocation error (what counts in the function's `Errors` metric).
"""

from __future__ import annotations

import importlib.util
import json
import queue
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.helpers import built_artifact

PREFIX = "/2018-06-01/runtime"
# Long enough for a cold start on a loaded 2-core machine; a wait, never a margin under test.
INVOCATION_TIMEOUT_SECONDS = 120.0


@dataclass
class Invocation:
    """One event sent to the runtime and how the runtime ended it."""

    request_id: str
    event: dict[str, Any]
    ended: threading.Event = field(default_factory=threading.Event)
    endpoint: str | None = None  # "response" or "error"
    payload: Any = None
    error_type: str | None = None

    def wait(self, timeout: float = INVOCATION_TIMEOUT_SECONDS) -> Invocation:
        if not self.ended.wait(timeout):
            raise TimeoutError(f"the runtime never ended invocation {self.request_id}")
        return self


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A poll left open when the test killed the runtime: nothing to report."""


class RuntimeApiEmulator:
    """A Runtime API on loopback: `invoke(event)` queues an invocation for the next poll."""

    def __init__(self, function_arn: str = built_artifact.TEST_FUNCTION_ARN) -> None:
        self.function_arn = function_arn
        self.init_errors: list[dict[str, Any]] = []
        self.invocations: dict[str, Invocation] = {}
        self._pending: queue.Queue[Invocation] = queue.Queue()
        self._stopping = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        """What `AWS_LAMBDA_RUNTIME_API` holds: host:port, no scheme."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def __enter__(self) -> RuntimeApiEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, event: dict[str, Any]) -> Invocation:
        invocation = Invocation(request_id=str(uuid.uuid4()), event=event)
        self.invocations[invocation.request_id] = invocation
        self._pending.put(invocation)
        return invocation

    def _next_invocation(self) -> Invocation | None:
        """Blocks like the real endpoint until an event is queued (None once stopping)."""
        while not self._stopping.is_set():
            try:
                return self._pending.get(timeout=0.5)
            except queue.Empty:
                continue
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    self._answer(404, {"errorMessage": f"unknown path {self.path}"})
                    return
                invocation = emulator._next_invocation()
                if invocation is None:
                    self._answer(503, {"errorMessage": "the emulator is stopping"})
                    return
                deadline_ms = int((time.time() + 300) * 1000)
                body = json.dumps(invocation.event).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Lambda-Runtime-Aws-Request-Id", invocation.request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline_ms))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", emulator.function_arn)
                self.send_header(
                    "Lambda-Runtime-Trace-Id",
                    f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
                )
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                payload = json.loads(raw) if raw else None
                if self.path == f"{PREFIX}/init/error":
                    emulator.init_errors.append(payload or {})
                    self._answer(202, {"status": "OK"})
                    return
                parts = self.path.removeprefix(f"{PREFIX}/invocation/").split("/")
                invocation = emulator.invocations.get(parts[0]) if len(parts) == 2 else None
                if invocation is None or parts[1] not in ("response", "error"):
                    self._answer(404, {"errorMessage": f"unknown path {self.path}"})
                    return
                invocation.endpoint = parts[1]
                invocation.payload = payload
                invocation.error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                invocation.ended.set()
                self._answer(202, {"status": "OK"})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def runtime_client_path(scratch: Path) -> Path:
    """A directory holding only awslambdaric and what it imports, as Lambda's image has them
    beside the runtime: the function sees none of the venv's other packages."""
    target = scratch / "runtime-client"
    target.mkdir(parents=True, exist_ok=True)
    for module in ("awslambdaric", "runtime_client", "simplejson", "snapshot_restore_py"):
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, (
            f"{module} is not installed (pip install -e .[dev])"
        )
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        link = target / source.name
        if not link.exists():
            link.symlink_to(source, target_is_directory=source.is_dir())
    return target


class LambdaRuntime:
    """One container: `function`'s build output under awslambdaric, polling `emulator`."""

    def __init__(
        self,
        function: str,
        build_dir: Path,
        emulator: RuntimeApiEmulator,
        environment: dict[str, str],
        scratch: Path,
    ) -> None:
        paths = [str(p) for p in built_artifact.function_sys_path(function, build_dir)]
        paths.append(str(runtime_client_path(scratch)))
        handler = built_artifact.function_handler(function)
        bootstrap = (
            f"import sys\nsys.path[:0] = {paths!r}\n"
            "from awslambdaric.__main__ import main\n"
            f"main(['awslambdaric', {handler!r}])\n"
        )
        self.log = scratch / f"{function}-{uuid.uuid4().hex[:8]}.log"
        self._log_file = self.log.open("wb")
        self._process = subprocess.Popen(
            [built_artifact.base_python(), "-I", "-S", "-B", "-c", bootstrap],
            cwd=build_dir / function,
            env={
                **environment,
                "AWS_LAMBDA_RUNTIME_API": emulator.address,
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
                "_HANDLER": handler,
            },
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")

    def exit_code(self) -> int | None:
        return self._process.poll()

    def __enter__(self) -> LambdaRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.kill()
        self._process.wait(timeout=30)
        self._log_file.close()

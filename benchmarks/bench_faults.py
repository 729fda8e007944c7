"""Provider calls per ready restoration with a failure injected at each step after the call.

Each restoration gets one failure after SiliconFlow answered: the result download answering
503, the result download timing out, the S3 put of the restoration failing, the commit
failing (a Postgres trigger), or the worker process SIGKILLed during the download. It is run
twice: as the worker does now (the answer committed on arrival, a later delivery resumes at
the download) and, for comparison, re-calling the provider on every delivery (what it did
before). The figure is the number of provider calls (what the stand-in received) per ready
restoration: goal 1.00 at every step; the cost saved at the price per image beside it.

Real parts: embedded Postgres, moto over HTTP, the SiliconFlow stand-in, the worker handler
polled like Lambda's event source. A count, not a timing: the servers run in this process.

    .venv/bin/python benchmarks/bench_faults.py [--restorations 5] [--price-per-image 0.048]
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PIL import Image

# A third-party listing of SiliconFlow's per-image price for Qwen-Image-Edit (as in
# bench_throughput.py); pass yours with --price-per-image.
PRICE_PER_IMAGE_USD = 0.048
STEPS = (
    "none",
    "download_5xx",
    "download_timeout",
    "s3_put_error",
    "commit_error",
    "worker_killed",
)
# One delivery in a process of its own, killed during its result download.
WORKER_PROCESS = (
    "import sys\n"
    "from photo_restore import worker_wiring\n"
    "from photo_restore.queue import RestoreMessage\n"
    "worker_wiring.restore_run().run(RestoreMessage.model_validate_json(sys.argv[1]))\n"
)


def small_photo(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (60 + seed % 100, 90, 120)).save(out, format="JPEG")
    return out.getvalue()


@dataclass
class StepResult:
    step: str
    mode: str
    restorations: int
    ready: int
    provider_calls: int  # what the stand-in received

    @property
    def calls_per_ready(self) -> float:
        return self.provider_calls / self.ready if self.ready else float("nan")


@contextmanager
def re_calling(enabled: bool) -> Iterator[None]:
    """The worker as it was: every delivery calls the provider, whatever was answered before."""
    from photo_restore.restore_runs import RestoreRun

    if not enabled:
        yield
        return
    original = RestoreRun._usable_answer
    RestoreRun._usable_answer = lambda self, attempt: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        RestoreRun._usable_answer = original  # type: ignore[method-assign]


class Bench:
    """The local stack, a worker container, and one restoration at a time."""

    def __init__(self, stack: ExitStack, postgres_url: str) -> None:
        from pydantic import SecretStr

        from photo_restore.db import create_db_engine
        from photo_restore.repository import SqlRepository
        from photo_restore.settings import Settings
        from photo_restore_tools.local.services import moto_server, provision, use_local_aws
        from photo_restore_tools.local.siliconflow_standin import SiliconFlowStandIn

        endpoint = stack.enter_context(moto_server())
        use_local_aws(endpoint)
        self.standin = stack.enter_context(SiliconFlowStandIn())
        resources = provision(
            name=f"faults-{uuid.uuid4().hex[:12]}",
            visibility_timeout_seconds=30,
            max_receive_count=3,
        )
        self.settings = Settings(
            database_url=SecretStr(postgres_url),
            database_ssl_mode="disable",
            **resources.settings_fields(),  # type: ignore[arg-type]
            visibility_timeout_seconds=30,
            siliconflow_base_url=self.standin.base_url,
            siliconflow_api_key=SecretStr("bench"),
            siliconflow_allow_private_urls=True,
            image_transport="presigned_url",
            daily_restores_per_user=0,
            transient_retry_delays_seconds=[0],  # a failed delivery comes back at once
            result_download_timeout_seconds=2,  # the injected slow download ends in 2 s
            database_pool_size=4,
        )
        self.engine = create_db_engine(postgres_url, ssl_mode="disable", pool_size=4)
        stack.callback(self.engine.dispose)
        SqlRepository(self.engine).create_schema()
        self._use_environment()
        self._source = self._worker_source()

    def _use_environment(self) -> None:
        from photo_restore import wiring
        from photo_restore_tools.local.functions import settings_environment

        for name, value in settings_environment(self.settings).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        os.environ |= {
            "POWERTOOLS_METRICS_NAMESPACE": "PhotoRestoreBench",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "CRITICAL",
        }
        wiring.reset()

    def _worker_source(self) -> Any:
        import boto3

        from photo_restore_tools.local.event_source import SqsEventSource
        from photo_restore_tools.local.functions import functions_dir, load_handler_module

        worker = load_handler_module("worker", functions_dir())
        self.sqs, self.s3 = boto3.client("sqs"), boto3.client("s3")
        return SqsEventSource(
            sqs=self.sqs,
            queue_url=self.settings.queue_url,
            handler=worker.lambda_handler,
            function_name="worker",
            wait_seconds=0,
        )

    def restore(self, step: str, seed: int) -> tuple[bool, int]:
        """One restoration with `step`'s failure: (ended ready, provider calls it cost)."""
        from photo_restore.queue import RestoreMessage, RestoreQueue
        from photo_restore.repository import SqlRepository
        from photo_restore.restore_requests import Caller, RestoreRequests
        from photo_restore.storage import ObjectStorage
        from photo_restore_tools.local.faults import attempt_commit_fails_once
        from photo_restore_tools.local.photos import upload_photo
        from photo_restore_tools.local.siliconflow_standin import Behaviour

        calls_before = len(self.standin.requests)
        bucket = self.settings.bucket_name
        photo = upload_photo(
            self.engine, self.s3, bucket, owner_id=f"faults-{seed}", data=small_photo(seed)
        )
        requests = RestoreRequests(
            SqlRepository(self.engine),
            RestoreQueue(self.sqs, self.settings.queue_url),
            ObjectStorage(self.s3, bucket),
            self.settings,
        )
        accepted = requests.request_restore(Caller(photo.owner_id, None), photo.id).body
        attempt_id = accepted.restore_attempt_id
        message = RestoreMessage(photo_id=photo.id, restore_attempt_id=attempt_id)
        with ExitStack() as faults:
            if step == "download_5xx":
                self.standin.enqueue(Behaviour.result_error(503))
            elif step == "download_timeout":
                self.standin.enqueue(Behaviour.slow_result(60))
            elif step == "commit_error":
                faults.enter_context(attempt_commit_fails_once(self.engine, attempt_id))
            elif step == "s3_put_error":
                self._first_delivery_with_a_failing_put(message)
            elif step == "worker_killed":
                self.standin.enqueue(Behaviour.slow_result(60))
                self._first_delivery_killed(message)
            self._drain()
        with self.engine.connect() as conn:
            from sqlalchemy import select

            from photo_restore.models import photos

            status = conn.execute(select(photos.c.status).where(photos.c.id == photo.id))
            ready = status.scalar_one() == "ready"
        return ready, len(self.standin.requests) - calls_before

    def _drain(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        empty = 0
        while time.monotonic() < deadline:
            if self._source.poll_once().received:
                empty = 0
                continue
            empty = empty + 1 if self._queue_is_empty() else 0
            if empty == 2:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the queue did not drain in {timeout} s")

    def _queue_is_empty(self) -> bool:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.settings.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return all(int(v) == 0 for v in attributes.values())

    def _first_delivery_with_a_failing_put(self, message: Any) -> None:
        from photo_restore.errors import DependencyUnavailable
        from photo_restore.queue import RestoreQueue
        from photo_restore.repository import SqlRepository
        from photo_restore.storage import ObjectStorage
        from photo_restore.worker_wiring import build_restore_run

        s3, bucket = self.s3, self.settings.bucket_name

        class FirstRestoredPutFails(ObjectStorage):
            failed = False

            def write_jpeg(self, key: str, data: bytes) -> None:
                restored = not key.endswith((".before.jpg", ".thumb.jpg"))
                if restored and not self.failed:
                    self.failed = True
                    ObjectStorage(s3, bucket + "-missing").write_jpeg(key, data)
                super().write_jpeg(key, data)

        run = build_restore_run(
            self.settings,
            repository=SqlRepository(self.engine),
            storage=FirstRestoredPutFails(s3, bucket),
            queue=RestoreQueue(self.sqs, self.settings.queue_url),
            api_key="bench",
        )
        try:
            run.run(message)
        except DependencyUnavailable:
            return
        raise RuntimeError("the injected S3 put error did not happen")

    def _first_delivery_killed(self, message: Any) -> None:
        downloads = self.standin.result_downloads
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER_PROCESS, message.model_dump_json()], env=dict(os.environ)
        )
        try:
            wait_for(lambda: self.standin.result_downloads > downloads, "the result download")
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def run_step(bench: Bench, step: str, mode: str, restorations: int) -> StepResult:
    ready = calls = 0
    with re_calling(mode == "re-calling"):
        for index in range(restorations):
            ended_ready, cost = bench.restore(step, seed=index)
            ready += ended_ready
            calls += cost
    return StepResult(step, mode, restorations, ready, calls)


def show(results: list[StepResult], price: float) -> None:
    by_step: dict[str, dict[str, StepResult]] = {}
    for result in results:
        by_step.setdefault(result.step, {})[result.mode] = result
    print(
        "| failure injected after the call | ready | provider calls per ready restoration "
        "(goal 1.00) | re-calling on every delivery (before) | saved per 1,000 restorations "
        "that hit it |"
    )
    print("|---|---|---|---|---|")
    for step, modes in by_step.items():
        now, before = modes["resume"], modes["re-calling"]
        saved = (before.calls_per_ready - now.calls_per_ready) * price * 1000
        print(
            f"| {step} | {now.ready}/{now.restorations} | {now.calls_per_ready:.2f} | "
            f"{before.calls_per_ready:.2f} | ${saved:.2f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restorations", type=int, default=5, help="per step and mode")
    parser.add_argument("--price-per-image", type=float, default=PRICE_PER_IMAGE_USD)
    parser.add_argument("--steps", nargs="*", choices=STEPS, default=list(STEPS))
    args = parser.parse_args()

    import logging

    from photo_restore_tools.local.services import embedded_postgres

    logging.disable(logging.CRITICAL)  # the injected failures are logged as they happen
    print(
        f"{args.restorations} restorations per step and mode, ${args.price_per_image}/image, "
        f"{os.cpu_count()} cores, {datetime.now().date()}"
    )
    results = []
    with ExitStack() as stack:
        postgres_url = stack.enter_context(embedded_postgres())
        bench = Bench(stack, postgres_url)
        for step in args.steps:
            for mode in ("resume", "re-calling"):
                results.append(run_step(bench, step, mode, args.restorations))
        bench.standin.reset()  # wakes the stand-in's held downloads
    show(results, args.price_per_image)
    return 0


if __name__ == "__main__":
    sys.exit(main())

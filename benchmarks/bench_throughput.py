"""A load run under the provider's limit (issue 11): N restores of small photos through the
local stack, and what it achieved. A benchmark: it prints figures and ratios, it asserts nothing.

API handler -> moto SQS -> K worker processes (Lambda's event source with MaximumConcurrency K:
each process is one container, with its own pooled connection) -> the SiliconFlow stand-in,
which refuses with 429s past L images a minute (a sliding window). Postgres is the embedded
one, directly or through PgBouncer in transaction mode.

    .venv/bin/python benchmarks/bench_throughput.py                  # 300 photos, both routes
    .venv/bin/python benchmarks/bench_throughput.py --photos 60 --route direct --no-pacing

Printed per run: restorations per minute / L once warm (goal >= 0.95), messages in the DLQ
(goal 0), photos not ready (goal 0), p50/p95 from 202 to ready, peak Postgres connections
against the budget, the share of provider calls that were 429s (goal < 5 % with pacing), and
the cost of one restoration: Lambda GB-s (measured durations x the template's memory x the
price, plus the worker's wait for SiliconFlow's inference, which the stand-in does not take),
the S3/SQS/EventBridge requests, and the provider's price per image.

moto and the stand-in run in a process of their own (remote_services.py).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from remote_services import RemoteServices, remote_services  # noqa: E402 (beside this script)

# us-east-1, x86, on-demand (https://aws.amazon.com/lambda/pricing/, /s3/pricing/,
# /sqs/pricing/, /eventbridge/pricing/), beyond the free tiers.
GB_SECOND_USD = 0.0000166667
LAMBDA_REQUEST_USD = 0.20 / 1e6
S3_PUT_USD, S3_GET_USD = 0.005 / 1000, 0.0004 / 1000
SQS_REQUEST_USD = 0.40 / 1e6
EVENT_USD = 1.00 / 1e6
# A third-party listing of SiliconFlow's per-image price (therouter: "$0.048 / image, per-image
# flat fee on SiliconFlow"); SiliconFlow's own price page was not available: pass yours.
PRICE_PER_IMAGE_USD = 0.048
# The stand-in answers at once; SiliconFlow's inference takes 10-60 s (docs/siliconflow.md),
# which the worker waits for, billed: the cost adds this much waiting at the worker's memory.
PROVIDER_SECONDS = 20.0
WARM_MARGIN = 10  # completions left out at each end when measuring the steady rate


@dataclass
class Run:
    route: str
    pacing: bool
    photos: int
    limit: int
    concurrency: int
    accepted_at: dict[str, float] = field(default_factory=dict)  # photo id -> epoch seconds
    api_seconds: list[float] = field(default_factory=list)
    worker_seconds: list[float] = field(default_factory=list)
    worker_invocations: int = 0
    peak_connections: int = 0
    elapsed: float = 0.0


def small_photo(seed: int) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 480), (150 + seed % 50, 120, 90))
    ImageDraw.Draw(image).ellipse((100 + seed % 200, 80, 400, 380), fill=(60, 50, 40))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


# --- the worker containers -------------------------------------------------------------------


def worker_container(
    environment: dict[str, str], queue_url: str, name: str, stop: Any, timings: Any
) -> None:
    """One Lambda container of a function: load its handler once, then poll (batch 1)."""
    os.environ.update(environment)
    from photo_restore_tools.local.event_source import SqsEventSource
    from photo_restore_tools.local.functions import functions_dir, load_handler_module

    module = load_handler_module(name, functions_dir())

    def timed(event: dict[str, Any], context: Any) -> Any:
        started = time.perf_counter()
        try:
            return module.lambda_handler(event, context)
        finally:
            timings.put((name, time.perf_counter() - started))

    import boto3

    source = SqsEventSource(
        sqs=boto3.client("sqs"),
        queue_url=queue_url,
        handler=timed,
        function_name=name,
        batch_size=1,
        wait_seconds=1,
    )
    while not stop.is_set():
        source.poll_once()


@contextmanager
def containers(
    environment: dict[str, str], queues: dict[str, str], concurrency: int, timings: Any
) -> Iterator[None]:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    processes = [
        context.Process(
            target=worker_container,
            args=(environment, queues["worker"], "worker", stop, timings),
            daemon=True,
        )
        for _ in range(concurrency)
    ]
    processes.append(
        context.Process(
            target=worker_container,
            args=(environment, queues["dlq"], "dlq", stop, timings),
            daemon=True,
        )
    )
    for process in processes:
        process.start()
    try:
        yield
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=15)
            if process.is_alive():
                process.terminate()


# --- measuring -------------------------------------------------------------------------------


class ConnectionSampler:
    """The peak of Postgres client backends (pg_stat_activity), sampled every 100 ms."""

    def __init__(self, postgres_url: str) -> None:
        from sqlalchemy import create_engine

        self._engine = create_engine(postgres_url, connect_args={"ssl_context": False})
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        from sqlalchemy import text

        query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid() AND datname = current_database()"
        )
        with self._engine.connect() as conn:
            while not self._stop.wait(0.1):
                self.peak = max(self.peak, int(conn.execute(query).scalar_one()))
                conn.rollback()

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._engine.dispose()


def memory_gb(function: str) -> float:
    """The function's configured memory, from template.yaml (its own, else the Globals')."""
    from photo_restore_tools.template import load_template

    template = load_template()
    own = template["Resources"][function]["Properties"].get("MemorySize")
    return float(own or template["Globals"]["Function"]["MemorySize"]) / 1024


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


# --- one run ---------------------------------------------------------------------------------


def run_once(args: argparse.Namespace, route: str, postgres_url: str) -> dict[str, Any]:
    from pydantic import SecretStr
    from sqlalchemy import select

    from photo_restore.db import create_db_engine
    from photo_restore.models import photos as photos_table
    from photo_restore.models import restore_attempts
    from photo_restore.repository import SqlRepository
    from photo_restore.settings import Settings
    from photo_restore_tools.local.functions import (
        functions_dir,
        load_handler_module,
        settings_environment,
    )
    from photo_restore_tools.local.http_gateway import http_api_event
    from photo_restore_tools.local.photos import upload_photo
    from photo_restore_tools.local.services import pgbouncer, provision, use_local_aws

    run = Run(route, not args.no_pacing, args.photos, args.images_per_minute, args.concurrency)
    with ExitStack() as stack:
        database_url = postgres_url
        if route == "pgbouncer":
            database_url = stack.enter_context(pgbouncer(postgres_url)).url
        services = stack.enter_context(remote_services(images_per_minute=args.images_per_minute))
        use_local_aws(services.aws_endpoint)
        resources = provision(
            name=f"bench-{uuid.uuid4().hex[:12]}",
            visibility_timeout_seconds=120,
            max_receive_count=3,
        )
        overrides = {}
        if args.pacing_max_wait is not None:
            overrides["pacing_max_wait_seconds"] = args.pacing_max_wait
        settings = Settings(
            database_url=SecretStr(database_url),
            database_ssl_mode="disable",
            **resources.settings_fields(),  # type: ignore[arg-type]
            visibility_timeout_seconds=120,
            siliconflow_base_url=services.siliconflow_base_url,
            siliconflow_api_key=SecretStr("bench"),
            siliconflow_allow_private_urls=True,
            image_transport="presigned_url",
            siliconflow_images_per_minute=args.images_per_minute if run.pacing else 0,
            daily_restores_per_user=0,
            # Without pacing a 429 is deferred by the default delay: shorter than production's
            # minute so that the unpaced run ends in the same time frame.
            default_rate_limit_delay_seconds=5,
            max_rate_limit_deferrals=1000,
            transient_retry_delays_seconds=[2, 5, 10],
            **overrides,
        )
        environment = {k: v for k, v in settings_environment(settings).items() if v is not None}
        environment |= {
            "POWERTOOLS_METRICS_NAMESPACE": "PhotoRestoreBench",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
        }
        os.environ.update(environment)
        from photo_restore import wiring

        wiring.reset()  # a fresh API container for this run's settings
        engine = create_db_engine(database_url, ssl_mode="disable", pool_size=2)
        stack.callback(engine.dispose)
        SqlRepository(engine).create_schema()
        import boto3

        s3 = boto3.client("s3")
        uploaded = [
            upload_photo(
                engine, s3, resources.bucket_name, owner_id=f"bench-{i}", data=small_photo(i)
            )
            for i in range(args.photos)
        ]
        api = load_handler_module("api", functions_dir())
        timings: Any = multiprocessing.get_context("spawn").Queue()
        queues = {"worker": resources.queue_url, "dlq": resources.dlq_url}
        sampler = stack.enter_context(ConnectionSampler(postgres_url))
        stack.enter_context(containers(environment, queues, args.concurrency, timings))
        started = time.time()
        for photo in uploaded:
            event = http_api_event(
                method="POST",
                raw_path=f"/photos/{photo.id}/restore",
                claims={"sub": photo.owner_id},
                route_key="POST /photos/{photo_id}/restore",
                path_parameters={"photo_id": str(photo.id)},
            )
            began = time.perf_counter()
            response = api.lambda_handler(event, _context())
            run.api_seconds.append(time.perf_counter() - began)
            assert response["statusCode"] == 202, response
            run.accepted_at[str(photo.id)] = time.time()
        deadline = started + args.photos / args.images_per_minute * 60 * 2.5 + 120
        ids = [photo.id for photo in uploaded]
        while time.time() < deadline:
            with engine.connect() as conn:
                statuses = conn.execute(
                    select(photos_table.c.status).where(photos_table.c.id.in_(ids))
                ).scalars()
                if all(status != "processing" for status in statuses):
                    break
            time.sleep(0.5)
        run.elapsed = time.time() - started
        time.sleep(2)  # the last invocations' timings
        while not timings.empty():
            name, seconds = timings.get()
            if name == "worker":
                run.worker_seconds.append(seconds)
        run.peak_connections = sampler.peak
        with engine.connect() as conn:
            rows = conn.execute(
                select(photos_table.c.id, photos_table.c.status).where(photos_table.c.id.in_(ids))
            ).all()
            attempts = conn.execute(
                select(restore_attempts.c.job_id, restore_attempts.c.params).where(
                    restore_attempts.c.job_id.in_(ids)
                )
            ).all()
        sqs = boto3.client("sqs")
        dlq = sqs.get_queue_attributes(
            QueueUrl=resources.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        dead = sum(
            1
            for _, params in attempts
            if (params.get("error") or {}).get("code") == "retries_exhausted"
        )
    # The stand-in's counts arrive once its process has stopped.
    return summarise(run, rows, attempts, services, int(dlq) + dead, args)


def _context() -> Any:
    from photo_restore_tools.local.event_source import LocalLambdaContext

    return LocalLambdaContext(function_name="photo-restore-api")


def summarise(
    run: Run,
    rows: Sequence[Any],
    attempts: Sequence[Any],
    services: RemoteServices,
    dead: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    finished: dict[str, float] = {}
    for job_id, params in attempts:
        if params.get("finished_at") and not params.get("error"):
            finished[str(job_id)] = datetime.fromisoformat(params["finished_at"]).timestamp()
    done = sorted(finished.values())
    warm = done[WARM_MARGIN:-WARM_MARGIN] if len(done) > 3 * WARM_MARGIN else done
    steady = (len(warm) - 1) / (warm[-1] - warm[0]) * 60 if len(warm) > 1 else 0.0
    latencies = [finished[i] - run.accepted_at[i] for i in finished if i in run.accepted_at]
    calls = services.provider_calls
    refused = services.provider_429s
    restored = len(finished)
    worker_gb, api_gb = memory_gb("WorkerFunction"), memory_gb("ApiFunction")
    deliveries = len(run.worker_seconds) / max(1, restored)
    worker_gb_s = sum(run.worker_seconds) * worker_gb / max(1, restored)
    waiting_gb_s = args.provider_seconds * worker_gb
    api_gb_s = statistics.mean(run.api_seconds) * api_gb if run.api_seconds else 0.0
    lambda_usd = (worker_gb_s + waiting_gb_s + api_gb_s) * args.gb_second_price + (
        deliveries + 1
    ) * LAMBDA_REQUEST_USD
    # S3: puts of the before image, the restoration and its thumbnail; gets of the original and
    # the before image (by the provider). SQS: each delivery was sent, received and deleted.
    # One event. The frontend's later GETs of the images are left out.
    requests_usd = 3 * S3_PUT_USD + 2 * S3_GET_USD + 3 * deliveries * SQS_REQUEST_USD + EVENT_USD
    ours_usd = lambda_usd + requests_usd
    provider_usd = args.price_per_image  # one billed image per restoration (429s are not)
    budget = args.concurrency + 1 + 1  # worker containers + the API + the DLQ handler
    return {
        "route": run.route,
        "pacing": run.pacing,
        "photos": run.photos,
        "limit_per_minute": run.limit,
        "concurrency": run.concurrency,
        "elapsed_seconds": round(run.elapsed, 1),
        "restorations_per_minute_warm": round(steady, 1),
        "rate_over_limit": round(steady / run.limit, 3),
        "dead_lettered": dead,
        "not_ready": sum(1 for _, status in rows if status != "ready"),
        "p50_seconds_202_to_ready": round(percentile(latencies, 0.5), 1),
        "p95_seconds_202_to_ready": round(percentile(latencies, 0.95), 1),
        "peak_postgres_connections": run.peak_connections,
        "connection_budget": budget,
        "provider_calls": calls,
        "provider_429s": refused,
        "share_429": round(refused / calls, 3) if calls else 0.0,
        "worker_invocations_per_restoration": round(deliveries, 2),
        "worker_gb_seconds_per_restoration": round(worker_gb_s, 4),
        f"worker_gb_seconds_waiting_{args.provider_seconds:g}_s_for_the_provider": round(
            waiting_gb_s, 2
        ),
        "api_gb_seconds_per_request": round(api_gb_s, 5),
        "lambda_usd_per_restoration": round(lambda_usd, 6),
        "s3_sqs_events_usd_per_restoration": round(requests_usd, 6),
        "provider_usd_per_restoration": provider_usd,
        "our_share_of_cost": round(ours_usd / (ours_usd + provider_usd), 4),
    }


def show(result: dict[str, Any]) -> None:
    goals = {
        "rate_over_limit": ">= 0.95",
        "dead_lettered": "0",
        "not_ready": "0",
        "share_429": "< 0.05 with pacing",
        "peak_postgres_connections": f"<= budget {result['connection_budget']} (+1 ours)",
    }
    print(f"\n--- {result['route']}, pacing {'on' if result['pacing'] else 'off'} ---")
    for name, value in result.items():
        goal = f"   goal {goals[name]}" if name in goals else ""
        print(f"  {name:38} {value}{goal}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--images-per-minute", type=int, default=120, help="the limit L")
    parser.add_argument("--concurrency", type=int, default=4, help="MaximumConcurrency K")
    parser.add_argument("--route", choices=["direct", "pgbouncer", "both"], default="both")
    parser.add_argument("--no-pacing", action="store_true", help="429s deferred, no pacing")
    parser.add_argument(
        "--pacing-max-wait",
        type=float,
        help="PACING_MAX_WAIT_SECONDS (default: the setting's): nearer slots are waited for",
    )
    parser.add_argument("--price-per-image", type=float, default=PRICE_PER_IMAGE_USD)
    parser.add_argument("--gb-second-price", type=float, default=GB_SECOND_USD)
    parser.add_argument(
        "--provider-seconds",
        type=float,
        default=PROVIDER_SECONDS,
        help="SiliconFlow's inference time, which the worker waits for (the stand-in's is ~0)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import logging

    from photo_restore_tools.local.services import embedded_postgres, pgbouncer_path

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    routes = ["direct", "pgbouncer"] if args.route == "both" else [args.route]
    if "pgbouncer" in routes and pgbouncer_path() is None:
        print("pgbouncer is not installed: running direct only", file=sys.stderr)
        routes = ["direct"]
    print(
        f"{args.photos} restores, limit {args.images_per_minute}/min, {args.concurrency} worker "
        f"containers, {os.cpu_count()} cores, {datetime.now().date()}"
    )
    results = []
    with embedded_postgres() as postgres_url:
        for route in routes:
            result = run_once(args, route, postgres_url)
            show(result)
            results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`photo-restore`: the project's command line (schema, preprocessing, operations, local stack).

Operator commands read the same environment a deployed function gets (README: runbook); each
names what it is missing and exits non-zero instead of failing with a driver's traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from photo_restore.errors import RestoreError

# What each operator command needs, by the names the runbook uses.
DATABASE = "DATABASE_URL (or DATABASE_URL_PARAMETER)"
REGION = "AWS_REGION (or AWS_DEFAULT_REGION, or a region in the AWS config)"
QUEUE = "QUEUE_URL"
DLQ = "DLQ_URL"
BUCKET = "BUCKET_NAME"
NEEDS: dict[str, tuple[str, ...]] = {
    "db create": (DATABASE,),
    "db migrate": (DATABASE,),
    "sweep": (DATABASE, REGION, BUCKET),
    "redrive dlq": (REGION, QUEUE, DLQ),
    "redrive failed": (DATABASE, REGION, QUEUE),
    "redrive attempt": (DATABASE, REGION, QUEUE),
    "erase-user": (DATABASE, REGION, BUCKET),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="photo-restore", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("create", help="create the tables and indexes in DATABASE_URL where missing")
    db.add_parser(
        "migrate",
        help="create this service's tables where missing and fill them from the existing "
        "attempts (once, after upgrading a deployment whose attempts predate them)",
    )

    pre = commands.add_parser("preprocess", help="run the worker's preprocessing on local files")
    pre.add_argument("files", nargs="+", type=Path)
    pre.add_argument("--out", type=Path, required=True, help="folder for the JPEGs")

    redrive = commands.add_parser("redrive", help="re-run failed work").add_subparsers(
        dest="redrive_command", required=True
    )
    dlq = redrive.add_parser("dlq", help="move dead messages back to the queue (like SQS redrive)")
    dlq.add_argument("--limit", type=int, default=1000)
    failed = redrive.add_parser("failed", help="a new attempt for photos whose last one failed")
    failed.add_argument("--since-hours", type=float, default=24.0)
    failed.add_argument("--code", action="append", help="only these error codes (repeatable)")
    failed.add_argument("--photo", action="append", type=uuid.UUID, help="only these photo ids")
    failed.add_argument("--dry-run", action="store_true")
    again = redrive.add_parser("attempt", help="a new attempt for the photo of this attempt")
    again.add_argument("attempt_id", type=uuid.UUID)
    again.add_argument(
        "--same-seed", action="store_true", help="ask SiliconFlow for the seed it recorded"
    )

    commands.add_parser("sweep", help="settle photos stuck in processing (the scheduled sweeper)")

    erase = commands.add_parser(
        "erase-user", help="an erasure request: every photo of the user deleted, objects removed"
    )
    erase.add_argument("owner_id", help="the user's id (photos.owner_id, the JWT's sub)")

    demo = commands.add_parser("demo", help="run the whole pipeline locally on one image")
    demo.add_argument("image", nargs="?", type=Path, help="default: a bundled old photo")
    demo.add_argument("--out", type=Path, default=Path("demo-output"))

    check = commands.add_parser(
        "siliconflow-check", help="one real SiliconFlow request with the configured key and model"
    )
    check.add_argument("image", type=Path)
    check.add_argument("--out", type=Path, default=Path("siliconflow-check"))

    serve = commands.add_parser("serve", help="keep the local stack running behind an HTTP API")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--host", default="127.0.0.1")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    subcommand = getattr(args, "redrive_command", None) or getattr(args, "db_command", None)
    command = " ".join(part for part in (args.command, subcommand) if part)
    missing = [need for need in NEEDS.get(command, ()) if not _configured(need)]
    if missing:
        print(f"error: `photo-restore {command}` needs {', '.join(missing)}", file=sys.stderr)
        print("       (README: operator runbook, what each command needs)", file=sys.stderr)
        return 2
    run: Callable[[argparse.Namespace], int] = COMMANDS[command]
    try:
        return run(args)
    except RestoreError as error:  # a dependency down, a parameter unreadable...
        print(f"error: {error.code}: {error.message}", file=sys.stderr)
        return 1


def _configured(need: str) -> bool:
    if need == DATABASE:
        return bool(os.environ.get("DATABASE_URL") or os.environ.get("DATABASE_URL_PARAMETER"))
    if need == REGION:
        import boto3

        return boto3.session.Session().region_name is not None
    return bool(os.environ.get(need))


def _preprocess(args: argparse.Namespace) -> int:
    from photo_restore.settings import get_settings
    from photo_restore_tools.preprocess_files import preprocess_files

    return preprocess_files(args.files, args.out, get_settings(), sys.stdout)


def _demo(args: argparse.Namespace) -> int:
    from photo_restore_tools.local.stack import run_demo

    return run_demo(args.image, args.out)


def _serve(args: argparse.Namespace) -> int:
    from photo_restore_tools.local.stack import run_serve

    return run_serve(args.host, args.port)


def _create_schema(args: argparse.Namespace) -> int:
    from photo_restore import wiring

    wiring.repository().create_schema()
    print("schema ready")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from photo_restore import wiring
    from photo_restore.events import REPUBLISH_WINDOW

    repository = wiring.repository()
    repository.create_schema()
    filled = repository.backfill_service_tables(republish_window=REPUBLISH_WINDOW)
    for table, rows in filled.items():
        print(f"{table}: {rows} row(s) filled")
    print("service tables ready")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from photo_restore import wiring

    reports = wiring.restore_giveup().sweep_stuck_photos()
    for report in reports:
        print(f"{report.photo_id}  {report.outcome}")
    print(f"{len(reports)} stuck photo(s) handled")
    return 0


def _erase_user(args: argparse.Namespace) -> int:
    from photo_restore.lifecycle import wiring as lifecycle

    erasure = lifecycle.photo_end().erase_owner(args.owner_id)
    print(
        f"{erasure.photos_deleted} photo(s) deleted, {erasure.objects_removed} object(s) "
        f"removed, {erasure.uploads_refused} pending upload(s) refused"
    )
    return 0


def _redrive_dlq(args: argparse.Namespace) -> int:
    from photo_restore import aws
    from photo_restore.settings import get_settings
    from photo_restore_tools import redrive

    settings = get_settings()
    moved = redrive.move_dead_messages(
        aws.sqs_client(), dlq_url=settings.dlq_url, queue_url=settings.queue_url, limit=args.limit
    )
    print(f"moved {moved} message(s) from the DLQ back to the restore queue")
    return 0


def _redrive_failed(args: argparse.Namespace) -> int:
    from photo_restore import wiring
    from photo_restore.settings import get_settings
    from photo_restore_tools import redrive

    since = datetime.now(UTC) - timedelta(hours=args.since_hours)
    results = redrive.rerun_failed_restores(
        wiring.repository(),
        redrive.operator_requests(get_settings()),
        since=since,
        codes=args.code,
        photo_ids=args.photo,
        dry_run=args.dry_run,
    )
    for result in results:
        outcome = result.new_attempt_id or result.refusal or "dry run"
        print(f"{result.photo_id}  failed: {result.error_code}  ->  {outcome}")
    print(f"{len(results)} failed restoration(s){' (dry run)' if args.dry_run else ''}")
    return 0


def _redrive_attempt(args: argparse.Namespace) -> int:
    from photo_restore import wiring
    from photo_restore.settings import get_settings
    from photo_restore_tools import redrive

    result = redrive.rerun_attempt(
        wiring.repository(),
        redrive.operator_requests(get_settings()),
        args.attempt_id,
        same_seed=args.same_seed,
    )
    print(result)
    return 0 if result.startswith("new attempt") else 1


def _siliconflow_check(args: argparse.Namespace) -> int:
    from photo_restore.settings import get_settings
    from photo_restore_tools.siliconflow_check import check

    return check(args.image, args.out, get_settings(), sys.stdout)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "preprocess": _preprocess,
    "demo": _demo,
    "serve": _serve,
    "db create": _create_schema,
    "db migrate": _migrate,
    "sweep": _sweep,
    "erase-user": _erase_user,
    "redrive dlq": _redrive_dlq,
    "redrive failed": _redrive_failed,
    "redrive attempt": _redrive_attempt,
    "siliconflow-check": _siliconflow_check,
}


if __name__ == "__main__":
    raise SystemExit(main())

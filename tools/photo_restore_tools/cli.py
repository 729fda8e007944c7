"""`photo-restore`: the project's command line (schema, preprocessing, operations, local stack)."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="photo-restore", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("create", help="create the tables and indexes in DATABASE_URL where missing")

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

    commands.add_parser("sweep", help="settle photos stuck in processing (the scheduled sweeper)")

    demo = commands.add_parser("demo", help="run the whole pipeline locally on one image")
    demo.add_argument("image", nargs="?", type=Path, help="default: a bundled old photo")
    demo.add_argument("--out", type=Path, default=Path("demo-output"))

    serve = commands.add_parser("serve", help="keep the local stack running behind an HTTP API")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--host", default="127.0.0.1")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "preprocess":
        from photo_restore.settings import get_settings
        from photo_restore_tools.preprocess_files import preprocess_files

        return preprocess_files(args.files, args.out, get_settings(), sys.stdout)
    if args.command == "demo":
        from photo_restore_tools.local.stack import run_demo

        return run_demo(args.image, args.out)
    if args.command == "serve":
        from photo_restore_tools.local.stack import run_serve

        return run_serve(args.host, args.port)

    from photo_restore import wiring

    if args.command == "db":
        from photo_restore.db import create_schema

        create_schema(wiring.repository().engine)
        print("schema ready")
        return 0
    if args.command == "sweep":
        reports = wiring.restore_giveup().sweep_stuck_photos()
        for report in reports:
            print(f"{report.photo_id}  {report.outcome}")
        print(f"{len(reports)} stuck photo(s) handled")
        return 0
    return _redrive(args)


def _redrive(args: argparse.Namespace) -> int:
    from photo_restore import aws, wiring
    from photo_restore.settings import get_settings
    from photo_restore_tools import redrive

    settings = get_settings()
    if args.redrive_command == "dlq":
        moved = redrive.move_dead_messages(
            aws.sqs_client(),
            dlq_url=settings.dlq_url,
            queue_url=settings.queue_url,
            limit=args.limit,
        )
        print(f"moved {moved} message(s) from the DLQ back to the restore queue")
        return 0
    since = datetime.now(UTC) - timedelta(hours=args.since_hours)
    results = redrive.rerun_failed_restores(
        wiring.repository(),
        wiring.restore_requests(),
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


if __name__ == "__main__":
    raise SystemExit(main())
